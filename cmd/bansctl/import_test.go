package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/internal/netnstest"
)

// fail2banDB runs Debian's fail2ban-server (in a private network
// namespace, with an action that touches no firewall), has it ban
// addresses in two jails, one of them for ever, and returns its database.
func fail2banDB(t *testing.T) string {
	t.Helper()
	for _, bin := range []string{"fail2ban-server", "fail2ban-client"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found (apt-get install fail2ban)", bin)
		}
	}
	ns := netnstest.New(t)
	dir, err := os.MkdirTemp("", "bansctl-f2b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db := filepath.Join(dir, "fail2ban.sqlite3")
	sock := filepath.Join(dir, "f2b.sock")
	files := map[string]string{
		"fail2ban.conf": "[Definition]\nloglevel = INFO\nlogtarget = " + filepath.Join(dir, "f2b.log") + "\nsocket = " + sock +
			"\npidfile = " + filepath.Join(dir, "f2b.pid") + "\ndbfile = " + db + "\ndbpurgeage = 1d\n",
		"jail.conf": "[DEFAULT]\nbackend = polling\nfilter = probe\naction = noop\nlogpath = " + filepath.Join(dir, "app.log") +
			"\nmaxretry = 3\n\n[mail]\nenabled = true\nbantime = 1h\n\n[forever]\nenabled = true\nbantime = -1\n",
		"filter.d/probe.conf": "[Definition]\nfailregex = ^fail from <HOST>$\n",
		"action.d/noop.conf":  "[Definition]\nactionstart = true\nactionstop = true\nactioncheck = true\nactionban = true\nactionunban = true\n",
		"app.log":             "",
	}
	conf := filepath.Join(dir, "conf")
	for name, body := range files {
		p := filepath.Join(conf, name)
		if name == "app.log" {
			p = filepath.Join(dir, name)
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := exec.Command("ip", "netns", "exec", ns.Name, "fail2ban-server", "-f", "-x", "-c", conf, "-s", sock, "-p", filepath.Join(dir, "f2b.pid"))
	var out bytes.Buffer
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			srv.Process.Kill()
			<-done
		}
	})
	client := func(args ...string) (string, error) {
		o, err := exec.Command("fail2ban-client", append([]string{"-s", sock}, args...)...).CombinedOutput()
		return string(o), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := client("status", "forever"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "f2b.log"))
			t.Fatalf("fail2ban-server not up:\n%s\n%s", b, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, c := range [][]string{{"set", "mail", "banip", "203.0.113.5", "198.51.100.7"}, {"set", "forever", "banip", "2001:db8::5"}} {
		if o, err := client(c...); err != nil {
			t.Fatalf("fail2ban-client %v: %v: %s", c, err, o)
		}
	}
	// Fail2Ban writes each ban to its database as it bans.
	deadline = time.Now().Add(20 * time.Second)
	for {
		bans, err := readFail2Ban(t.Context(), db, time.Now())
		if err == nil && len(bans) == 3 {
			return db
		}
		if time.Now().After(deadline) {
			t.Fatalf("fail2ban database: %v %+v", err, bans)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestImportFail2Ban(t *testing.T) {
	db := fail2banDB(t)
	sock := startBansd(t)
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"--socket", sock, "import", "fail2ban", db}, &out, &errb); code != 0 {
		t.Fatalf("import: exit %d: %s %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "imported 3 of 3 ban(s)") {
		t.Errorf("import said %q", out.String())
	}
	list, err := control.NewClient(sock).Bans(t.Context(), "fail2ban")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"203.0.113.5/32": time.Hour, "198.51.100.7/32": time.Hour, "2001:db8::5/128": permanentFor}
	if len(list.Bans) != len(want) {
		t.Fatalf("bans in jail fail2ban: %+v", list.Bans)
	}
	for _, b := range list.Bans {
		d, ok := want[b.Target.String()]
		if !ok {
			t.Errorf("unexpected ban %+v", b)
			continue
		}
		if left := time.Until(b.Until); left > d || left < d-2*time.Minute {
			t.Errorf("%s: %s left, want about %s", b.Target, left, d)
		}
		if !strings.Contains(b.Reason, "Fail2Ban jail") {
			t.Errorf("%s: reason %q", b.Target, b.Reason)
		}
	}
	// The imported jail is one unban --jail knows.
	out.Reset()
	if code := run(t.Context(), []string{"--socket", sock, "unban", "--jail", "fail2ban"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "unbanned 3") {
		t.Errorf("unban --jail fail2ban: exit %d %q %q", code, out.String(), errb.String())
	}
	// A file that is not Fail2Ban's database is a clear error.
	bad := filepath.Join(t.TempDir(), "x.sqlite3")
	os.WriteFile(bad, []byte("not sqlite"), 0o644)
	errb.Reset()
	if code := run(t.Context(), []string{"--socket", sock, "import", "fail2ban", bad}, &out, &errb); code != 1 || !strings.Contains(errb.String(), bad) {
		t.Errorf("import of a non-database: exit %d %q", code, errb.String())
	}
}
