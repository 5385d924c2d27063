package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/dockertest"
)

// front's script: n port-25 AUTH attempts from addr, each nginx's
// "connected" line and, a real dialogue later, the failure line; then a
// marker.
func frontScript(first, n int, addr, tail string) string {
	return fmt.Sprintf(`n=%d
for i in $(seq %d); do
  n=$((n+1)); ts=$(date -u '+%%Y/%%m/%%d %%H:%%M:%%S')
  echo "$ts [info] 23#23: *$n client %s:4$n connected to 0.0.0.0:25"
  sleep 0.05
  echo "$ts [info] 23#23: *$n client login failed: \"AUTH not supported\" while in http auth state, client: %s, server: 0.0.0.0:25, login: \"bot$n\""
  sleep 0.2
done
%s`, first, n, addr, addr, tail)
}

type dockerReplaySummary struct {
	Lines, Matched int
	Bans           []string
	Alarms         []string
}

func replaySummary(t *testing.T, args ...string) dockerReplaySummary {
	t.Helper()
	code, out, errs := runReplay(t, "", append([]string{"--json"}, args...)...)
	if code != 0 {
		t.Fatalf("replay %v: exit %d: %s", args, code, errs)
	}
	var rep struct {
		Lines, Matched int
		Bans           []struct{ Target, Jail string }
		Alarms         []struct{ Address string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	s := dockerReplaySummary{Lines: rep.Lines, Matched: rep.Matched}
	for _, b := range rep.Bans {
		s.Bans = append(s.Bans, b.Target+" "+b.Jail)
	}
	for _, a := range rep.Alarms {
		s.Alarms = append(s.Alarms, a.Address)
	}
	slices.Sort(s.Bans)
	slices.Sort(s.Alarms)
	return s
}

// waitLog waits until a container's log holds marker.
func waitLog(t *testing.T, e *dockertest.Engine, name, marker string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(e.Docker(t, "logs", name), marker) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q:\n%s", name, marker, e.Docker(t, "logs", name))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReplayDocker: a real dockerd holds a Mailu-like project whose front
// service had two containers (an older one that exited, and the current
// one) and an admin. replay --docker reads their history through the API
// and decides what the replay of the same logs saved with `docker logs -t`
// decides (203.0.113.9's six attempts, three in each front container,
// banned; admin's ten failures for 203.0.113.7 banned; the alarm for a
// "client" inside Mailu's SUBNET), except that it knows the project's
// network as the daemon does: five attempts from its gateway are an alarm,
// not a ban as in the files' replay. --since after the old container
// leaves three attempts: no ban for 203.0.113.9; --until before everything
// leaves nothing.
func TestReplayDocker(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{})
	img := e.ImportBusybox(t)
	before := time.Now().Add(-time.Second)
	e.Docker(t, "run", "-d", "--name", "mailu_front_1", "-l", "com.docker.compose.project=mailu", "-l", "com.docker.compose.service=front",
		img, "sh", "-c", frontScript(100, 3, "203.0.113.9", "echo old-front-done"))
	waitLog(t, e, "mailu_front_1", "old-front-done")
	// Docker's times are the engine's clock: this process shares it.
	time.Sleep(1100 * time.Millisecond)
	between := time.Now()
	const admin = `for i in 0 1 2 3 4 5 6 7 8 9; do
  echo "[$(date -u '+%Y-%m-%d %H:%M:%S'),000] INFO in nginx: Login attempt for: u$i@example.com/imap/993 from: 203.0.113.7/400$i: failed: badauth: 00000$i"
done
echo admin-done
exec sleep 600`
	e.MailuLike(t, "192.0.2.160/28", "192.0.2.161", map[string]string{
		"front": frontScript(200, 3, "203.0.113.9", frontScript(300, 1, "192.168.203.1", frontScript(400, 5, "192.0.2.161", "echo front-done\nexec sleep 600"))),
		"admin": admin,
	})
	waitLog(t, e, "mailu-front-1", "front-done")
	waitLog(t, e, "mailu-admin-1", "admin-done")

	// The same history saved by the docker CLI, the old container first.
	dir := t.TempDir()
	front := e.Docker(t, "logs", "-t", "mailu_front_1") + e.Docker(t, "logs", "-t", "mailu-front-1")
	saved := map[string]string{"front": front, "admin": e.Docker(t, "logs", "-t", "mailu-admin-1")}
	var args []string
	for _, svc := range []string{"front", "admin"} {
		p := filepath.Join(dir, svc+".log")
		if err := os.WriteFile(p, []byte(saved[svc]), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, svc+"="+p)
	}
	files := replaySummary(t, args...)
	if fmt.Sprint(files.Bans) != "[192.0.2.161/32 smtp-auth-bots 203.0.113.7/32 auth 203.0.113.9/32 smtp-auth-bots]" || fmt.Sprint(files.Alarms) != "[192.168.203.1]" {
		t.Fatalf("replay of the saved logs: %+v", files)
	}
	want := dockerReplaySummary{Lines: files.Lines, Matched: files.Matched,
		Bans: []string{"203.0.113.7/32 auth", "203.0.113.9/32 smtp-auth-bots"}, Alarms: []string{"192.0.2.161", "192.168.203.1"}}
	host := e.Host()
	if got := replaySummary(t, "--docker", "--host", host); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replay --docker %+v\nwant           %+v (files: %+v)", got, want, files)
	}
	// The project by name, and the engine from $DOCKER_HOST.
	t.Setenv("DOCKER_HOST", host)
	if got := replaySummary(t, "--docker", "--project", "mailu", "--since", "1h"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replay --docker --since 1h %+v, want %+v", got, want)
	}
	got := replaySummary(t, "--docker", "--since", between.UTC().Format(time.RFC3339Nano))
	if fmt.Sprint(got.Bans) != "[203.0.113.7/32 auth]" || got.Lines != want.Lines-7 {
		t.Fatalf("replay --docker --since (after the old front) %+v; want only admin's ban and 7 lines fewer (the old front's) than %d", got, want.Lines)
	}
	got = replaySummary(t, "--docker", "--until", before.UTC().Format(time.RFC3339Nano))
	if got.Lines != 0 || len(got.Bans) != 0 {
		t.Fatalf("replay --docker --until (before everything) %+v", got)
	}
	code, _, errs := runReplay(t, "", "--docker", "--project", "nosuch")
	if code != exitFailed || !strings.Contains(errs, `project "nosuch"`) {
		t.Fatalf("unknown project: exit %d, %s", code, errs)
	}
}

// The progress line rewrites itself with the lines read and the newest
// log time, and is erased at the end.
func TestShowProgress(t *testing.T) {
	var p replayProgress
	p.note(1234, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixNano())
	var b bytes.Buffer
	stop, done := make(chan struct{}), make(chan struct{})
	go showProgress(&b, &p, time.Millisecond, stop, done)
	time.Sleep(20 * time.Millisecond)
	close(stop)
	<-done
	out := b.String()
	if !strings.Contains(out, "\r\033[Kreplay: 1234 lines read, log time 2026-11-20 10:00:00Z") || !strings.HasSuffix(out, "\r\033[K") {
		t.Fatalf("progress output %q", out)
	}
}
