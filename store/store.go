// Package store keeps bansd's state in one bbolt file: the live bans, each
// target's offence history and the log cursors of the sources.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	boltErrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this code reads and writes.
const SchemaVersion = 1

// lockTimeout bounds how long Open waits for another process's lock.
const lockTimeout = 3 * time.Second

var (
	bucketMeta     = []byte("meta")
	bucketBans     = []byte("bans")
	bucketHistory  = []byte("history")
	bucketCursors  = []byte("cursors")
	bucketCrowdSec = []byte("crowdsec")
	keyVersion     = []byte("version")
	// bucketBlocklists is in blocklist.go.
)

// ErrLocked means another process holds the store open.
var ErrLocked = errors.New("store is locked by another process (is another bansd running?)")

// ErrCorrupt means the file is not a readable bansd store.
var ErrCorrupt = errors.New("store is corrupt")

// ErrNewerSchema means the file was written by a newer bansd.
var ErrNewerSchema = errors.New("store was written by a newer bansd")

// DB is an open store.
type DB struct {
	path        string
	bolt        *bolt.DB
	eventLimits EventLimits
	eventHook   func([]Event)
}

// Ban is one ban as it is persisted.
type Ban struct {
	Target   netip.Prefix
	Jail     string
	Reason   string
	Since    time.Time
	Until    time.Time
	Level    int
	Manual   bool
	Pulled   bool // enforced for another host (CrowdSec); not an offence here
	Evidence []string
}

// Forever is the Until of a permanent ban: the latest instant the record
// holds (in 2262), so that every "still in force" check keeps it live
// without a case of its own, and nothing ever expires it.
var Forever = time.Unix(0, math.MaxInt64)

// PermanentDuration is a permanent ban's duration in its history events.
const PermanentDuration = time.Duration(math.MaxInt64)

// Permanent says that b has no end (Until is Forever): the kernel element
// has no timeout.
func (b Ban) Permanent() bool { return !b.Until.Before(Forever) }

// Term is b's duration for its history events: Until - Since, or
// PermanentDuration.
func (b Ban) Term() time.Duration {
	if b.Permanent() {
		return PermanentDuration
	}
	return b.Until.Sub(b.Since)
}

// SameEpisode says whether b, a jail's ban of old's target, continues
// old's episode rather than starting a new one: old was itself an offence
// (neither Manual nor Pulled) and was still in force when b was decided.
func SameEpisode(old, b Ban) bool {
	return !old.Manual && !old.Pulled && old.Until.After(b.Since)
}

// History is a target's offence record, the base of escalation.
type History struct {
	Offences int
	LastBan  time.Time
}

// Cursor is where a log source stopped in a container's log (the Docker
// source's resume point; sources/docker.Cursor says how it is read).
type Cursor struct {
	ContainerID string
	Time        time.Time
	Count       int
}

// Open opens or creates the store at path. The directory is created 0700
// and the file 0600. A lock held by another process, a corrupt file or a
// newer schema are errors that name the file: bansd must never start with
// an empty store by accident, since the kernel bans are reconciled against it.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store %s: create directory: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
		// bbolt would silently initialise an empty file; a zero-length
		// store is a truncation, not a new install.
		return nil, fmt.Errorf("store %s: %w: file is empty (truncated?); move it away to start afresh", path, ErrCorrupt)
	}
	b, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, bolt: b}
	if err := db.init(); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// initialMmapSize covers a store of about a million bans and the full
// history bound (60 MB) before the mapping has to grow.
const initialMmapSize = 256 << 20

