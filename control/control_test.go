package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"
)

// memBackend is a small in-memory backend: the server and client are what
// is under test here; the daemon's backend is tested end to end in cmd/bansd.
type memBackend struct {
	mu     sync.Mutex
	bans   map[netip.Prefix]Ban
	protec netip.Prefix
	// shieldOn is the last POST /v1/shield.
	shieldOn bool
	// allow is the allow-list's one entry (allow_test.go).
	allow *AllowEntry
}

func newMem() *memBackend {
	return &memBackend{bans: map[netip.Prefix]Ban{}, protec: netip.MustParsePrefix("192.168.203.0/24")}
}

func (m *memBackend) Bans(jail string) []Ban {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Ban
	for _, b := range m.bans {
		if jail == "" || b.Jail == jail {
			out = append(out, b)
		}
	}
	return out
}

func (m *memBackend) Ban(_ context.Context, req BanRequest) (BanResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var bad []string
	for _, t := range req.Targets {
		if !req.Force && t.Overlaps(m.protec) {
			bad = append(bad, t.String())
		}
	}
	if len(bad) > 0 {
		return BanResult{}, &HTTPError{Code: http.StatusConflict, Message: "refused", Details: bad}
	}
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, t := range req.Targets {
		m.bans[t] = Ban{Target: t, Jail: "manual", Reason: req.Reason, Since: since, Until: since.Add(time.Hour), Level: 1, Manual: true}
	}
	return BanResult{Banned: len(req.Targets)}, nil
}

func (m *memBackend) Unban(_ context.Context, req UnbanRequest) (UnbanResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for t, b := range m.bans {
		hit := req.All || b.Jail == req.Jail
		for _, x := range req.Targets {
			hit = hit || x == t
		}
		if hit {
			delete(m.bans, t)
			n++
		}
	}
	return UnbanResult{Unbanned: n}, nil
}

func (m *memBackend) Status(context.Context) Status { return Status{Version: "test", PID: 1} }

func (m *memBackend) Why(_ context.Context, a netip.Addr) (Why, error) {
	if a.Is6() {
		return Why{}, errors.New("backend broke")
	}
	return Why{Addr: a, Bans: []Ban{}, Windows: []WindowStatus{}}, nil
}

func (m *memBackend) Reload(context.Context) ReloadResult {
	return ReloadResult{OK: false, Error: "x.toml:3: jails.auth.maxretry: 0 is outside 1..1000000"}
}

// serve starts a server on a socket in a temp dir and returns its client.
func serve(t *testing.T, b Backend) (*Client, string) {
	t.Helper()
	roottest.Require(t, "the socket admits only root and daemon.socket_group")
	s, err := NewServer(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "bansd_lines_total 0")
	}), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "run", "bansd.sock")
	l, err := s.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return NewClient(path), path
}

func TestSocketModes(t *testing.T) {
	_, path := serve(t, newMem())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want 0600 socket", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o755 {
		t.Errorf("socket dir mode %v, want 0755", di.Mode().Perm())
	}
	// A second server must not steal a live socket.
	s2, _ := NewServer(newMem(), nil, "", nil)
	if _, err := s2.Listen(path); err == nil || !strings.Contains(err.Error(), "another bansd") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "s.sock")
	// A socket file nobody listens on: what a killed daemon leaves.
	s, _ := NewServer(newMem(), nil, "", nil)
	l, err := s.Listen(stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(stale); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	l2, err := s.Listen(stale)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Listen(filepath.Join(dir, "file")); err == nil {
		t.Error("Listen replaced a regular file")
	}
}

