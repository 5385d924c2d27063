package main

// Blocklists end to end: a real bansd process in a namespace fetches lists
// from a real HTTP server on loopback in the same namespace (plain http is
// allowed to loopback hosts only), and the test reads the kernel's sets
// over netlink.

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/proctest"
)

// listHost serves the lists; each path's body can be swapped while bansd runs.
type listHost struct {
	base string
	mu   sync.Mutex
	// bodies by path; "404" answers Not Found, "BIG" streams 200 MB.
	bodies map[string]string
	etags  map[string]string
	// notModified counts the 304s answered, sent the body bytes written.
	notModified atomic.Int64
	sent        atomic.Int64
}

const bigBody = 200 << 20

func (h *listHost) set(path, body string) {
	h.mu.Lock()
	h.bodies[path] = body
	h.mu.Unlock()
}

func (h *listHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	body, ok := h.bodies[r.URL.Path]
	etag := h.etags[r.URL.Path]
	h.mu.Unlock()
	switch {
	case !ok || body == "404":
		http.NotFound(w, r)
		return
	case body == "BIG":
		line := []byte("# " + strings.Repeat("x", 61) + "\n")
		block := []byte(strings.Repeat(string(line), (64<<10)/len(line)))
		for sent := 0; sent < bigBody; sent += len(block) {
			n, err := w.Write(block)
			h.sent.Add(int64(n))
			if err != nil {
				return
			}
		}
		return
	}
	if etag != "" {
		if r.Header.Get("If-None-Match") == etag {
			h.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
	}
	n, _ := io.WriteString(w, body)
	h.sent.Add(int64(n))
}

// kernelTargets reads the elements of bansd's sets over netlink.
func kernelTargets(t testing.TB, nft *ban.NFT) map[netip.Prefix]bool {
	t.Helper()
	els, err := nft.List()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[netip.Prefix]bool, len(els))
	for _, e := range els {
		out[e.Target] = true
	}
	return out
}