func openBolt(path string) (b *bolt.DB, err error) {
	// bbolt panics on some kinds of damaged pages; turn that into an error.
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("store %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	// NoFreelistSync: the freelist is rebuilt by a scan at open instead of
	// written at every commit; each ban's commit (and fsync) is smaller,
	// which is most of the manager's idle ban latency.
	// InitialMmapSize: address space, not memory (pages count in RSS only
	// when touched). Without it the mapping grows by doubling, and each
	// growth inside a write transaction copies every node it holds: a
	// 100k-ban transaction spent a tenth of its time there.
	b, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType,
		NoFreelistSync: true, InitialMmapSize: initialMmapSize})
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, boltErrors.ErrTimeout):
		return nil, fmt.Errorf("store %s: %w: gave up after %s", path, ErrLocked, lockTimeout)
	case errors.Is(err, boltErrors.ErrInvalid), errors.Is(err, boltErrors.ErrChecksum),
		errors.Is(err, boltErrors.ErrVersionMismatch):
		return nil, fmt.Errorf("store %s: %w: %v; move it away to start afresh", path, ErrCorrupt, err)
	default:
		return nil, fmt.Errorf("store %s: open: %w", path, err)
	}
}

// init checks the schema version, and creates the buckets in a new file.
func (db *DB) init() error {
	return db.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			if err := tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil }); err != nil {
				return err
			}
			if !empty {
				return fmt.Errorf("%w: no %q bucket: not a bansd store", ErrCorrupt, bucketMeta)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyVersion, []byte{SchemaVersion}); err != nil {
				return err
			}
		}
		v := meta.Get(keyVersion)
		if len(v) != 1 {
			return fmt.Errorf("%w: bad schema version record %x", ErrCorrupt, v)
		}
		if v[0] > SchemaVersion {
			return fmt.Errorf("%w: schema version %d, this bansd reads up to %d", ErrNewerSchema, v[0], SchemaVersion)
		}
		for _, name := range [][]byte{bucketBans, bucketHistory, bucketCursors, bucketCrowdSec, bucketOutbox, bucketEvents, bucketAttempts, bucketBlocklists} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close closes the file and releases the lock.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("store %s: close: %w", db.path, err)
	}
	return nil
}

// Path is the file the store lives in.
func (db *DB) Path() string { return db.path }

func (db *DB) update(fn func(tx *bolt.Tx) error) (err error) {
	defer db.recoverCorrupt(&err)
	if err := db.bolt.Update(fn); err != nil {
		return fmt.Errorf("store %s: %w", db.path, err)
	}
	return nil
}

func (db *DB) view(fn func(tx *bolt.Tx) error) (err error) {
	defer db.recoverCorrupt(&err)
	if err := db.bolt.View(fn); err != nil {
		return fmt.Errorf("store %s: %w", db.path, err)
	}
	return nil
}

func (db *DB) recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("store %s: %w: %v", db.path, ErrCorrupt, r)
	}
}

// PutBans writes bans in one transaction. For every ban that is neither
// Manual nor Pulled it also counts an offence in the target's history,
// unless it replaces a counted ban of the target still in force at its
// Since: one ban episode is one offence, however often it is decided again
// (SameEpisode). evs (the history of the action) are written in the same
// transaction.
func (db *DB) PutBans(bans []Ban, evs ...Event) error { return db.ReplaceBans(bans, nil, evs...) }

// DeleteBans removes the bans of targets in one transaction; targets that
// are not banned are ignored. The history is kept; evs are written in the
// same transaction.
func (db *DB) DeleteBans(targets []netip.Prefix, evs ...Event) error {
	return db.ReplaceBans(nil, targets, evs...)
}