func TestRoundTrip(t *testing.T) {
	c, _ := serve(t, newMem())
	ctx := context.Background()
	a := netip.MustParsePrefix("203.0.113.7/32")
	n := netip.MustParsePrefix("198.51.100.0/24")
	res, err := c.Ban(ctx, BanRequest{Targets: []netip.Prefix{a, n}, Reason: "test"})
	if err != nil || res.Banned != 2 {
		t.Fatalf("Ban: %v %v", res, err)
	}

	var raw bytes.Buffer
	if err := c.BansRaw(ctx, "", &raw); err != nil {
		t.Fatal(err)
	}
	var shape map[string][]map[string]any
	if err := json.Unmarshal(raw.Bytes(), &shape); err != nil {
		t.Fatalf("list is not JSON: %v\n%s", err, raw.String())
	}
	if len(shape["bans"]) != 2 {
		t.Fatalf("bans: %v", shape)
	}
	want := []string{"jail", "level", "manual", "reason", "since", "target", "until"}
	for _, b := range shape["bans"] {
		var keys []string
		for k := range b {
			keys = append(keys, k)
		}
		if fmt.Sprint(slices.Sorted(slices.Values(keys))) != fmt.Sprint(want) {
			t.Errorf("ban keys %v, want %v", keys, want)
		}
		if b["since"] != "2026-01-02T03:04:05Z" {
			t.Errorf("since %v, want RFC3339", b["since"])
		}
	}

	l, err := c.Bans(ctx, "manual")
	if err != nil || len(l.Bans) != 2 {
		t.Fatalf("Bans(manual): %v %v", l, err)
	}
	if l, _ := c.Bans(ctx, "auth"); len(l.Bans) != 0 {
		t.Errorf("Bans(auth) = %v", l)
	}

	_, err = c.Ban(ctx, BanRequest{Targets: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict || len(ae.Details) != 1 {
		t.Errorf("protected ban: %v", err)
	}

	_, err = c.Unban(ctx, UnbanRequest{Jail: "manual", All: true})
	if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest {
		t.Errorf("unban with two modes: %v", err)
	}
	ur, err := c.Unban(ctx, UnbanRequest{Targets: []netip.Prefix{a}})
	if err != nil || ur.Unbanned != 1 {
		t.Errorf("Unban: %v %v", ur, err)
	}

	if _, err := c.Why(ctx, netip.MustParseAddr("2001:db8::1")); !errors.As(err, &ae) || ae.Code != 500 || ae.Message != "backend broke" {
		t.Errorf("Why backend error: %v", err)
	}
	if w, err := c.Why(ctx, netip.MustParseAddr("203.0.113.9")); err != nil || w.Addr.String() != "203.0.113.9" {
		t.Errorf("Why: %v %v", w, err)
	}
	if _, err := c.Reload(ctx); err == nil || !strings.Contains(err.Error(), "jails.auth.maxretry") {
		t.Errorf("refused reload: %v", err)
	}
	var m bytes.Buffer
	if err := c.Metrics(ctx, &m); err != nil || !strings.Contains(m.String(), "bansd_lines_total") {
		t.Errorf("metrics: %q %v", m.String(), err)
	}
}

func TestBadRequests(t *testing.T) {
	_, path := serve(t, newMem())
	c := NewClient(path)
	cases := []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/v1/bans", `{"targets":["not-an-ip"]}`, 400},
		{"POST", "/v1/bans", `{"targets":[]}`, 400},
		{"POST", "/v1/bans", `{"targets":["203.0.113.1/32"],"bogus":1}`, 400},
		{"DELETE", "/v1/bans", `{}`, 400},
		{"GET", "/v1/why?addr=nope", ``, 400},
		{"GET", "/v1/why?addr=fe80::1%25eth0", ``, 400},
		{"GET", "/v2/bans", ``, 404},
		{"PUT", "/v1/bans", ``, 405},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, "http://bansd"+tc.path, strings.NewReader(tc.body))
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s %s: %d, want %d", tc.method, tc.path, tc.body, resp.StatusCode, tc.code)
		}
	}
}

func TestNoDaemon(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("no daemon: %v", err)
	}
}

