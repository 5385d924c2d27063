// Package crowdsectest runs Debian's real CrowdSec Local API (crowdsec
// -no-cs, SQLite in a temp dir, no Central API) inside a network namespace
// of its own, with a machine and a bouncer registered by the real cscli.
package crowdsectest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"

	"github.com/bansd/bansd/internal/netnstest"
)

// Addr is where LAPI listens inside its namespace: not loopback, so bansd
// is an untrusted remote client, as on a real second host.
const Addr = "192.0.2.1:8080"

// LAPI is a running Local API.
type LAPI struct {
	NS  *netnstest.NS
	Dir string
	// URL, MachineID, Password and BouncerKey are bansd's credentials.
	URL        string
	MachineID  string
	Password   string
	BouncerKey string

	config string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// Start starts LAPI and registers machine "bansd" and bouncer "bansd". It
// fails the test when crowdsec is not installed (scripts/deps.sh).
func Start(t testing.TB) *LAPI {
	t.Helper()
	roottest.Require(t, "CrowdSec's LAPI in a network namespace")
	for _, bin := range []string{"crowdsec", "cscli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("crowdsectest: %s not found: install Debian's crowdsec (scripts/deps.sh)", bin)
		}
	}
	ns := netnstest.New(t)
	// On lo (no dummy module here): clients still come from 192.0.2.1,
	// which is not among LAPI's trusted_ips.
	ns.Run(t, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
	dir := t.TempDir()
	l := &LAPI{NS: ns, Dir: dir, URL: "http://" + Addr, MachineID: "bansd", Password: randHex(16),
		BouncerKey: randHex(16), config: filepath.Join(dir, "etc", "config.yaml")}
	if out, err := exec.Command("cp", "-r", "/etc/crowdsec", filepath.Join(dir, "etc")).CombinedOutput(); err != nil {
		t.Fatalf("crowdsectest: copy /etc/crowdsec: %v: %s", err, out)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(l.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"/etc/crowdsec/", dir+"/etc/",
		"/var/lib/crowdsec/data/", dir+"/data/",
		"log_dir: /var/log/", "log_dir: "+dir+"/",
		"daemonize: true", "daemonize: false",
		"listen_uri: 127.0.0.1:8080", "listen_uri: "+Addr,
		// No metrics listener: nothing of this test should listen beyond LAPI.
		"prometheus:\n  enabled: true", "prometheus:\n  enabled: false",
	).Replace(string(raw))
	if !strings.Contains(cfg, "listen_uri: "+Addr) || strings.Contains(cfg, "/var/lib/crowdsec/data/") {
		t.Fatalf("crowdsectest: %s has an unexpected layout:\n%s", l.config, cfg)
	}
	if err := os.WriteFile(l.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l.start(t)
	// cscli needs a machine of its own to add and delete decisions.
	l.Cscli(t, "machines", "add", "cli", "--auto", "--force", "--url", l.URL, "-f", filepath.Join(dir, "etc", "local_api_credentials.yaml"))
	l.Cscli(t, "machines", "add", l.MachineID, "--password", l.Password, "--url", l.URL, "-f", filepath.Join(dir, "bansd_credentials.yaml"))
	l.Cscli(t, "bouncers", "add", "bansd", "--key", l.BouncerKey)
	return l
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (l *LAPI) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(l.Dir, "crowdsec.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.NS.Name, "crowdsec", "-c", l.config, "-no-cs")
	cmd.Stdout, cmd.Stderr = logf, logf
	// No Pdeathsig: it fires when the starting OS thread exits, and netnstest
	// threads do.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("crowdsectest: start crowdsec: %v", err)
	}
	l.cmd, l.log, l.exited = cmd, logf, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, l.exited)
	t.Cleanup(func() { l.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		var c net.Conn
		err := l.NS.Do(func() (err error) { c, err = net.DialTimeout("tcp", Addr, time.Second); return err })
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-l.exited:
			t.Fatalf("crowdsectest: crowdsec exited at start: %s", l.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("crowdsectest: LAPI not listening after 30 s: %v\n%s", err, l.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills crowdsec (the process group ip netns exec became) and waits.
func (l *LAPI) stop() {
	if l.cmd == nil {
		return
	}
	_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
	<-l.exited
	l.log.Close()
	l.cmd = nil
}

// Kill stops LAPI at once (SIGKILL), as a crash would.
func (l *LAPI) Kill(t testing.TB) {
	t.Helper()
	l.stop()
}

// Restart starts LAPI again on the same database.
func (l *LAPI) Restart(t testing.TB) {
	t.Helper()
	l.stop()
	l.start(t)
}

// Logs is crowdsec's own log and output, for failure messages.
func (l *LAPI) Logs() string {
	var b strings.Builder
	for _, f := range []string{"crowdsec.out", "crowdsec_api.log", "crowdsec.log"} {
		data, _ := os.ReadFile(filepath.Join(l.Dir, f))
		fmt.Fprintf(&b, "--- %s\n%s", f, data)
	}
	return b.String()
}

// Cscli runs the real cscli against this LAPI and returns its stdout.
func (l *LAPI) Cscli(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.NS.Name, "cscli", "-c", l.config, "--error"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crowdsectest: cscli %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// ImportIPs adds a ban decision of duration for each address with the
// real `cscli decisions import`, the fast way to a big LAPI.
func (l *LAPI) ImportIPs(t testing.TB, duration string, addrs []netip.Addr) {
	t.Helper()
	var csv strings.Builder
	csv.WriteString("duration,scope,value\n")
	for _, a := range addrs {
		fmt.Fprintf(&csv, "%s,ip,%s\n", duration, a)
	}
	file := filepath.Join(l.Dir, "import.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	l.Cscli(t, "decisions", "import", "-i", file)
}

// HTTPClient dials inside LAPI's namespace, so the host's needs no route.
func (l *LAPI) HTTPClient() *http.Client {
	tr := &http.Transport{
		DialContext:         l.NS.Dial,
		MaxIdleConnsPerHost: 4,
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// Decision is one row of `cscli decisions list -o json`.
type Decision struct {
	ID       int64  `json:"id"`
	Origin   string `json:"origin"`
	Scenario string `json:"scenario"`
	Scope    string `json:"scope"`
	Type     string `json:"type"`
	Value    string `json:"value"`
	Duration string `json:"duration"`
}

// Alert is one row of `cscli alerts list -o json`.
type Alert struct {
	ID        int64      `json:"id"`
	MachineID string     `json:"machine_id"`
	Scenario  string     `json:"scenario"`
	Message   string     `json:"message"`
	Decisions []Decision `json:"decisions"`
	Meta      []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"meta"`
}

// Alerts lists every alert with cscli. -a is always given: without it
// 1.4.6 shows only origins cscli and crowdsec, hiding bansd's. Its --ip
// filter does not match alerts pushed through the API: filter the result.
func (l *LAPI) Alerts(t testing.TB, args ...string) []Alert {
	t.Helper()
	out := l.Cscli(t, append([]string{"alerts", "list", "-a", "-o", "json", "-l", "0"}, args...)...)
	var as []Alert
	if s := strings.TrimSpace(out); s != "" && s != "null" {
		if err := json.Unmarshal([]byte(s), &as); err != nil {
			t.Fatalf("crowdsectest: cscli alerts list: %v: %s", err, out)
		}
	}
	return as
}

// Decisions lists live decisions of every origin with cscli (-a, as for
// Alerts), flattened from its alerts.
func (l *LAPI) Decisions(t testing.TB, args ...string) []Decision {
	t.Helper()
	out := l.Cscli(t, append([]string{"decisions", "list", "-a", "-o", "json"}, args...)...)
	var as []Alert
	if s := strings.TrimSpace(out); s != "" && s != "null" {
		if err := json.Unmarshal([]byte(s), &as); err != nil {
			t.Fatalf("crowdsectest: cscli decisions list: %v: %s", err, out)
		}
	}
	var ds []Decision
	for _, a := range as {
		ds = append(ds, a.Decisions...)
	}
	return ds
}