// ReplaceBans writes put and removes the bans of del in one transaction,
// as PutBans and DeleteBans do: a blocklist's new version replaces the old
// one whole or not at all.
func (db *DB) ReplaceBans(put []Ban, del []netip.Prefix, evs ...Event) error {
	type rec struct {
		key []byte
		ban *Ban
	}
	// bbolt inserts into a node's sorted slice: keys in random order make a
	// big transaction quadratic (100k bans: 40 s), sorted ones are appends.
	recs := make([]rec, len(put))
	for i := range put {
		if !put[i].Target.IsValid() {
			return fmt.Errorf("store %s: put ban: invalid target", db.path)
		}
		recs[i] = rec{prefixKey(nil, put[i].Target), &put[i]}
	}
	slices.SortStableFunc(recs, func(a, b rec) int { return bytes.Compare(a.key, b.key) })
	return db.updateEvents(evs, func(tx *bolt.Tx) error {
		bb, hb := tx.Bucket(bucketBans), tx.Bucket(bucketHistory)
		var kbuf [17]byte
		for _, t := range del {
			if !t.IsValid() {
				continue
			}
			if err := bb.Delete(prefixKey(kbuf[:0], t)); err != nil {
				return fmt.Errorf("delete ban %s: %w", t, err)
			}
		}
		for _, r := range recs {
			b := r.ban
			offence := !b.Manual && !b.Pulled
			if v := bb.Get(r.key); v != nil && offence {
				old, err := decodeBanKV(r.key, v, nil)
				if err != nil {
					return err
				}
				offence = !SameEpisode(old, *b)
			}
			// bbolt keeps the slices until commit: no buffer reuse.
			if err := bb.Put(r.key, encodeBan(nil, b)); err != nil {
				return fmt.Errorf("put ban %s: %w", b.Target, err)
			}
			if !offence {
				continue
			}
			h, err := historyIn(hb, r.key, b.Target)
			if err != nil {
				return err
			}
			h.Offences++
			if b.Since.After(h.LastBan) {
				h.LastBan = b.Since
			}
			if err := hb.Put(r.key, encodeHistory(nil, h)); err != nil {
				return fmt.Errorf("put history %s: %w", b.Target, err)
			}
		}
		return db.appendEvents(tx, evs)
	})
}

// Bans returns every stored ban, expired ones included. Equal jail names
// and reasons share one string.
func (db *DB) Bans() ([]Ban, error) {
	var out []Ban
	err := db.view(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBans)
		out = make([]Ban, 0, bb.Stats().KeyN)
		in := interner{}
		return bb.ForEach(func(k, v []byte) error {
			b, err := decodeBanKV(k, v, in)
			if err != nil {
				return err
			}
			out = append(out, b)
			return nil
		})
	})
	return out, err
}

// GetBan returns the stored ban of t.
func (db *DB) GetBan(t netip.Prefix) (Ban, bool, error) {
	var (
		b  Ban
		ok bool
	)
	err := db.view(func(tx *bolt.Tx) error {
		k := prefixKey(nil, t)
		v := tx.Bucket(bucketBans).Get(k)
		if v == nil {
			return nil
		}
		var err error
		b, err = decodeBanKV(k, v, nil)
		ok = err == nil
		return err
	})
	return b, ok, err
}

// WithEvidence sets each ban's Evidence to that of the stored ban of its
// target (none where the store has no ban of it), in one read: the ban
// manager keeps no evidence in memory, the store is where it lives.
func (db *DB) WithEvidence(bans []*Ban) error {
	if len(bans) == 0 {
		return nil
	}
	return db.view(func(tx *bolt.Tx) error {
		bb := tx.Bucket(bucketBans)
		var k []byte
		for _, b := range bans {
			k = prefixKey(k, b.Target)
			v := bb.Get(k)
			if v == nil {
				b.Evidence = nil
				continue
			}
			stored, err := decodeBanKV(k, v, nil)
			if err != nil {
				return err
			}
			b.Evidence = stored.Evidence
		}
		return nil
	})
}

// History returns t's offence record (zero if none).
func (db *DB) History(t netip.Prefix) (History, error) {
	hs, err := db.Histories([]netip.Prefix{t})
	if err != nil {
		return History{}, err
	}
	return hs[0], nil
}

// PurgeHistory forgets the offences of targets last banned before olderThan.
func (db *DB) PurgeHistory(olderThan time.Time) (int, error) {
	return db.deleteWhere(bucketHistory, func(k, v []byte) (bool, error) {
		h, err := decodeHistory(v)
		if err != nil {
			return false, fmt.Errorf("%w: history record %x: %v", ErrCorrupt, k, err)
		}
		return h.LastBan.Before(olderThan), nil
	})
}

// PurgeExpired deletes the bans that ended at or before now.
func (db *DB) PurgeExpired(now time.Time) (int, error) {
	return db.deleteWhere(bucketBans, func(k, v []byte) (bool, error) {
		until, err := banUntil(v)
		if err != nil {
			return false, fmt.Errorf("%w: ban record %x: %v", ErrCorrupt, k, err)
		}
		return !until.After(now), nil
	})
}