func TestAllowed(t *testing.T) {
	self := int32(os.Getpid())
	cases := []struct {
		name string
		gid  int
		p    peer
		want bool
	}{
		{"no credentials (TCP)", -1, peer{}, false},
		{"root", -1, peer{ok: true, uid: 0, gid: 0}, true},
		{"user, no group configured", -1, peer{ok: true, uid: 1000, gid: 1000}, false},
		{"user in group by primary gid", 1234, peer{ok: true, uid: 1000, gid: 1234}, true},
		{"user not in group", 1234, peer{ok: true, uid: 1000, gid: 1000, pid: self}, false},
		{"nobody", 1234, peer{ok: true, uid: 65534, gid: 65534}, false},
	}
	for _, tc := range cases {
		s := &Server{gid: tc.gid}
		if got := s.allowed(tc.p); got != tc.want {
			t.Errorf("%s: allowed = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSupplementaryGroup(t *testing.T) {
	// This process's own supplementary groups, as /proc reports them.
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, ln := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(ln, "Groups:"); ok {
			groups = strings.Fields(rest)
		}
	}
	pid := int32(os.Getpid())
	for _, g := range groups {
		var gid int
		fmt.Sscan(g, &gid)
		if !inSupplementaryGroup(pid, gid) {
			t.Errorf("gid %d of /proc/self/status not found", gid)
		}
	}
	if inSupplementaryGroup(pid, 987654) {
		t.Error("gid 987654 reported as a member")
	}
}

func TestServeMetricsLoopbackOnly(t *testing.T) {
	if _, _, err := ServeMetrics(context.Background(), "0.0.0.0:0", http.NotFoundHandler()); err == nil {
		t.Error("metrics on 0.0.0.0 accepted")
	}
	srv, l, err := ServeMetrics(context.Background(), "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + l.Addr().String() + "/v1/bans")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("the TCP listener serves the API: GET /v1/bans = %d", resp.StatusCode)
	}
}

func benchBans() []Ban {
	bans := make([]Ban, 100_000)
	now := time.Now().UTC().Truncate(time.Second)
	for i := range bans {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		bans[i] = Ban{Target: netip.PrefixFrom(a, 32), Jail: "auth", Reason: "10 failures in 1h", Since: now, Until: now.Add(time.Hour), Level: 1}
	}
	return bans
}

// BenchmarkDecodeBanList100k is the client's side of `bansctl list`.
func BenchmarkDecodeBanList100k(b *testing.B) {
	var buf bytes.Buffer
	encodeBanList(&buf, benchBans())
	for b.Loop() {
		var l BanList
		if err := decodeBanList(buf.Bytes(), 100_000, &l); err != nil || len(l.Bans) != 100_000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeBanList100k(b *testing.B) {
	bans := benchBans()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := encodeBanList(&buf, bans); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodeBanListFallback(t *testing.T) {
	for _, doc := range []string{
		`{"bans":[{"target":"203.0.113.7/32","jail":"auth","reason":"caf\u00e9","since":"2026-01-02T03:04:05Z","until":"2026-01-02T04:04:05Z","level":1,"manual":false}]}`,
		`{ "bans": [ {"manual":true,"target":"203.0.113.7/32","jail":"auth","reason":"x","since":"2026-01-02T03:04:05+01:00","until":"2026-01-02T04:04:05Z","level":1} ] }`,
		`{"bans":[{"target":"203.0.113.7/32","jail":"auth","reason":"x","since":"2026-01-02T03:04:05.5Z","until":"2026-01-02T04:04:05Z","level":1,"manual":false,"evidence":["a"]}]}`,
		`{"bans":[{"target":"203.0.113.7/32","jail":"manual","reason":"x","since":"2026-01-02T03:04:05Z","level":0,"manual":true,"permanent":true}]}`,
		`{"bans":[{"target":"203.0.113.7/32","jail":"manual","reason":"x","since":"2026-01-02T03:04:05Z","level":0,"manual":true,"origin":"local","permanent":true}]}`,
	} {
		var fast, ref BanList
		if err := decodeBanList([]byte(doc), 1, &fast); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if err := json.Unmarshal([]byte(doc), &ref); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", doc, fast, ref)
		}
	}
	var l BanList
	if err := decodeBanList([]byte(`{"bans":[{"target":"nope"}]}`), 0, &l); err == nil {
		t.Error("bad target accepted")
	}
}

// FuzzAppendBan checks the hand-written list encoder against encoding/json
// for attacker-influenced reasons and jail names.
func FuzzAppendBan(f *testing.F) {
	f.Add("auth", "10 failures: user \"x\\y\"", int64(1767323045), 3, true, "", false)
	f.Add("j", "\x00\x1b[31mred\u2028é\xff", int64(0), 0, false, "local", false)
	f.Add("crowdsec", "crowdsec:cscli/manual 'ban'", int64(5), 0, false, "crowdsec:cscli/manual 'ban' from \"x\"", false)
	f.Add("manual", "known abuser", int64(1767323045), 0, true, "local", true)
	f.Fuzz(func(t *testing.T, jail, reason string, sec int64, level int, manual bool, origin string, permanent bool) {
		since := time.Unix(sec%(1<<34), 0).UTC()
		b := Ban{Target: netip.MustParsePrefix("2001:db8::/64"), Jail: jail, Reason: reason, Since: since, Until: since.Add(time.Hour), Level: level, Manual: manual, Origin: origin}
		if permanent {
			b.Until, b.Permanent = time.Time{}, true
		}
		var got, want Ban
		out := appendBan(nil, &b)
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("not JSON: %v: %s", err, out)
		}
		ref, _ := json.Marshal(b)
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
		// The client's decoder reads the list back the same.
		var list BanList
		doc := `{"bans":[` + string(out) + "," + string(out) + "]}\n"
		if err := decodeBanList([]byte(doc), 2, &list); err != nil || len(list.Bans) != 2 || !reflect.DeepEqual(list.Bans[1], want) {
			t.Fatalf("decodeBanList: %v %+v\nwant %+v", err, list.Bans, want)
		}
	})
}

func (m *memBackend) NotifyTest(_ context.Context, channel string) ([]NotifyTestResult, error) {
	if channel != "" && channel != "ops" {
		return nil, &HTTPError{Code: http.StatusNotFound, Message: "no such notify channel " + channel}
	}
	return []NotifyTestResult{{Channel: "ops", OK: true, Answer: "250 2.0.0 Ok: queued"}}, nil
}

func TestNotifyTestWire(t *testing.T) {
	c, _ := serve(t, newMem())
	for _, tc := range []struct {
		channel, wantErr string
	}{{"", ""}, {"ops", ""}, {"nope", "no such notify channel nope"}} {
		res, err := c.NotifyTest(context.Background(), tc.channel)
		if tc.wantErr != "" {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code != http.StatusNotFound || ae.Message != tc.wantErr {
				t.Errorf("NotifyTest(%q) error %v, want 404 %q", tc.channel, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(res) != 1 || !res[0].OK || res[0].Answer != "250 2.0.0 Ok: queued" {
			t.Errorf("NotifyTest(%q) = %+v, %v", tc.channel, res, err)
		}
	}
}
