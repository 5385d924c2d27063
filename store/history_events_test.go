package store

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestEventsWithTheirAction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := netip.MustParsePrefix("192.0.2.8/32"), netip.MustParsePrefix("2001:db8::/64")
	bans := []Ban{{Target: a, Jail: "smtp", Since: t0, Until: t0.Add(time.Hour), Level: 1}}
	if err := db.PutBans(bans, Event{Time: t0, Kind: EventBan, Target: a, Jail: "smtp", Duration: time.Hour, Level: 1, UID: NoUID,
		Evidence: []string{"x", "y", "z", strings.Repeat("é", 600)}}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteBans([]netip.Prefix{a}, Event{Time: t0.Add(time.Minute), Kind: EventUnban, Target: a, UID: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddEvents([]Event{{Time: t0.Add(2 * time.Minute), Kind: EventStop, UID: NoUID}, {Time: t0.Add(3 * time.Minute), Kind: EventManual, Target: b, UID: 0}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	tests := []struct {
		name  string
		f     EventFilter
		kinds []string
	}{
		{"all", EventFilter{}, []string{EventBan, EventUnban, EventStop, EventManual}},
		{"target", EventFilter{Target: netip.MustParsePrefix("192.0.2.0/24")}, []string{EventBan, EventUnban}},
		{"v6 inside", EventFilter{Target: netip.MustParsePrefix("2001:db8::5/128")}, []string{EventManual}},
		{"since", EventFilter{Since: t0.Add(90 * time.Second)}, []string{EventStop, EventManual}},
		{"kind", EventFilter{Kinds: []string{EventUnban, EventStop}}, []string{EventUnban, EventStop}},
		{"jail", EventFilter{Jail: "smtp"}, []string{EventBan}},
		{"limit keeps newest", EventFilter{Limit: 1}, []string{EventManual}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := db.Events(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range evs {
				got = append(got, e.Kind)
			}
			if strings.Join(got, ",") != strings.Join(tt.kinds, ",") {
				t.Fatalf("kinds %v, want %v", got, tt.kinds)
			}
		})
	}
	evs, _ := db.Events(EventFilter{Kinds: []string{EventBan}})
	e := evs[0]
	if e.Target != a || e.Duration != time.Hour || e.Level != 1 || e.UID != NoUID || !e.Time.Equal(t0) {
		t.Fatalf("ban event %+v", e)
	}
	if len(e.Evidence) != maxEventEvidence || e.Evidence[0] != "y" || len(e.Evidence[2]) > maxEventEvidenceLine {
		t.Fatalf("evidence not bounded: %d lines, last %d bytes", len(e.Evidence), len(e.Evidence[2]))
	}
	evs, _ = db.Events(EventFilter{Kinds: []string{EventUnban}})
	if evs[0].UID != 1000 {
		t.Fatalf("unban uid %d", evs[0].UID)
	}
}

func TestEventBounds(t *testing.T) {
	db := openTemp(t)
	db.SetEventLimits(EventLimits{MaxEvents: 10, MaxAge: time.Hour})
	t0 := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	for i := range 25 {
		if err := db.AddEvents([]Event{{Time: t0.Add(time.Duration(i) * time.Minute), Kind: EventStart}}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := db.Events(EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 10 || evs[0].Seq != 16 || evs[9].Seq != 25 {
		t.Fatalf("kept %d events, %d..%d; want 10, 16..25", len(evs), evs[0].Seq, evs[len(evs)-1].Seq)
	}
	if n, _ := db.EventsDropped(); n != 15 {
		t.Fatalf("dropped %d, want 15", n)
	}
	// Age: now is t0+80m, so events before t0+20m go (seq 16..20 are t0+15..19m).
	n, err := db.PruneEvents(t0.Add(80 * time.Minute))
	if err != nil || n != 5 {
		t.Fatalf("pruned %d (%v), want 5", n, err)
	}
	if n, _ := db.EventsDropped(); n != 20 {
		t.Fatalf("dropped %d, want 20", n)
	}
	if evs, _ = db.Events(EventFilter{}); len(evs) != 5 {
		t.Fatalf("%d left, want 5", len(evs))
	}
}

// The hook sees each committed event once, with its sequence, and nothing
// of a transaction that failed.
func TestEventHook(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "bansd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []Event
	db.SetEventHook(func(evs []Event) { got = append(got, evs...) })
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := netip.MustParsePrefix("192.0.2.9/32")
	if err := db.PutBans([]Ban{{Target: a, Jail: "auth", Since: t0, Until: t0.Add(time.Hour)}}, Event{Time: t0, Kind: EventBan, Target: a, Jail: "auth", UID: NoUID}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteBans([]netip.Prefix{a}, Event{Time: t0, Kind: EventUnban, Target: a, UID: 0}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddEvents([]Event{{Time: t0, Kind: EventAlarm, Reason: "gateway-client", UID: NoUID}}); err != nil {
		t.Fatal(err)
	}
	// An invalid target fails the whole transaction: no event is handed on.
	if err := db.PutBans([]Ban{{Jail: "auth"}}, Event{Time: t0, Kind: EventBan, UID: NoUID}); err == nil {
		t.Fatal("PutBans with an invalid target succeeded")
	}
	want := []string{EventBan, EventUnban, EventAlarm}
	if len(got) != len(want) {
		t.Fatalf("hook got %d events %+v, want kinds %v", len(got), got, want)
	}
	stored, err := db.Events(EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got {
		if e.Kind != want[i] || e.Seq != stored[i].Seq || e.Seq == 0 {
			t.Errorf("hook event %d: kind %s seq %d, want kind %s seq %d", i, e.Kind, e.Seq, want[i], stored[i].Seq)
		}
	}
}

// Events are stored binary; those an older bansd wrote as JSON still read.
func TestEventFormats(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	want := []Event{
		{Time: t0, Kind: EventBan, Target: netip.MustParsePrefix("192.0.2.8/32"), Jail: "smtp", Reason: "5 failures",
			Duration: time.Hour, Level: 3, UID: NoUID, Evidence: []string{"a", "b"}},
		{Time: t0, Kind: EventStop, UID: 0},
		{Time: t0, Kind: EventReload, UID: 1000, Detail: "ignoreip: added 203.0.113.0/24"},
		{Time: t0, Kind: EventUnban, Target: netip.MustParsePrefix("2001:db8::/64"), UID: 1000},
	}
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddEvents(append([]Event(nil), want[:2]...)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// The older format, written behind the store's back.
	legacy := `{"seq":3,"time":"2026-01-02T03:04:05.000000006Z","kind":"reload","uid":1000,"detail":"ignoreip: added 203.0.113.0/24"}`
	editRaw(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if _, err := b.NextSequence(); err != nil {
			return err
		}
		return b.Put(eventKey(3), []byte(legacy))
	})
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.AddEvents(append([]Event(nil), want[3])); err != nil {
		t.Fatal(err)
	}
	got, err := db.Events(EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		w, g := want[i], got[i]
		w.Seq = uint64(i + 1)
		if !g.Time.Equal(w.Time) || g.Seq != w.Seq || g.Kind != w.Kind || g.Target != w.Target || g.Jail != w.Jail ||
			g.Reason != w.Reason || g.Duration != w.Duration || g.Level != w.Level || g.UID != w.UID ||
			!reflect.DeepEqual(g.Evidence, w.Evidence) || g.Detail != w.Detail {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	key := eventKey(7)
	f.Add(encodeEvent(nil, &Event{Time: time.Unix(1, 0), Kind: EventBan, Target: netip.MustParsePrefix("192.0.2.1/32"),
		Jail: "auth", Duration: time.Hour, Level: 2, UID: NoUID, Evidence: []string{"x"}, Detail: "d"}))
	f.Add([]byte{eventFormat})
	f.Add([]byte(`{"seq":1,"kind":"stop"}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		e, err := decodeEvent(key, v)
		if err != nil || v[0] == '{' {
			return
		}
		again, err := decodeEvent(key, encodeEvent(nil, &e))
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("re-encoding changed the event: %+v vs %+v (%v)", e, again, err)
		}
	})
}