// deleteWhere deletes, in one transaction, the records of bucket for which
// drop says so, and returns how many.
func (db *DB) deleteWhere(bucket []byte, drop func(k, v []byte) (bool, error)) (int, error) {
	n := 0
	err := db.update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.First(); k != nil; {
			del, err := drop(k, v)
			if err != nil {
				return err
			}
			if !del {
				k, v = c.Next()
				continue
			}
			k = append([]byte(nil), k...) // k points into the page Delete changes
			if err := c.Delete(); err != nil {
				return err
			}
			n++
			// After Delete the cursor already stands on the next item;
			// Seek(k) finds it without skipping one.
			k, v = c.Seek(k)
		}
		return nil
	})
	return n, err
}

// Cursor returns the cursor stored under key.
func (db *DB) Cursor(key string) (Cursor, bool, error) {
	var (
		c  Cursor
		ok bool
	)
	err := db.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCursors).Get([]byte(key))
		if v == nil {
			return nil
		}
		var err error
		if c, err = decodeCursor(v); err != nil {
			return fmt.Errorf("%w: cursor %q: %v", ErrCorrupt, key, err)
		}
		ok = true
		return nil
	})
	return c, ok, err
}

// PutCursors writes cursors in one transaction.
func (db *DB) PutCursors(cs map[string]Cursor) error {
	return db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCursors)
		for k, c := range cs {
			if k == "" {
				return errors.New("put cursor: empty key")
			}
			if err := b.Put([]byte(k), encodeCursor(nil, c)); err != nil {
				return fmt.Errorf("put cursor %q: %w", k, err)
			}
		}
		return nil
	})
}

func decodeBanKV(k, v []byte, in interner) (Ban, error) {
	t, err := parsePrefixKey(k)
	if err != nil {
		return Ban{}, fmt.Errorf("%w: ban key %x: %v", ErrCorrupt, k, err)
	}
	b, err := decodeBan(v, in)
	if err != nil {
		return Ban{}, fmt.Errorf("%w: ban of %s: %v", ErrCorrupt, t, err)
	}
	b.Target = t
	return b, nil
}

// prefixKey is the masked address bytes (4 or 16) followed by the length,
// so keys of one family sort by address.
func prefixKey(dst []byte, p netip.Prefix) []byte {
	p = p.Masked()
	if a := p.Addr(); a.Is4() {
		b := a.As4()
		dst = append(dst[:0], b[:]...)
	} else {
		b := a.As16()
		dst = append(dst[:0], b[:]...)
	}
	return append(dst, byte(p.Bits()))
}

func parsePrefixKey(k []byte) (netip.Prefix, error) {
	var a netip.Addr
	switch len(k) {
	case 5:
		a = netip.AddrFrom4([4]byte(k[:4]))
	case 17:
		a = netip.AddrFrom16([16]byte(k[:16]))
	default:
		return netip.Prefix{}, fmt.Errorf("length %d", len(k))
	}
	p := netip.PrefixFrom(a, int(k[len(k)-1]))
	if !p.IsValid() || p.Masked() != p {
		return netip.Prefix{}, errors.New("bad prefix")
	}
	return p, nil
}

// Histories returns the offence records of many targets in one read
// transaction, in the order given.
func (db *DB) Histories(targets []netip.Prefix) ([]History, error) {
	out := make([]History, len(targets))
	err := db.view(func(tx *bolt.Tx) error {
		hb := tx.Bucket(bucketHistory)
		var kbuf [17]byte
		for i, t := range targets {
			var err error
			if out[i], err = historyIn(hb, prefixKey(kbuf[:0], t), t); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// historyIn reads t's record (key k) from the history bucket; zero if none.
func historyIn(hb *bolt.Bucket, k []byte, t netip.Prefix) (History, error) {
	v := hb.Get(k)
	if v == nil {
		return History{}, nil
	}
	h, err := decodeHistory(v)
	if err != nil {
		return History{}, fmt.Errorf("%w: history of %s: %v", ErrCorrupt, t, err)
	}
	return h, nil
}
