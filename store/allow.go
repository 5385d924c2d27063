package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The allow bucket is the run-time allow-list (bansctl allow): target key
// (prefixKey) → entry. It is created on first write, so older stores open
// unchanged.
var bucketAllow = []byte("allow")

const allowFormat = 1

// MaxAllows bounds the run-time allow-list: every event is matched against
// it (with the configured never-ban rules), so it stays short.
const MaxAllows = 1000

// ErrAllowFull is returned when the allow-list holds MaxAllows entries.
var ErrAllowFull = fmt.Errorf("allow-list is full (%d entries): remove some first", MaxAllows)

// Allow is one run-time allow-list entry: never banned while it lasts.
type Allow struct {
	Target netip.Prefix
	Reason string
	Since  time.Time
	// Until is when the entry ends; zero: never.
	Until time.Time
	// UID is the local user who added it (NoUID when unknown).
	UID int
}

// Live says whether a is in force at now.
func (a Allow) Live(now time.Time) bool { return a.Until.IsZero() || a.Until.After(now) }

func encodeAllow(a Allow) []byte {
	dst := []byte{allowFormat}
	dst = appendTime(dst, a.Since)
	dst = appendTime(dst, a.Until)
	dst = binary.AppendUvarint(dst, uint64(a.UID+1)) // NoUID is -1
	return appendString(dst, a.Reason)
}

func decodeAllowKV(k, v []byte) (Allow, error) {
	t, err := parsePrefixKey(k)
	if err != nil {
		return Allow{}, fmt.Errorf("%w: allow key %x: %v", ErrCorrupt, k, err)
	}
	d := decoder{buf: v}
	if f := d.byte(); f != allowFormat && d.err == nil {
		return Allow{}, fmt.Errorf("%w: allow entry %s: unknown format %d", ErrCorrupt, t, f)
	}
	a := Allow{Target: t, Since: d.time(), Until: d.time(), UID: int(d.uvarint(1<<32)) - 1, Reason: d.string()}
	if err := d.finish(); err != nil {
		return Allow{}, fmt.Errorf("%w: allow entry %s: %v", ErrCorrupt, t, err)
	}
	return a, nil
}

// Allows returns every stored allow entry, expired ones included, in key
// order.
func (db *DB) Allows() ([]Allow, error) {
	var out []Allow
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAllow)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			a, err := decodeAllowKV(k, v)
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// PutAllowLifting writes allow entry a (none when nil: an ignoreip added
// by a reload) and, in the same transaction, the bans it changes: lift are
// deleted, split are written in their place (pieces of a wider ban around
// the entry, so no offence is counted for them), and evs recorded. A crash
// keeps all of it or none.
func (db *DB) PutAllowLifting(a *Allow, lift []netip.Prefix, split []Ban, evs ...Event) error {
	if a != nil && !a.Target.IsValid() {
		return fmt.Errorf("store %s: put allow: invalid target", db.path)
	}
	return db.updateEvents(evs, func(tx *bolt.Tx) error {
		if a != nil {
			ab, err := tx.CreateBucketIfNotExists(bucketAllow)
			if err != nil {
				return err
			}
			k := prefixKey(nil, a.Target)
			if ab.Get(k) == nil && ab.Stats().KeyN >= MaxAllows {
				return ErrAllowFull
			}
			if err := ab.Put(k, encodeAllow(*a)); err != nil {
				return fmt.Errorf("put allow %s: %w", a.Target, err)
			}
		}
		bb := tx.Bucket(bucketBans)
		for _, t := range lift {
			if err := bb.Delete(prefixKey(nil, t)); err != nil {
				return fmt.Errorf("delete ban %s: %w", t, err)
			}
		}
		for i := range split {
			if !split[i].Target.IsValid() {
				return errors.New("put split ban: invalid target")
			}
			if err := bb.Put(prefixKey(nil, split[i].Target), encodeBan(nil, &split[i])); err != nil {
				return fmt.Errorf("put ban %s: %w", split[i].Target, err)
			}
		}
		return db.appendEvents(tx, evs)
	})
}

// DeleteAllows removes the entries of targets and records event(entry)
// for each one that was there, in one transaction; it returns those.
func (db *DB) DeleteAllows(targets []netip.Prefix, event func(Allow) Event) ([]Allow, error) {
	keys := make([][]byte, len(targets))
	for i, t := range targets {
		keys[i] = prefixKey(nil, t)
	}
	return db.deleteAllows(keys, func(Allow) bool { return true }, event)
}

// PurgeExpiredAllows removes the entries that ended at or before now and
// records event(entry) for each, in one transaction; it returns them.
func (db *DB) PurgeExpiredAllows(now time.Time, event func(Allow) Event) ([]Allow, error) {
	return db.deleteAllows(nil, func(a Allow) bool { return !a.Live(now) }, event)
}

// deleteAllows deletes the entries under keys (every entry when keys is
// nil) that drop picks.
func (db *DB) deleteAllows(keys [][]byte, drop func(Allow) bool, event func(Allow) Event) ([]Allow, error) {
	var gone []Allow
	var evs []Event
	err := db.update(func(tx *bolt.Tx) error {
		gone, evs = gone[:0], evs[:0]
		b := tx.Bucket(bucketAllow)
		if b == nil {
			return nil
		}
		if keys == nil {
			if err := b.ForEach(func(k, _ []byte) error { keys = append(keys, append([]byte(nil), k...)); return nil }); err != nil {
				return err
			}
		}
		for _, k := range keys {
			v := b.Get(k)
			if v == nil {
				continue
			}
			a, err := decodeAllowKV(k, v)
			if err != nil {
				return err
			}
			if !drop(a) {
				continue
			}
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete allow %s: %w", a.Target, err)
			}
			gone = append(gone, a)
			evs = append(evs, event(a))
		}
		return db.appendEvents(tx, evs)
	})
	if err == nil && db.eventHook != nil && len(evs) > 0 {
		db.eventHook(evs)
	}
	return gone, err
}
