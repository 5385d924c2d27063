package store

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The outbox holds notifications not yet delivered: the notifier's spool.
// Keys are the bucket's sequence numbers (big-endian, so a scan is in
// the order messages were made); a message survives restarts until it is
// delivered or too old.
var bucketOutbox = []byte("outbox")

const outboxFormat = 1

// maxOutboxBody bounds a stored message body; the notifier's own messages
// are a few KiB.
const maxOutboxBody = 1 << 20

// OutboxMessage is one undelivered notification for one channel.
type OutboxMessage struct {
	ID        uint64 // assigned by OutboxAdd
	Channel   string
	Created   time.Time
	Attempts  int
	NextTry   time.Time
	LastError string
	Body      []byte
}

// OutboxAdd stores messages in one transaction and returns them with
// their IDs.
func (db *DB) OutboxAdd(msgs []OutboxMessage) ([]OutboxMessage, error) {
	out := make([]OutboxMessage, len(msgs))
	copy(out, msgs)
	for _, m := range out {
		if len(m.Body) > maxOutboxBody {
			return nil, fmt.Errorf("outbox: message for %q is %d bytes, more than %d", m.Channel, len(m.Body), maxOutboxBody)
		}
	}
	err := db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for i := range out {
			id, err := b.NextSequence()
			if err != nil {
				return err
			}
			out[i].ID = id
			if err := b.Put(outboxKey(id), encodeOutbox(nil, &out[i])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox add: %w", err)
	}
	return out, nil
}

// Outbox returns the waiting messages of a channel ("" for all), oldest
// first.
func (db *DB) Outbox(channel string) ([]OutboxMessage, error) {
	var out []OutboxMessage
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			m, err := decodeOutboxKV(k, v)
			if err != nil {
				return err
			}
			if channel == "" || m.Channel == channel {
				out = append(out, m)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return out, nil
}

// OutboxRetry records a failed attempt. A message that is gone (delivered
// or dropped meanwhile) is not an error.
func (db *DB) OutboxRetry(id uint64, attempts int, next time.Time, lastErr string) error {
	err := db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		k := outboxKey(id)
		v := b.Get(k)
		if v == nil {
			return nil
		}
		m, err := decodeOutboxKV(k, v)
		if err != nil {
			return err
		}
		m.Attempts, m.NextTry, m.LastError = attempts, next, lastErr
		return b.Put(k, encodeOutbox(nil, &m))
	})
	if err != nil {
		return fmt.Errorf("outbox retry %d: %w", id, err)
	}
	return nil
}

// OutboxDelete removes messages (delivered ones); missing IDs are ignored.
func (db *DB) OutboxDelete(ids ...uint64) error {
	err := db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, id := range ids {
			if err := b.Delete(outboxKey(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("outbox delete: %w", err)
	}
	return nil
}

// OutboxDropBefore removes the messages made before t and returns how many
// each channel lost. Damaged records are dropped too (they can never be
// sent) and counted under the channel "".
func (db *DB) OutboxDropBefore(t time.Time) (map[string]int, error) {
	dropped := map[string]int{}
	err := db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		var keys [][]byte
		err := b.ForEach(func(k, v []byte) error {
			m, err := decodeOutboxKV(k, v)
			if err != nil {
				dropped[""]++
				keys = append(keys, append([]byte(nil), k...))
				return nil
			}
			if m.Created.Before(t) {
				dropped[m.Channel]++
				keys = append(keys, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox drop: %w", err)
	}
	return dropped, nil
}

func outboxKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func encodeOutbox(dst []byte, m *OutboxMessage) []byte {
	dst = append(dst, outboxFormat)
	dst = appendString(dst, m.Channel)
	dst = appendTime(dst, m.Created)
	dst = binary.AppendUvarint(dst, uint64(max(m.Attempts, 0)))
	dst = appendTime(dst, m.NextTry)
	dst = appendString(dst, m.LastError)
	dst = appendString(dst, string(m.Body))
	return dst
}

func decodeOutboxKV(k, v []byte) (OutboxMessage, error) {
	var m OutboxMessage
	if len(k) != 8 {
		return m, fmt.Errorf("%w: outbox key %x", ErrCorrupt, k)
	}
	m.ID = binary.BigEndian.Uint64(k)
	d := decoder{buf: v}
	if f := d.byte(); f != outboxFormat {
		if d.err != nil {
			return m, fmt.Errorf("%w: outbox %d: %v", ErrCorrupt, m.ID, d.err)
		}
		return m, fmt.Errorf("%w: outbox %d: unknown format %d", ErrCorrupt, m.ID, f)
	}
	m.Channel = d.string()
	m.Created = d.time()
	m.Attempts = int(d.uvarint(1 << 31))
	m.NextTry = d.time()
	m.LastError = d.string()
	m.Body = []byte(d.string())
	if err := d.finish(); err != nil {
		return m, fmt.Errorf("%w: outbox %d: %v", ErrCorrupt, m.ID, err)
	}
	return m, nil
}
