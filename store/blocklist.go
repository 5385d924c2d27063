package store

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucketBlocklists = []byte("blocklists")

// Blocklist is the last good version of a configured list, kept so that a
// restart enforces it before the first fetch, and asks the server with its
// validators whether it changed.
type Blocklist struct {
	Name string `json:"name"`
	// Source is the URL or file it was read from: a list whose source
	// changed in the config is fetched afresh, not conditionally.
	Source       string    `json:"source"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Fetched      time.Time `json:"fetched"`
	// Refreshed is the last good refresh (a fetch or a 304): the list's
	// bans run bantime from it. Zero in records of an older bansd:
	// Fetched stands in.
	Refreshed time.Time      `json:"refreshed,omitzero"`
	Targets   []netip.Prefix `json:"targets"`
}

// PutBlocklist stores l, replacing the list of that name.
func (db *DB) PutBlocklist(l Blocklist) error {
	v, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("store %s: blocklist %s: %w", db.path, l.Name, err)
	}
	return db.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBlocklists).Put([]byte(l.Name), v) })
}

// Blocklists returns every stored list.
func (db *DB) Blocklists() ([]Blocklist, error) {
	var out []Blocklist
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocklists).ForEach(func(k, v []byte) error {
			var l Blocklist
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("%w: blocklist %q: %v", ErrCorrupt, k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

// DeleteBlocklist forgets the list of that name (gone from the config).
func (db *DB) DeleteBlocklist(name string) error {
	return db.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBlocklists).Delete([]byte(name)) })
}
