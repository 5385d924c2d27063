package store

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mappingRSS is the resident size (KiB) of this process's mapping that
// starts at addr, from /proc/self/smaps: the process's resident set, which
// mincore (the page cache's) would not tell.
func mappingRSS(t *testing.T, addr uintptr) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := fmt.Sprintf("%x-", addr)
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasPrefix(line, want)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			return kb
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("no mapping at %#x in /proc/self/smaps", addr)
	return 0
}

// TestReleasePages reads every ban of a store of several MiB, releases the
// pages and checks that the mapping's resident size fell, that every ban
// still reads back as written, and that reading makes the pages resident
// again.
func TestReleasePages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	const n = 20_000
	want := make(map[netip.Prefix]Ban, n)
	bans := make([]Ban, 0, n)
	for i := range n {
		b := Ban{
			Target: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32),
			Jail:   "auth", Reason: "failures " + strconv.Itoa(i), Since: now, Until: now.Add(time.Duration(i+1) * time.Minute), Level: i % 5,
			Evidence: []string{strings.Repeat("evidence line ", 10) + strconv.Itoa(i)},
		}
		bans = append(bans, b)
		want[b.Target] = b
	}
	if err := db.PutBans(bans); err != nil {
		t.Fatal(err)
	}
	// A fresh mapping, so that what is resident is what this test reads.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	start := db.bolt.Info().Data

	check := func() {
		t.Helper()
		got, err := db.Bans()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("read %d bans, want %d", len(got), n)
		}
		for _, b := range got {
			w, ok := want[b.Target]
			if !ok || b.Jail != w.Jail || b.Reason != w.Reason || !b.Until.Equal(w.Until) || b.Level != w.Level ||
				len(b.Evidence) != 1 || b.Evidence[0] != w.Evidence[0] {
				t.Fatalf("read back %+v, wrote %+v", b, w)
			}
		}
	}
	check()
	read := mappingRSS(t, start)
	// 20,000 bans of about 200 bytes: some 4 MiB of pages.
	if read < 2048 {
		t.Fatalf("the mapping holds %d KiB after reading every ban; the test expects a few MiB", read)
	}
	if err := db.ReleasePages(); err != nil {
		t.Fatal(err)
	}
	released := mappingRSS(t, start)
	t.Logf("mapping resident: %d KiB after the read, %d KiB after ReleasePages", read, released)
	if released > 64 {
		t.Fatalf("the mapping still holds %d KiB after ReleasePages (%d KiB before)", released, read)
	}
	check()
	if again := mappingRSS(t, start); again < read/2 {
		t.Fatalf("reading again made %d KiB resident, the first read %d KiB: the pages did not fault back in", again, read)
	}
	// A write after the release reads the tree it changes through the
	// same mapping.
	extra := Ban{Target: netip.MustParsePrefix("192.0.2.1/32"), Jail: "auth", Since: now, Until: now.Add(time.Hour)}
	if err := db.ReleasePages(); err != nil {
		t.Fatal(err)
	}
	if err := db.PutBans([]Ban{extra}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.GetBan(extra.Target)
	if err != nil || !ok || got.Jail != "auth" {
		t.Fatalf("GetBan after a release and a write = %+v, %v, %v", got, ok, err)
	}
}