func blocklistStatus(t testing.TB, in *instance, name string) control.BlocklistStatus {
	t.Helper()
	for _, l := range in.status(t).Blocklists {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no blocklist %s in status", name)
	return control.BlocklistStatus{}
}

func waitList(t testing.TB, in *instance, name, what string, ok func(control.BlocklistStatus) bool) control.BlocklistStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := blocklistStatus(t, in, name)
		if ok(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("blocklist %s: %s not reached: %+v\n%s", name, what, l, in.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procMem reads VmRSS and VmHWM (bytes) of a process.
func procMem(t testing.TB, pid int) (rss, hwm int64) {
	t.Helper()
	return proctest.KiB(t, pid, "VmRSS") << 10, proctest.KiB(t, pid, "VmHWM") << 10
}

func TestBlocklistsEndToEnd(t *testing.T) {
	in := newInstance(t, noDocker)
	host := &listHost{bodies: map[string]string{}, etags: map[string]string{"/drop.txt": `"drop-1"`}}
	ln := in.ns.Listen(t, "127.0.0.1:0")
	srv := &http.Server{Handler: host}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	host.base = "http://" + ln.Addr().String()

	const (
		// 192.0.2.9 leaves this list with version B, but list dup holds it.
		versionA = "# v1\n192.0.2.1\n192.0.2.3\n192.0.2.9\n2001:db8:a::/48\n"
		versionB = "# v2\n192.0.2.3\n192.0.2.4\n2001:db8:b::/48\n"
	)
	host.set("/drop.txt", "; Spamhaus DROP List\n; Last-Modified: Tue, 01 Dec 2026 10:05:11 GMT\n198.51.100.0/25 ; SBL1\n198.51.100.128/26 ; SBL2\n")
	// SUBNET (192.168.203.0/24) is protected: skipped, never banned.
	host.set("/level1.netset", "#\n# firehol_level1\n#\n203.0.113.0/28\n203.0.113.17\n192.168.203.0/24\n")
	host.set("/changing.txt", versionA)
	host.set("/flaky.txt", "203.0.113.100\n")
	host.set("/dup.txt", "192.0.2.9\n")
	host.set("/big.txt", "203.0.113.200\n")
	plain := filepath.Join(in.dir, "plain.txt")
	if err := os.WriteFile(plain, []byte("# mine\n203.0.113.150  # a scanner\n203.0.113.250\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	cfg.WriteString("[engine]\nignoreip = [\"203.0.113.250\"]\n")
	for _, l := range []struct{ name, src string }{
		{"drop", `url = "` + host.base + `/drop.txt"`},
		{"level1", `url = "` + host.base + `/level1.netset"`},
		{"changing", `url = "` + host.base + `/changing.txt"`},
		{"flaky", `url = "` + host.base + `/flaky.txt"`},
		{"dup", `url = "` + host.base + `/dup.txt"`},
		{"big", `url = "` + host.base + `/big.txt"`},
		{"plain", fmt.Sprintf("file = %q", plain)},
	} {
		// The big list gets time to read 64 MiB on a busy machine: its
		// refusal must be the size, not the timeout.
		refresh := "1s"
		if l.name == "big" {
			refresh = "5s"
		}
		fmt.Fprintf(&cfg, "[blocklists.%s]\n%s\nrefresh = %q\nbantime = \"10m\"\ntimeout = %q\n", l.name, l.src, refresh, refresh)
	}
	in.writeConfig(t, cfg.String())
	in.run(t)
	nft, err := ban.NewNFT("bansd", -310, ban.WithNetNS(in.ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"drop", "level1", "changing", "flaky", "dup", "big", "plain"} {
		waitList(t, in, name, "a first refresh", func(l control.BlocklistStatus) bool { return !l.LastRefresh.IsZero() })
	}

	t.Run("each format enforced, protected entries skipped", func(t *testing.T) {
		k := kernelTargets(t, nft)
		for _, c := range []struct {
			target string
			want   bool
		}{
			{"198.51.100.0/25", true}, {"198.51.100.128/26", true}, // Spamhaus
			{"203.0.113.0/28", true}, {"203.0.113.17/32", true}, {"192.168.203.0/24", false}, // FireHOL, SUBNET skipped
			{"203.0.113.150/32", true}, {"203.0.113.250/32", false}, // plain file, ignoreip skipped
			{"192.0.2.1/32", true}, {"2001:db8:a::/48", true},
		} {
			if k[netip.MustParsePrefix(c.target)] != c.want {
				t.Errorf("%s in the kernel: %v, want %v", c.target, !c.want, c.want)
			}
		}
		if l := blocklistStatus(t, in, "level1"); l.Entries != 3 || l.Skipped != 1 {
			t.Errorf("level1 status %+v: want 3 entries, 1 skipped", l)
		}
		if l := blocklistStatus(t, in, "plain"); l.Skipped != 1 || l.Source != plain {
			t.Errorf("plain status %+v", l)
		}
		out := in.mustCtl(t, 0, "list", "--jail", "blocklist:drop")
		if !strings.Contains(out, "198.51.100.0/25") || !strings.Contains(out, "198.51.100.128/26") || strings.Contains(out, "203.0.113.0/28") || !strings.Contains(out, "blocklist drop (http://") {
			t.Errorf("list --jail blocklist:drop:\n%s", out)
		}
		out = in.mustCtl(t, 0, "why", "198.51.100.7")
		if !strings.Contains(out, "BANNED 198.51.100.0/25 by blocklist drop (origin blocklist drop (http://") {
			t.Errorf("why of a listed address:\n%s", out)
		}
		out = in.mustCtl(t, 0, "status")
		if !strings.Contains(out, "Blocklists:") || !strings.Contains(out, "drop: "+host.base+"/drop.txt") || !strings.Contains(out, "entries 3 (skipped 1)") {
			t.Errorf("status does not show the lists:\n%s", out)
		}
	})

	t.Run("conditional GET answered 304", func(t *testing.T) {
		l := waitList(t, in, "drop", "a 304", func(l control.BlocklistStatus) bool { return l.NotModified >= 2 })
		if host.notModified.Load() < 2 || l.Entries != 2 || l.Failures != 0 {
			t.Errorf("drop %+v; server answered %d 304s", l, host.notModified.Load())
		}
	})

	t.Run("a list that changes, never unenforced", func(t *testing.T) {
		shared := netip.MustParsePrefix("192.0.2.3/32")
		var (
			stop            atomic.Bool
			listed, missing atomic.Int64
			wg              sync.WaitGroup
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				els, err := nft.List()
				if err != nil {
					t.Error(err)
					return
				}
				found := false
				for _, e := range els {
					found = found || e.Target == shared
				}
				listed.Add(1)
				if !found {
					missing.Add(1)
				}
			}
		}()
		for i, v := range []string{versionB, versionA, versionB} {
			host.set("/changing.txt", v)
			now, gone := []string{"192.0.2.4/32", "2001:db8:b::/48"}, []string{"192.0.2.1/32", "2001:db8:a::/48"}
			if v == versionA {
				now, gone = gone, now
			}
			now = append(now, "192.0.2.9/32") // list dup holds it throughout
			deadline := time.Now().Add(20 * time.Second)
			for {
				k := kernelTargets(t, nft)
				ok := k[shared]
				for _, s := range now {
					ok = ok && k[netip.MustParsePrefix(s)]
				}
				for _, s := range gone {
					ok = ok && !k[netip.MustParsePrefix(s)]
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("change %d not in the kernel: %v\n%s", i, k, in.log.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		stop.Store(true)
		wg.Wait()
		t.Logf("3 versions: %d listings of the kernel, %d without the shared entry", listed.Load(), missing.Load())
		if missing.Load() != 0 || listed.Load() < 10 {
			t.Errorf("the entry in both versions was missing from %d of %d listings", missing.Load(), listed.Load())
		}
		if l := blocklistStatus(t, in, "changing"); l.Entries != 3 || l.Added != 2 || l.Removed != 2 {
			t.Errorf("changing status %+v: want 3 entries, +2 -2", l)
		}
		// 192.0.2.9, which only dup holds now, passes to dup at its next
		// refresh; it was never out of the kernel (checked above).
		deadline := time.Now().Add(20 * time.Second)
		for {
			ch, err1 := control.NewClient(in.socket).Bans(t.Context(), "blocklist:changing")
			dup, err2 := control.NewClient(in.socket).Bans(t.Context(), "blocklist:dup")
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if len(ch.Bans) == 3 && len(dup.Bans) == 1 && dup.Bans[0].Target.String() == "192.0.2.9/32" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bans of blocklist:changing %v, of blocklist:dup %v", ch.Bans, dup.Bans)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("a list that 404s keeps the previous one", func(t *testing.T) {
		host.set("/flaky.txt", "404")
		l := waitList(t, in, "flaky", "a failure", func(l control.BlocklistStatus) bool { return l.Failures > 0 })
		if !strings.Contains(l.LastError, "404") || l.Entries != 1 {
			t.Errorf("flaky %+v", l)
		}
		if !kernelTargets(t, nft)[netip.MustParsePrefix("203.0.113.100/32")] {
			t.Error("the previous version of a list that 404s was lifted")
		}
		var m strings.Builder
		if err := control.NewClient(in.socket).Metrics(t.Context(), &m); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`bansd_blocklist_failing{list="flaky"} 1`, `bansd_blocklist_entries{list="flaky"} 1`, `bansd_blocklist_failing{list="drop"} 0`} {
			if !strings.Contains(m.String(), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if !strings.Contains(in.log.String(), "the previous version stays enforced") {
			t.Error("the log does not say the previous version stays")
		}
	})

	t.Run("a 200 MB list is refused, memory bounded", func(t *testing.T) {
		pid := in.cmd.Process.Pid
		rss0, hwm0 := procMem(t, pid)
		sent0 := host.sent.Load()
		host.set("/big.txt", "BIG")
		l := waitList(t, in, "big", "a refusal", func(l control.BlocklistStatus) bool { return strings.Contains(l.LastError, "too big") })
		rss1, hwm1 := procMem(t, pid)
		sent := host.sent.Load() - sent0
		t.Logf("bansd RSS %.1f -> %.1f MiB, peak %.1f -> %.1f MiB; server sent %.1f MiB before the refusal; %s",
			float64(rss0)/(1<<20), float64(rss1)/(1<<20), float64(hwm0)/(1<<20), float64(hwm1)/(1<<20), float64(sent)/(1<<20), l.LastError)
		if hwm1-hwm0 > 32<<20 {
			t.Errorf("bansd's peak RSS grew by %d bytes for a refused list", hwm1-hwm0)
		}
		if sent > 96<<20 {
			t.Errorf("the server sent %d bytes: the cap was not held while reading", sent)
		}
		if l.Entries != 1 || !kernelTargets(t, nft)[netip.MustParsePrefix("203.0.113.200/32")] {
			t.Errorf("the previous version of the refused list is gone: %+v", l)
		}
	})

	// Restarts are not subtests: the process outlives each of them.
	// A restart enforces the stored version before the first fetch.
	{
		before := blocklistStatus(t, in, "changing")
		in.stop(t)
		// The source fails from now on, and the kernel loses the table:
		// only the stored list can bring the entries back.
		host.set("/changing.txt", "404")
		in.ns.Run(t, "nft", "delete", "table", "inet", "bansd")
		in.run(t)
		l := waitList(t, in, "changing", "a failed fetch after the restart", func(l control.BlocklistStatus) bool { return l.Failures > 0 })
		if l.Entries != 3 || !l.Version.Equal(before.Version) {
			t.Errorf("after restart: %+v; want the stored version of %s with 3 entries", l, before.Version)
		}
		k := kernelTargets(t, nft)
		for _, s := range []string{"192.0.2.3/32", "192.0.2.4/32", "2001:db8:b::/48", "198.51.100.0/25"} {
			if !k[netip.MustParsePrefix(s)] {
				t.Errorf("%s not enforced after the restart", s)
			}
		}
		if !strings.Contains(in.log.String(), "enforcing the stored version before the first fetch") {
			t.Error("the log does not say the stored version was enforced")
		}
	}

	// A list gone from the config has its bans lifted.
	{
		in.stop(t)
		var kept strings.Builder
		kept.WriteString("[engine]\nignoreip = [\"203.0.113.250\"]\n")
		fmt.Fprintf(&kept, "[blocklists.drop]\nurl = %q\nrefresh = \"1s\"\nbantime = \"10m\"\ntimeout = \"1s\"\n", host.base+"/drop.txt")
		in.writeConfig(t, kept.String())
		in.run(t)
		waitList(t, in, "drop", "a refresh", func(l control.BlocklistStatus) bool { return !l.LastRefresh.IsZero() })
		deadline := time.Now().Add(20 * time.Second)
		for {
			k := kernelTargets(t, nft)
			if !k[netip.MustParsePrefix("203.0.113.150/32")] && !k[netip.MustParsePrefix("192.0.2.3/32")] {
				if !k[netip.MustParsePrefix("198.51.100.0/25")] {
					t.Error("the list still configured was lifted too")
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the bans of lists no longer configured are still in the kernel\n%s", in.log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if st := in.status(t); len(st.Blocklists) != 1 {
			t.Errorf("status shows %d lists, want 1", len(st.Blocklists))
		}
	}
}

// TestBanFromFileFormats: bansctl ban --from-file with the lists admins
// have, from a file and from stdin, refusing or skipping bad lines, and
// skipping protected entries, named file:line.
func TestBanFromFileFormats(t *testing.T) {
	in := newInstance(t, noDocker)
	in.writeConfig(t, "[engine]\nignoreip = [\"203.0.113.250\"]\n")
	in.run(t)
	nft, err := ban.NewNFT("bansd", -310, ban.WithNetNS(in.ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	ctl := func(stdin string, args ...string) (string, string, int) {
		cmd := exec.Command(filepath.Join(binDir, "bansctl"), args...)
		cmd.Env = append(os.Environ(), "BANSD_SOCKET="+in.socket)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	write := func(name, body string) string {
		p := filepath.Join(in.dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	drop := "; Spamhaus EDROP List\n198.51.100.0/25 ; SBL10\n"
	netset := write("level1.netset", "#\n# firehol\n#\n203.0.113.16/28\n203.0.113.77\n192.168.203.0/24\n127.0.0.0/8\n")
	withBad := write("bad.txt", "203.0.113.90\nnot-an-address\n203.0.113.91 203.0.113.92\n203.0.113.93 # ok\n")
	for _, c := range []struct {
		name     string
		stdin    string
		args     []string
		code     int
		out      []string // in stdout+stderr
		banned   []string
		unbanned []string
	}{
		{"spamhaus from stdin", drop, []string{"ban", "--from-file", "-"}, 0,
			[]string{"banned 1 target(s) from stdin"}, []string{"198.51.100.0/25"}, nil},
		{"firehol with protected entries", "", []string{"ban", "--for", "1h", "--from-file", netset}, 0,
			[]string{netset + ":6: 192.168.203.0/24 skipped", netset + ":7: 127.0.0.0/8 skipped", "skipped 2 protected"},
			[]string{"203.0.113.16/28", "203.0.113.77/32"}, []string{"192.168.203.0/24", "127.0.0.0/8"}},
		{"bad lines refuse all", "", []string{"ban", "--from-file", withBad}, 1,
			[]string{"nothing banned", withBad + ":2:", withBad + ":3:"}, nil, []string{"203.0.113.90/32", "203.0.113.93/32"}},
		{"--skip-invalid bans the good lines", "", []string{"ban", "--skip-invalid", "--from-file", withBad}, 0,
			[]string{withBad + ":2:", withBad + ":3:", "banned 2 target(s)", "2 invalid line(s)"}, []string{"203.0.113.90/32", "203.0.113.93/32"}, []string{"203.0.113.91/32"}},
		{"ignoreip from stdin skipped", "203.0.113.250\n203.0.113.251\n", []string{"ban", "--from-file", "-"}, 0,
			[]string{"stdin:1: 203.0.113.250/32 skipped", "ignoreip"}, []string{"203.0.113.251/32"}, []string{"203.0.113.250/32"}},
		{"wider than /16 skipped without --yes", "198.18.0.0/15\n203.0.113.120\n", []string{"ban", "--from-file", "-"}, 0,
			[]string{"stdin:1: 198.18.0.0/15 skipped", "--yes"}, []string{"203.0.113.120/32"}, []string{"198.18.0.0/15"}},
		{"wider than /16 banned with --yes", "198.18.0.0/15\n", []string{"ban", "--yes", "--from-file", "-"}, 0,
			[]string{"banned 1 target(s) from stdin"}, []string{"198.18.0.0/15"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := ctl(c.stdin, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, out, errs)
			}
			for _, w := range c.out {
				if !strings.Contains(out+errs, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errs)
				}
			}
			k := kernelTargets(t, nft)
			for _, s := range c.banned {
				if !k[netip.MustParsePrefix(s)] {
					t.Errorf("%s not in the kernel", s)
				}
			}
			for _, s := range c.unbanned {
				if k[netip.MustParsePrefix(s)] {
					t.Errorf("%s in the kernel", s)
				}
			}
		})
	}
}
