package store

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestReplaceBans(t *testing.T) {
	db := openTemp(t)
	now := time.Unix(1_800_000_000, 0)
	ban := func(s string) Ban {
		return Ban{Target: netip.MustParsePrefix(s), Jail: "blocklist:x", Since: now, Until: now.Add(time.Hour), Manual: true}
	}
	if err := db.PutBans([]Ban{ban("192.0.2.1/32"), ban("192.0.2.2/32")}); err != nil {
		t.Fatal(err)
	}
	ev := Event{Time: now, Kind: EventUnban, Target: netip.MustParsePrefix("192.0.2.1/32"), Jail: "blocklist:x", UID: NoUID}
	if err := db.ReplaceBans([]Ban{ban("192.0.2.3/32")}, []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("198.51.100.9/32")}, ev); err != nil {
		t.Fatal(err)
	}
	bans, err := db.Bans()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bans {
		got = append(got, b.Target.String())
	}
	if want := []string{"192.0.2.2/32", "192.0.2.3/32"}; !reflect.DeepEqual(got, want) {
		t.Errorf("bans = %v, want %v", got, want)
	}
	if evs, _ := db.Events(EventFilter{Jail: "blocklist:x"}); len(evs) != 1 || evs[0].Kind != EventUnban {
		t.Errorf("events = %+v, want the one unban", evs)
	}
	if h, _ := db.History(netip.MustParsePrefix("192.0.2.3/32")); h.Offences != 0 {
		t.Errorf("a manual ban counted an offence: %+v", h)
	}
	// One transaction: an invalid ban leaves the deletions undone too.
	if err := db.ReplaceBans([]Ban{{}}, []netip.Prefix{netip.MustParsePrefix("192.0.2.2/32")}); err == nil {
		t.Fatal("an invalid ban was accepted")
	}
	if _, ok, _ := db.GetBan(netip.MustParsePrefix("192.0.2.2/32")); !ok {
		t.Error("a failed replace deleted a ban")
	}
}

func TestBlocklistRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_800_000_000, 0).UTC()
	drop := Blocklist{Name: "drop", Source: "https://www.spamhaus.org/drop/drop.txt", ETag: `"abc"`, LastModified: "Tue, 01 Dec 2026 10:05:11 GMT",
		Fetched: at, Targets: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}}
	mine := Blocklist{Name: "mine", Source: "/etc/bansd/list.txt", Fetched: at, Targets: []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")}}
	for _, l := range []Blocklist{drop, mine, {Name: "gone", Source: "/x"}} {
		if err := db.PutBlocklist(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteBlocklist("gone"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Blocklists()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Blocklist{drop, mine}) {
		t.Errorf("after reopen: %+v", got)
	}
}
