package store

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The events bucket is the audit history: one record per action (a ban, an
// unban, an expiry, a reload...), keyed by the bucket's sequence number
// (big-endian, so a scan is in time order). Keys only ever leave from the
// front, so the live count is the sequence minus the first key plus one: no
// full scan to bound it.
var (
	bucketEvents     = []byte("events")
	keyEventsDropped = []byte("events_dropped")
)

// Event kinds.
const (
	EventBan     = "ban"           // automatic ban from a jail
	EventManual  = "manual"        // operator's ban (bansctl ban)
	EventImport  = "import"        // operator's bulk import
	EventRefresh = "refresh"       // a live ban made longer (escalation or a new offence)
	EventUnban   = "unban"         // operator's unban
	EventExpire  = "expire"        // the ban's time passed
	EventAlarm   = "alarm"         // an alarm raised
	EventCleared = "alarm-cleared" // an alarm's cause went away
	EventReload  = "reload"        // configuration reloaded
	EventRefused = "refused"       // configuration reload refused
	EventStart   = "start"         // daemon start
	EventStop    = "stop"          // daemon stop
	EventShield  = "shield"        // relay shield raised, lowered, turned off or on
	EventAllow   = "allow-list"    // the never-ban allow-list (ignoreip) changed
)

// NoUID marks an event no local user caused.
const NoUID = -1

// Limits an event's attacker-influenced text: events are many and kept long.
const (
	maxEventEvidence     = 3
	maxEventEvidenceLine = 512
	maxEventText         = 1024
)

// DefaultMaxEvents keeps about 90 days of a busy host (a few thousand
// bans and expiries a day, a few hundred bytes each) within tens of MB.
const DefaultMaxEvents = 200_000

// Event is one action in the history.
type Event struct {
	Seq      uint64        `json:"seq"`
	Time     time.Time     `json:"time"`
	Kind     string        `json:"kind"`
	Target   netip.Prefix  `json:"target,omitzero"`
	Jail     string        `json:"jail,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	Level    int           `json:"level,omitempty"`
	UID      int           `json:"uid"`
	Evidence []string      `json:"evidence,omitempty"`
	Detail   string        `json:"detail,omitempty"`
}

// EventLimits bound the history; zero fields mean no bound of that kind.
type EventLimits struct {
	MaxEvents int
	MaxAge    time.Duration
}

// SetEventHook sets fn to receive every event once its transaction has
// committed (with its Seq), in the writer's goroutine: fn must not block.
// It is the one place the daemon learns of every action, for its
// notifications. Call before the store is shared.
func (db *DB) SetEventHook(fn func([]Event)) { db.eventHook = fn }

// updateEvents runs fn, which writes evs (through appendEvents), and hands
// the committed events to the hook.
func (db *DB) updateEvents(evs []Event, fn func(tx *bolt.Tx) error) error {
	if err := db.update(fn); err != nil {
		return err
	}
	if db.eventHook != nil && len(evs) > 0 {
		db.eventHook(evs)
	}
	return nil
}

// SetEventLimits sets the count bound enforced at each write (and the age
// bound PruneEvents uses). Call before the store is shared.
func (db *DB) SetEventLimits(l EventLimits) { db.eventLimits = l }

// AddEvents records events that have no store change of their own (start,
// stop, reload, alarm) in one transaction.
func (db *DB) AddEvents(evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	return db.updateEvents(evs, func(tx *bolt.Tx) error { return db.appendEvents(tx, evs) })
}

// appendEvents writes evs inside tx (the action's own transaction, so a
// crash keeps both or neither) and drops the oldest beyond the count bound.
func (db *DB) appendEvents(tx *bolt.Tx, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketEvents)
	if err != nil {
		return err
	}
	// Keys are a sequence: appends only, so pages may be filled.
	b.FillPercent = 1
	for i := range evs {
		e := boundEvent(evs[i])
		if e.Seq, err = b.NextSequence(); err != nil {
			return err
		}
		evs[i].Seq = e.Seq
		if err := b.Put(eventKey(e.Seq), encodeEvent(nil, &e)); err != nil {
			return fmt.Errorf("put event: %w", err)
		}
	}
	max := db.eventLimits.MaxEvents
	if max <= 0 {
		return nil
	}
	c := b.Cursor()
	k, _ := c.First()
	if k == nil {
		return nil
	}
	first := binary.BigEndian.Uint64(k)
	count := b.Sequence() - first + 1
	dropped := uint64(0)
	for ; count > uint64(max) && k != nil; count-- {
		if err := c.Delete(); err != nil {
			return err
		}
		dropped++
		k, _ = c.First()
	}
	return addDropped(tx, dropped)
}

func addDropped(tx *bolt.Tx, n uint64) error {
	if n == 0 {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	var cur uint64
	if v := meta.Get(keyEventsDropped); len(v) == 8 {
		cur = binary.BigEndian.Uint64(v)
	}
	return meta.Put(keyEventsDropped, binary.BigEndian.AppendUint64(nil, cur+n))
}

// EventsDropped is how many events were dropped by the bounds, ever.
func (db *DB) EventsDropped() (uint64, error) {
	var n uint64
	err := db.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyEventsDropped); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return n, err
}

// PruneEvents drops the events older than now minus the age bound and
// returns how many.
func (db *DB) PruneEvents(now time.Time) (int, error) {
	age := db.eventLimits.MaxAge
	if age <= 0 {
		return 0, nil
	}
	cut := now.Add(-age)
	n := 0
	err := db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		// Events are in time order, so the old ones are a prefix.
		for k, v := c.First(); k != nil; k, v = c.First() {
			e, err := decodeEvent(k, v)
			if err != nil {
				return fmt.Errorf("%w: event %x: %v", ErrCorrupt, k, err)
			}
			if !e.Time.Before(cut) {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return addDropped(tx, uint64(n))
	})
	return n, err
}

// EventFilter selects events; zero fields select everything.
type EventFilter struct {
	Target netip.Prefix // events whose target overlaps it
	Since  time.Time
	Jail   string
	Kinds  []string
	Limit  int // the newest Limit matches; 0 for all
}

func (f *EventFilter) match(e *Event) bool {
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if f.Target.IsValid() && (!e.Target.IsValid() || !f.Target.Overlaps(e.Target)) {
		return false
	}
	if f.Jail != "" && e.Jail != f.Jail {
		return false
	}
	if len(f.Kinds) > 0 {
		for _, k := range f.Kinds {
			if k == e.Kind {
				return true
			}
		}
		return false
	}
	return true
}

// Events returns the events f selects, oldest first.
func (db *DB) Events(f EventFilter) ([]Event, error) {
	var out []Event
	err := db.EachEvent(f.Since, func(e *Event) bool {
		if f.match(e) {
			out = append(out, *e)
			if f.Limit > 0 && len(out) >= f.Limit {
				return false
			}
		}
		return true
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// EachEvent calls fn with each event at or after since (all when zero),
// newest first, until fn returns false. It holds one event at a time, so an
// aggregate over the whole history costs no more memory than its result.
func (db *DB) EachEvent(since time.Time, fn func(e *Event) bool) error {
	return db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return nil
		}
		// Newest first from the end, so a limit or a since stops early.
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			e, err := decodeEvent(k, v)
			if err != nil {
				return fmt.Errorf("%w: event %x: %v", ErrCorrupt, k, err)
			}
			if !since.IsZero() && e.Time.Before(since) {
				// Time order: nothing older can match.
				break
			}
			if !fn(&e) {
				break
			}
		}
		return nil
	})
}

func eventKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func boundEvent(e Event) Event {
	e.Jail = boundText(e.Jail, 64)
	e.Reason = boundText(e.Reason, maxEventText)
	e.Detail = boundText(e.Detail, maxEventText)
	if len(e.Evidence) > maxEventEvidence {
		e.Evidence = e.Evidence[len(e.Evidence)-maxEventEvidence:]
	}
	ev := make([]string, len(e.Evidence))
	for i, l := range e.Evidence {
		ev[i] = boundText(l, maxEventEvidenceLine)
	}
	if len(ev) > 0 {
		e.Evidence = ev
	} else {
		e.Evidence = nil
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	return e
}

// boundText cuts s to at most n bytes without splitting a UTF-8 sequence.
func boundText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
