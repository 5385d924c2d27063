package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// DefaultCrowdSecQueue is the queue's bound when none is given.
const DefaultCrowdSecQueue = 10000

// ErrNoEntry means a queue entry is not (or no longer) there.
var ErrNoEntry = errors.New("no such queue entry")

// CrowdSecQueue keeps the CrowdSec link's pending pushes and unbans (and
// pushed bans until they expire) in the store, so a restart neither
// forgets nor repeats them. Values are opaque; keys are sequence numbers
// in order of arrival. It is bounded: the oldest entries make room.
type CrowdSecQueue struct {
	db  *DB
	max int
}

// CrowdSecQueue returns the queue, holding at most capacity entries
// (DefaultCrowdSecQueue when capacity <= 0).
func (db *DB) CrowdSecQueue(capacity int) *CrowdSecQueue {
	if capacity <= 0 {
		capacity = DefaultCrowdSecQueue
	}
	return &CrowdSecQueue{db: db, max: capacity}
}

// keyQueueCount holds the number of entries (bbolt has no cheap count);
// it sorts after every 8-byte sequence key below 2^56.
var keyQueueCount = []byte("count")

func queueCount(b *bolt.Bucket) int {
	v := b.Get(keyQueueCount)
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

func setQueueCount(b *bolt.Bucket, n int) error {
	return b.Put(keyQueueCount, binary.BigEndian.AppendUint64(nil, uint64(max(n, 0))))
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Append adds data as the newest entry and drops the oldest ones beyond
// the bound, returning their sequence numbers.
func (q *CrowdSecQueue) Append(data []byte) (seq uint64, dropped []uint64, err error) {
	if len(data) > maxString {
		return 0, nil, fmt.Errorf("store: crowdsec queue entry of %d bytes is over %d", len(data), maxString)
	}
	err = q.db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCrowdSec)
		var err error
		if seq, err = b.NextSequence(); err != nil {
			return err
		}
		if err := b.Put(seqKey(seq), data); err != nil {
			return err
		}
		n := queueCount(b) + 1
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(k) == 8 && n > q.max; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			dropped = append(dropped, binary.BigEndian.Uint64(k))
			n--
		}
		return setQueueCount(b, n)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("crowdsec queue append: %w", err)
	}
	return seq, dropped, nil
}

// Replace overwrites an entry that is still there.
func (q *CrowdSecQueue) Replace(seq uint64, data []byte) error {
	err := q.db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCrowdSec)
		k := seqKey(seq)
		if b.Get(k) == nil {
			return fmt.Errorf("%w: %d", ErrNoEntry, seq)
		}
		return b.Put(k, data)
	})
	if err != nil {
		return fmt.Errorf("crowdsec queue replace: %w", err)
	}
	return nil
}

// Delete removes an entry; a missing one is not an error.
func (q *CrowdSecQueue) Delete(seq uint64) error {
	err := q.db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCrowdSec)
		k := seqKey(seq)
		if b.Get(k) == nil {
			return nil
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		return setQueueCount(b, queueCount(b)-1)
	})
	if err != nil {
		return fmt.Errorf("crowdsec queue delete: %w", err)
	}
	return nil
}

// Scan calls fn for every entry, oldest first. data is valid only during fn.
func (q *CrowdSecQueue) Scan(fn func(seq uint64, data []byte) error) error {
	err := q.db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCrowdSec).ForEach(func(k, v []byte) error {
			if string(k) == string(keyQueueCount) {
				return nil
			}
			if len(k) != 8 {
				return fmt.Errorf("%w: crowdsec queue key %x", ErrCorrupt, k)
			}
			return fn(binary.BigEndian.Uint64(k), v)
		})
	})
	if err != nil {
		return fmt.Errorf("crowdsec queue scan: %w", err)
	}
	return nil
}
