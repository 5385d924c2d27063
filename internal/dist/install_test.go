package main

import (
	"bufio"
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

// unitValues returns every value of key in a systemd unit file.
func unitValues(t *testing.T, unit []byte, key string) []string {
	t.Helper()
	var vals []string
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			vals = append(vals, v)
		}
	}
	return vals
}

// rebase moves an absolute path of the target system into root.
func rebase(root, p string) string {
	if strings.HasPrefix(p, "/") {
		return filepath.Join(root, p)
	}
	return p
}

// TestInstalledUnitReadsConfig installs with `make install DESTDIR=`,
// runs the installed unit's exact ExecStart (its EnvironmentFile read,
// paths rebased into the root) in a private network namespace, and
// shows that a key set in the installed /etc/bansd/bansd.toml takes
// effect and that SIGHUP (the unit's ExecReload) applies an edit.
// `make uninstall` then removes every file install put there.
func TestInstalledUnitReadsConfig(t *testing.T) {
	ns := netnstest.New(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	bin := filepath.Join(dir, "bin")
	makeCmd(t, bin, "install", "DESTDIR="+root)

	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/bansd.service"))
	if err != nil {
		t.Fatal(err)
	}
	execStart := unitValues(t, unit, "ExecStart")
	envFiles := unitValues(t, unit, "EnvironmentFile")
	reload := unitValues(t, unit, "ExecReload")
	if len(execStart) != 1 || len(envFiles) != 1 || len(reload) != 1 || !strings.Contains(reload[0], "kill -HUP $MAINPID") {
		t.Fatalf("unit: ExecStart %q EnvironmentFile %q ExecReload %q", execStart, envFiles, reload)
	}
	// The environment file is optional ("-" prefix); give it one flag to
	// show it is read too.
	envFile := rebase(root, strings.TrimPrefix(envFiles[0], "-"))
	if err := os.MkdirAll(filepath.Dir(envFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(envFile, []byte("BANSD_ARGS=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	data, _ := os.ReadFile(envFile)
	for _, ln := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(ln, "="); ok {
			env[k] = v
		}
	}
	var argv []string
	for _, f := range strings.Fields(execStart[0]) {
		f = os.Expand(f, func(k string) string { return env[k] })
		if f != "" {
			argv = append(argv, rebase(root, f))
		}
	}
	cfgPath := filepath.Join(root, "etc/bansd/bansd.toml")
	if len(argv) < 3 || argv[0] != filepath.Join(root, "usr/local/sbin/bansd") || argv[1] != "--config" || argv[2] != cfgPath {
		t.Fatalf("ExecStart does not run the installed bansd on the installed config: %q", argv)
	}

	// The key that shows the file is read: a socket of our own.
	sock := filepath.Join(dir, "run", "ctl.sock")
	orig, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	set := func(extra string) {
		t.Helper()
		body := string(orig) + "\n[daemon]\nsocket = \"" + sock + "\"\nstate = \"" + filepath.Join(dir, "state.db") +
			"\"\nlog_level = \"info\"\n[docker]\nhost = \"unix://" + filepath.Join(dir, "no-docker.sock") + "\"\n" + extra
		if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set("")
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
	logPath := filepath.Join(dir, "bansd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	logs := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("bansd's log:\n%s", logs())
		}
	})

	c := control.NewClient(sock)
	waitStatus := func(what string, ok func(control.Status) bool) control.Status {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := c.Status(t.Context())
			if err == nil && ok(st) {
				return st
			}
			select {
			case err := <-done:
				t.Fatalf("bansd exited: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v %+v", what, err, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	jail := func(st control.Status, name string) control.JailStatus {
		for _, j := range st.Jails {
			if j.Name == name {
				return j
			}
		}
		return control.JailStatus{}
	}
	st := waitStatus("status on the socket set in the installed config", func(st control.Status) bool { return st.Config.File == cfgPath })
	if jail(st, "scan").Enabled {
		t.Fatal("jail scan enabled before the edit (it is off by default)")
	}
	// docker.host from the file: bansd looks for the engine there.
	if time.Sleep(300 * time.Millisecond); !strings.Contains(logs(), filepath.Join(dir, "no-docker.sock")) {
		t.Errorf("docker.host from the installed config did not take effect:\n%s", logs())
	}

	// The admin edits the file and runs `systemctl reload bansd`.
	set("[jails.scan]\nenabled = true\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	st = waitStatus("reload applies the edit", func(st control.Status) bool {
		return st.Config.LastReload != nil && jail(st, "scan").Enabled
	})
	if !st.Config.LastReload.OK {
		t.Errorf("reload: %+v", st.Config.LastReload)
	}

	// uninstall removes what install put there (the config too: it is
	// back to the shipped text).
	if err := os.WriteFile(cfgPath, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(envFile)
	makeCmd(t, bin, "uninstall", "DESTDIR="+root)
	var left []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("make uninstall left: %q", left)
	}
}
