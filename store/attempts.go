package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The attempts bucket counts the events the jails saw (failed logins,
// relay denials...) per hour and kind: the history records bans, not each
// attempt, and one record an hour stays small (90 days are 2,160 keys)
// where one per attempt would not. Keys are the hour's Unix time,
// big-endian, so a scan is in time order.
var bucketAttempts = []byte("attempts")

// AddAttempts adds counts (by event kind) to the hour that holds t, and
// drops the hours older than the history's age bound.
func (db *DB) AddAttempts(t time.Time, counts map[string]uint64) error {
	add := false
	for _, n := range counts {
		add = add || n > 0
	}
	if !add {
		return nil
	}
	key := hourKey(t)
	return db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAttempts)
		cur := map[string]uint64{}
		if v := b.Get(key); v != nil {
			if err := json.Unmarshal(v, &cur); err != nil {
				return fmt.Errorf("%w: attempts %x: %v", ErrCorrupt, key, err)
			}
		}
		for k, n := range counts {
			if n > 0 {
				cur[k] += n
			}
		}
		v, err := json.Marshal(cur)
		if err != nil {
			return fmt.Errorf("encode attempts: %w", err)
		}
		if err := b.Put(key, v); err != nil {
			return fmt.Errorf("put attempts: %w", err)
		}
		if age := db.eventLimits.MaxAge; age > 0 {
			cut := hourKey(t.Add(-age))
			c := b.Cursor()
			for k, _ := c.First(); k != nil && string(k) < string(cut); k, _ = c.First() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// EachAttemptHour calls fn with each hour's counts by kind from the hour
// that holds since (all when zero), oldest first.
func (db *DB) EachAttemptHour(since time.Time, fn func(hour time.Time, counts map[string]uint64)) error {
	return db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAttempts).Cursor()
		var k, v []byte
		if since.IsZero() {
			k, v = c.First()
		} else {
			k, v = c.Seek(hourKey(since))
		}
		for ; k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("%w: attempts key %x", ErrCorrupt, k)
			}
			counts := map[string]uint64{}
			if err := json.Unmarshal(v, &counts); err != nil {
				return fmt.Errorf("%w: attempts %x: %v", ErrCorrupt, k, err)
			}
			fn(time.Unix(int64(binary.BigEndian.Uint64(k)), 0).UTC(), counts)
		}
		return nil
	})
}

func hourKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.Truncate(time.Hour).Unix()))
}
