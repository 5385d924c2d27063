package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestMain lets a test re-exec this binary as a second process that holds
// the store open, because bbolt's lock is only contended across processes.
func TestMain(m *testing.M) {
	if path := os.Getenv("BANSD_STORE_HOLD"); path != "" {
		db, err := Open(path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		// Hold the lock until the parent closes our stdin.
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		db.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func openTemp(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "state", "bansd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// editRaw creates a store at path, then changes it behind the store's back
// with bbolt, the way damage or a newer bansd would.
func editRaw(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Update(fn)
	b.Close()
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Path() != path {
		t.Errorf("Path = %q, want %q", db.Path(), path)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
}

func TestBansRoundTrip(t *testing.T) {
	db := openTemp(t)
	now := time.Unix(1_700_000_000, 123456789)
	bans := []Ban{
		{Target: netip.MustParsePrefix("192.0.2.7/32"), Jail: "auth", Reason: "10 failures", Since: now, Until: now.Add(time.Hour), Level: 2, Evidence: []string{"line one", "user=\"x\x00y\" 203.0.113.9"}},
		{Target: netip.MustParsePrefix("198.51.100.0/24"), Jail: "net", Since: now, Until: now.Add(time.Minute)},
		{Target: netip.MustParsePrefix("2001:db8:1:2::/64"), Jail: "manual", Reason: "admin", Since: now, Until: now.Add(24 * time.Hour), Manual: true},
		{Target: netip.MustParsePrefix("2001:db8::1/128"), Jail: "auth", Since: now, Until: now.Add(time.Second)},
		{Target: netip.MustParsePrefix("203.0.113.0/24"), Jail: "crowdsec", Reason: "crowdsec:cscli/manual", Since: now, Until: now.Add(time.Hour), Pulled: true},
	}
	if err := db.PutBans(bans); err != nil {
		t.Fatal(err)
	}
	got, err := db.Bans()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(bans) {
		t.Fatalf("got %d bans, want %d", len(got), len(bans))
	}
	for _, want := range bans {
		b, ok, err := db.GetBan(want.Target)
		if err != nil || !ok {
			t.Fatalf("GetBan(%s) = %v, %v", want.Target, ok, err)
		}
		if !b.Since.Equal(want.Since) || !b.Until.Equal(want.Until) {
			t.Errorf("%s: times %v..%v, want %v..%v", want.Target, b.Since, b.Until, want.Since, want.Until)
		}
		b.Since, b.Until, want.Since, want.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(b, want) {
			t.Errorf("GetBan(%s) = %+v, want %+v", want.Target, b, want)
		}
	}
	if _, ok, err := db.GetBan(netip.MustParsePrefix("192.0.2.8/32")); ok || err != nil {
		t.Errorf("GetBan of a missing target = %v, %v", ok, err)
	}
	// The same address under another length is another ban.
	if _, ok, _ := db.GetBan(netip.MustParsePrefix("192.0.2.7/31")); ok {
		t.Error("192.0.2.7/31 found; keys must include the prefix length")
	}

	// WithEvidence: each ban gets its stored evidence, a ban the store does
	// not have none (whatever it carried).
	withEv := []*Ban{{Target: bans[0].Target}, {Target: bans[1].Target, Evidence: []string{"stale"}}, {Target: netip.MustParsePrefix("192.0.2.8/32"), Evidence: []string{"stale"}}}
	if err := db.WithEvidence(withEv); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(withEv[0].Evidence, bans[0].Evidence) || withEv[1].Evidence != nil || withEv[2].Evidence != nil {
		t.Errorf("WithEvidence gave %q, %q, %q; want %q, none, none", withEv[0].Evidence, withEv[1].Evidence, withEv[2].Evidence, bans[0].Evidence)
	}

	if err := db.DeleteBans([]netip.Prefix{bans[0].Target, netip.MustParsePrefix("203.0.113.1/32")}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.GetBan(bans[0].Target); ok {
		t.Error("deleted ban still there")
	}
	if got, _ := db.Bans(); len(got) != len(bans)-1 {
		t.Errorf("%d bans after delete, want %d", len(got), len(bans)-1)
	}
}

func TestHistory(t *testing.T) {
	db := openTemp(t)
	a := netip.MustParsePrefix("192.0.2.1/32")
	m := netip.MustParsePrefix("192.0.2.2/32")
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		// Each ban is over before the next: three episodes.
		since := t0.Add(time.Duration(i) * time.Hour)
		if err := db.PutBans([]Ban{{Target: a, Since: since, Until: since.Add(30 * time.Minute)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutBans([]Ban{{Target: m, Since: t0, Until: t0.Add(time.Hour), Manual: true}}); err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("192.0.2.3/32")
	if err := db.PutBans([]Ban{{Target: p, Since: t0, Until: t0.Add(time.Hour), Pulled: true}}); err != nil {
		t.Fatal(err)
	}
	if h, _ := db.History(p); h.Offences != 0 {
		t.Errorf("a pulled ban counted as an offence: %+v", h)
	}
	h, err := db.History(a)
	if err != nil {
		t.Fatal(err)
	}
	if h.Offences != 3 || !h.LastBan.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("history = %+v, want 3 offences, last %v", h, t0.Add(2*time.Hour))
	}
	if h, _ := db.History(m); h.Offences != 0 {
		t.Errorf("a manual ban counted as an offence: %+v", h)
	}
	// Unbanning keeps the record of the offence.
	if err := db.DeleteBans([]netip.Prefix{a}); err != nil {
		t.Fatal(err)
	}
	if h, _ := db.History(a); h.Offences != 3 {
		t.Errorf("offences after unban = %d, want 3", h.Offences)
	}

	b := netip.MustParsePrefix("2001:db8::/64")
	if err := db.PutBans([]Ban{{Target: b, Since: t0.Add(10 * time.Hour), Until: t0.Add(11 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	n, err := db.PurgeHistory(t0.Add(5 * time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeHistory = %d, %v; want 1", n, err)
	}
	if h, _ := db.History(a); h.Offences != 0 {
		t.Errorf("purged history still there: %+v", h)
	}
	if h, _ := db.History(b); h.Offences != 1 {
		t.Errorf("recent history purged: %+v", h)
	}
}

// TestOneEpisodeOneOffence: a ban written again while the target's counted
// ban is in force is the same episode; only a ban over, or one that was
// manual or pulled, lets the next count.
func TestOneEpisodeOneOffence(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name       string
		first      Ban
		againSince time.Duration // the second ban's Since after t0
		want       int
	}{
		{"refresh while in force", Ban{Since: t0, Until: t0.Add(time.Hour)}, 59 * time.Minute, 1},
		{"after it ended", Ban{Since: t0, Until: t0.Add(time.Hour)}, time.Hour, 2},
		{"over a manual ban", Ban{Since: t0, Until: t0.Add(time.Hour), Manual: true}, time.Minute, 1},
		{"over a pulled ban", Ban{Since: t0, Until: t0.Add(time.Hour), Pulled: true}, time.Minute, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTemp(t)
			a := netip.MustParsePrefix("192.0.2.9/32")
			tc.first.Target = a
			if err := db.PutBans([]Ban{tc.first}); err != nil {
				t.Fatal(err)
			}
			since := t0.Add(tc.againSince)
			for range 100 {
				if err := db.PutBans([]Ban{{Target: a, Since: since, Until: since.Add(time.Hour)}}); err != nil {
					t.Fatal(err)
				}
			}
			if h, _ := db.History(a); h.Offences != tc.want {
				t.Errorf("offences = %d, want %d", h.Offences, tc.want)
			}
		})
	}
}

func TestPurgeExpired(t *testing.T) {
	db := openTemp(t)
	now := time.Unix(1_700_000_000, 0)
	var bans []Ban
	for i := range 100 {
		bans = append(bans, Ban{
			Target: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32),
			Since:  now.Add(-time.Hour),
			Until:  now.Add(time.Duration(i-50) * time.Second), // 0..50 are over (50 ends exactly now)
		})
	}
	if err := db.PutBans(bans); err != nil {
		t.Fatal(err)
	}
	n, err := db.PurgeExpired(now)
	if err != nil || n != 51 {
		t.Fatalf("PurgeExpired = %d, %v; want 51", n, err)
	}
	left, _ := db.Bans()
	if len(left) != 49 {
		t.Fatalf("%d left, want 49", len(left))
	}
	for _, b := range left {
		if !b.Until.After(now) {
			t.Errorf("expired ban kept: %+v", b)
		}
	}
}

func TestCursors(t *testing.T) {
	db := openTemp(t)
	ts := time.Date(2026, 11, 27, 6, 0, 0, 123456789, time.UTC)
	in := map[string]Cursor{
		"mailu/front": {ContainerID: "abc123", Time: ts, Count: 3},
		"mailu/admin": {ContainerID: "def456", Time: ts.Add(time.Second), Count: 1},
	}
	if err := db.PutCursors(in); err != nil {
		t.Fatal(err)
	}
	for k, want := range in {
		c, ok, err := db.Cursor(k)
		if err != nil || !ok {
			t.Fatalf("Cursor(%q) = %v, %v", k, ok, err)
		}
		if c.ContainerID != want.ContainerID || !c.Time.Equal(want.Time) || c.Count != want.Count {
			t.Errorf("Cursor(%q) = %+v, want %+v", k, c, want)
		}
	}
	if _, ok, err := db.Cursor("mailu/smtp"); ok || err != nil {
		t.Errorf("missing cursor: %v, %v", ok, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("203.0.113.5/32")
	if err := db.PutBans([]Ban{{Target: p, Jail: "auth", Until: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, ok, err := db.GetBan(p); !ok || err != nil {
		t.Fatalf("ban lost across reopen: %v, %v", ok, err)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BANSD_STORE_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper process: %q", line)
	}

	start := time.Now()
	db, err := Open(path)
	took := time.Since(start)
	if err == nil {
		db.Close()
		t.Fatal("Open succeeded while another process holds the store")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q: want ErrLocked naming %s", err, path)
	}
	if took > 6*time.Second {
		t.Errorf("gave up after %s, want a few seconds", took)
	}
	t.Logf("locked: %v (after %s)", err, took.Round(time.Millisecond))

	stdin.Close()
	cmd.Wait()
	db, err = Open(path)
	if err != nil {
		t.Fatalf("Open after the other process exited: %v", err)
	}
	db.Close()
}

func TestCorruptFile(t *testing.T) {
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(i*7 + i>>8)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) { os.WriteFile(path, garbage, 0o600) }},
		{"empty", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) }},
		{"damaged meta pages", func(t *testing.T, path string) {
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			db.PutBans([]Ban{{Target: netip.MustParsePrefix("192.0.2.1/32"), Until: time.Now().Add(time.Hour)}})
			db.Close()
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Both meta pages live in the first two pages.
			f.WriteAt(garbage[:8192], 0)
			f.Close()
		}},
		{"not a bansd store", func(t *testing.T, path string) {
			b, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
			b.Close()
		}},
		{"damaged record", func(t *testing.T, path string) {
			editRaw(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketBans).Put(prefixKey(nil, netip.MustParsePrefix("192.0.2.1/32")), []byte{banFormat, 1, 2})
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bansd.db")
			tt.setup(t, path)
			db, err := Open(path)
			if err == nil {
				// A damaged record is only found when read; it must fail then.
				_, err = db.Bans()
				db.Close()
			}
			if err == nil {
				t.Fatal("corrupt store opened and read without error")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q: want ErrCorrupt naming %s", err, path)
			}
		})
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bansd.db")
	editRaw(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte{SchemaVersion + 1}) })
	_, err := Open(path)
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want ErrNewerSchema naming the file", err)
	}
}

func FuzzDecodeBan(f *testing.F) {
	f.Add(encodeBan(nil, &Ban{Jail: "auth", Reason: "r", Since: time.Unix(1, 0), Until: time.Unix(2, 0), Level: 3, Evidence: []string{"a", "b"}}))
	f.Add([]byte{banFormat})
	f.Fuzz(func(t *testing.T, v []byte) {
		b, err := decodeBan(v, nil)
		if err != nil {
			return
		}
		again, err := decodeBan(encodeBan(nil, &b), interner{})
		if err != nil || !reflect.DeepEqual(again.Evidence, b.Evidence) || again.Jail != b.Jail || again.Level != b.Level {
			t.Fatalf("re-encoding changed the ban: %+v vs %+v (%v)", b, again, err)
		}
	})
}

func BenchmarkLoad100k(b *testing.B) {
	db := openTemp(b)
	now := time.Now()
	bans := make([]Ban, 100_000)
	for i := range bans {
		bans[i] = Ban{
			Target:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32),
			Jail:     "auth",
			Reason:   "10 failures in 1h",
			Since:    now,
			Until:    now.Add(time.Hour),
			Evidence: []string{"front: 2026/11/27 06:00:00 [info] 12#12: *1 client login failed: \"Authentication credentials invalid\" while in http auth state, client: 10.0.0.1"},
		}
	}
	if err := db.PutBans(bans); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		got, err := db.Bans()
		if err != nil || len(got) != len(bans) {
			b.Fatal(len(got), err)
		}
	}
}

// BenchmarkPutBan is the cost of one ban's transaction (fsync included),
// the floor of the ban manager's idle latency.
func BenchmarkPutBan(b *testing.B) {
	db := openTemp(b)
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		t := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		if err := db.PutBans([]Ban{{Target: t, Jail: "auth", Since: now, Until: now.Add(time.Hour)}}); err != nil {
			b.Fatal(err)
		}
	}
}
