package store

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

// TestAllowLifecycle: entries persist across a reopen, a lifting write
// changes the bans in the same transaction without counting offences for
// the split pieces, expiry and removal take only what they should, and
// each records its event.
func TestAllowLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Millisecond)
	wide := Ban{Target: netip.MustParsePrefix("203.0.113.0/24"), Jail: "auth", Since: now, Until: now.Add(time.Hour), Level: 2}
	if err := db.PutBans([]Ban{wide, {Target: netip.MustParsePrefix("198.51.100.7/32"), Jail: "auth", Since: now, Until: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	piece := wide
	piece.Target = netip.MustParsePrefix("203.0.113.128/25")
	entry := Allow{Target: netip.MustParsePrefix("203.0.113.0/25"), Reason: "office", Since: now, UID: 0}
	if err := db.PutAllowLifting(&entry, []netip.Prefix{wide.Target, netip.MustParsePrefix("198.51.100.7/32")}, []Ban{piece},
		Event{Kind: EventAllow, Target: entry.Target, Detail: "added"}); err != nil {
		t.Fatal(err)
	}
	short := Allow{Target: netip.MustParsePrefix("2001:db8::1/128"), Since: now, Until: now.Add(time.Minute), UID: NoUID}
	if err := db.PutAllowLifting(&short, nil, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()

	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Allows()
	if err != nil || len(got) != 2 {
		t.Fatalf("Allows after reopen = %+v, %v; want %+v and %+v", got, err, entry, short)
	}
	for _, w := range []Allow{entry, short} {
		found := false
		for _, g := range got {
			found = found || g.Target == w.Target && g.Reason == w.Reason && g.Since.Equal(w.Since) && g.Until.Equal(w.Until) && g.UID == w.UID
		}
		if !found {
			t.Errorf("Allows after reopen = %+v; %+v missing", got, w)
		}
	}
	bans, _ := db.Bans()
	if len(bans) != 1 || bans[0].Target != piece.Target || bans[0].Level != 2 || !bans[0].Until.Equal(wide.Until) {
		t.Fatalf("bans after the lifting write = %+v; want only the piece %s with the wide ban's level and end", bans, piece.Target)
	}
	if h, _ := db.History(piece.Target); h.Offences != 0 {
		t.Errorf("a split piece counted %d offences, want 0", h.Offences)
	}
	if h, _ := db.History(wide.Target); h.Offences != 1 {
		t.Errorf("the wide ban's history = %d offences, want 1 (kept)", h.Offences)
	}

	expired := func(a Allow) Event { return Event{Kind: EventAllow, Target: a.Target, Detail: "expired"} }
	gone, err := db.PurgeExpiredAllows(now.Add(30*time.Second), expired)
	if err != nil || len(gone) != 0 {
		t.Fatalf("purge before the end = %v, %v; want nothing", gone, err)
	}
	gone, err = db.PurgeExpiredAllows(now.Add(time.Minute), expired)
	if err != nil || len(gone) != 1 || gone[0].Target != short.Target {
		t.Fatalf("purge at the end = %v, %v; want %s", gone, err, short.Target)
	}
	gone, err = db.DeleteAllows([]netip.Prefix{entry.Target, netip.MustParsePrefix("192.0.2.1/32")},
		func(a Allow) Event { return Event{Kind: EventAllow, Target: a.Target, Detail: "removed"} })
	if err != nil || len(gone) != 1 || gone[0].Target != entry.Target || gone[0].Reason != entry.Reason {
		t.Fatalf("DeleteAllows = %v, %v; want only %s", gone, err, entry.Target)
	}
	if got, _ := db.Allows(); len(got) != 0 {
		t.Errorf("Allows after removal = %v", got)
	}
	evs, err := db.Events(EventFilter{Kinds: []string{EventAllow}})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, e := range evs {
		details = append(details, e.Target.String()+" "+e.Detail)
	}
	want := []string{"203.0.113.0/25 added", "2001:db8::1/128 expired", "203.0.113.0/25 removed"}
	if len(details) != len(want) {
		t.Fatalf("allow events = %q, want %q", details, want)
	}
	for i := range want {
		if details[i] != want[i] {
			t.Errorf("allow event %d = %q, want %q", i, details[i], want[i])
		}
	}
}

// TestAllowBounded: the list stops at MaxAllows; replacing an entry is
// still fine.
func TestAllowBounded(t *testing.T) {
	db := openTemp(t)
	now := time.Now()
	for i := range MaxAllows {
		a := Allow{Target: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32), Since: now}
		if err := db.PutAllowLifting(&a, nil, nil); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	over := Allow{Target: netip.MustParsePrefix("203.0.113.1/32"), Since: now}
	if err := db.PutAllowLifting(&over, nil, nil); !errors.Is(err, ErrAllowFull) {
		t.Fatalf("entry %d: %v, want ErrAllowFull", MaxAllows+1, err)
	}
	again := Allow{Target: netip.MustParsePrefix("198.18.0.5/32"), Since: now, Reason: "again"}
	if err := db.PutAllowLifting(&again, nil, nil); err != nil {
		t.Fatalf("replacing an entry of a full list: %v", err)
	}
}

// TestAllowCorrupt: a damaged entry is an error naming it, not a panic.
func TestAllowCorrupt(t *testing.T) {
	for _, v := range [][]byte{{}, {9}, {allowFormat, 1, 2}, append(encodeAllow(Allow{Reason: "x"}), 0)} {
		if _, err := decodeAllowKV(prefixKey(nil, netip.MustParsePrefix("192.0.2.0/24")), v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode %x: %v, want ErrCorrupt", v, err)
		}
	}
}

// FuzzDecodeAllow: any record decodes to an entry or an ErrCorrupt, never a
// panic, and what encodes decodes back the same.
func FuzzDecodeAllow(f *testing.F) {
	f.Add([]byte{203, 0, 113, 0, 24}, encodeAllow(Allow{Reason: "office", Since: time.Unix(1, 0), UID: 0}))
	f.Add(make([]byte, 17), []byte{allowFormat})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		a, err := decodeAllowKV(k, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode %x=%x: %v, not ErrCorrupt", k, v, err)
			}
			return
		}
		b, err := decodeAllowKV(k, encodeAllow(a))
		if err != nil || b.Target != a.Target || b.Reason != a.Reason || !b.Since.Equal(a.Since) || !b.Until.Equal(a.Until) || b.UID != a.UID {
			t.Fatalf("round trip of %+v: %+v, %v", a, b, err)
		}
	})
}
