package docker

import (
	"bufio"
	"context"
	"fmt"
	"github.com/bansd/bansd/sources"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/dockertest"
	"github.com/bansd/bansd/store"
)

// dkStore adapts the real bbolt store to CursorStore, as the daemon does.
type dkStore struct{ db *store.DB }

func (s dkStore) Cursor(key string) (Cursor, bool, error) {
	c, ok, err := s.db.Cursor(key)
	return Cursor(c), ok, err
}

func (s dkStore) PutCursors(cs map[string]Cursor) error {
	m := make(map[string]store.Cursor, len(cs))
	for k, c := range cs {
		m[k] = store.Cursor(c)
	}
	return s.db.PutCursors(m)
}

func dkOpenStore(t testing.TB, path string) dkStore {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return dkStore{db}
}

// dkSource is a running Docker source with a consumer that keeps every
// line and marks it Done, as the daemon does.
type dkSource struct {
	d      *Docker
	cancel context.CancelFunc
	ran    chan error
	drain  chan struct{}
	mu     sync.Mutex
	lines  []sources.Line
	change chan struct{}
}

func dkStart(t *testing.T, opt DockerOptions) *dkSource {
	t.Helper()
	d, err := NewDocker(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &dkSource{d: d, cancel: cancel, ran: make(chan error, 1), drain: make(chan struct{}), change: make(chan struct{}, 1)}
	out := make(chan []sources.Line, 64)
	go func() {
		s.ran <- d.Run(ctx, out)
		close(out)
	}()
	go func() {
		defer close(s.drain)
		for lines := range out {
			s.mu.Lock()
			s.lines = append(s.lines, lines...)
			s.mu.Unlock()
			d.Done(lines)
			select {
			case s.change <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop ends Run, lets the consumer finish what it was given and saves the
// cursors: a clean daemon shutdown.
func (s *dkSource) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return 20s after its context ended")
	}
	<-s.drain
	if err := s.d.FlushCursors(); err != nil {
		t.Errorf("FlushCursors: %v", err)
	}
}

func (s *dkSource) got() []sources.Line {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sources.Line(nil), s.lines...)
}

// waitFor waits until cond holds for the lines so far.
func (s *dkSource) waitFor(t *testing.T, what string, timeout time.Duration, cond func([]sources.Line) bool) []sources.Line {
	t.Helper()
	deadline := time.After(timeout)
	for {
		ls := s.got()
		if cond(ls) {
			return ls
		}
		select {
		case <-s.change:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s: %d lines, status %+v", what, len(ls), s.d.Status())
		}
	}
}

func (s *dkSource) waitN(t *testing.T, n int, timeout time.Duration) []sources.Line {
	t.Helper()
	return s.waitFor(t, fmt.Sprintf("%d lines", n), timeout, func(ls []sources.Line) bool { return len(ls) >= n })
}

func (s *dkSource) status(t *testing.T, service string) SourceStatus {
	t.Helper()
	for _, st := range s.d.Status() {
		if st.Service == service {
			return st
		}
	}
	t.Fatalf("no status for %s in %+v", service, s.d.Status())
	return SourceStatus{}
}

func (s *dkSource) waitState(t *testing.T, service, state string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.status(t, service).State != state {
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached state %s: %+v", service, state, s.status(t, service))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dkRun starts a container that looks like a compose service.
func dkRun(t *testing.T, e *dockertest.Engine, project, service string, args ...string) string {
	t.Helper()
	a := []string{"run", "-d", "-l", "com.docker.compose.project=" + project, "-l", "com.docker.compose.service=" + service}
	return strings.TrimSpace(e.Docker(t, append(a, args...)...))
}

// dkLogs is what `docker logs -t` says, per stream.
func dkLogs(t *testing.T, e *dockertest.Engine, id string) (stdout, stderr []string) {
	t.Helper()
	cmd := exec.Command("docker", "-H", e.Host(), "logs", "-t", id)
	cmd.Env = e.Env()
	var o, er strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &er
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker logs: %v", err)
	}
	split := func(s string) []string {
		var ls []string
		sc := bufio.NewScanner(strings.NewReader(s))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ls = append(ls, sc.Text())
		}
		return ls
	}
	return split(o.String()), split(er.String())
}

// dkCheckSeq checks that the lines with each prefix are "prefix 0" ..
// "prefix n-1", in order, each once.
func dkCheckSeq(t *testing.T, ls []sources.Line, n int, prefixes ...string) {
	t.Helper()
	for _, p := range prefixes {
		next := 0
		for _, l := range ls {
			f := strings.Fields(l.Text)
			if len(f) < 2 || f[0] != p {
				continue
			}
			if f[1] != fmt.Sprint(next) {
				t.Fatalf("%s: got %q, want %s %d (line %d of %d)", p, l.Text, p, next, next, len(ls))
			}
			next++
		}
		if next != n {
			t.Fatalf("%s: %d lines, want %d", p, next, n)
		}
	}
}

func warmLines(ls []sources.Line) int {
	n := 0
	for _, l := range ls {
		if l.Warm {
			n++
		}
	}
	return n
}

func dkShell(n int) string {
	return fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; `+dkMarkLoop, n)
}

// dkMarkLoop ends a test container's script instead of a long sleep: it
// prints "mark" each time /mark appears. A container's lines reach the
// source in order, so once a mark has arrived every line printed before it
// has too: settle waits on that instead of sleeping for "nothing more".
const dkMarkLoop = `while :; do if [ -e /mark ]; then rm -f /mark; echo mark; fi; sleep 0.05; done`

// settle makes container id print a mark, waits for it, and returns the
// lines so far without the marks.
func (s *dkSource) settle(t *testing.T, e *dockertest.Engine, id string) []sources.Line {
	t.Helper()
	marks := func(ls []sources.Line) int {
		n := 0
		for _, l := range ls {
			if l.Text == "mark" && strings.HasPrefix(l.Container, id) {
				n++
			}
		}
		return n
	}
	before := marks(s.got())
	e.Docker(t, "exec", id, "touch", "/mark")
	ls := s.waitFor(t, "the mark", 30*time.Second, func(ls []sources.Line) bool { return marks(ls) > before })
	out := ls[:0:0]
	for _, l := range ls {
		if l.Text != "mark" {
			out = append(out, l)
		}
	}
	return out
}

// TestDocker runs the source against a real dockerd, one scenario per
// compose project.
func TestDocker(t *testing.T) {
	e := dockertest.Start(t, dockertest.Options{LiveRestore: true})
	bb := e.ImportBusybox(t)
	spam := e.ImportLogspam(t)

	t.Run("lines and timestamps", func(t *testing.T) {
		const n = 500
		id := dkRun(t, e, "p1", "front", bb, "sh", "-c", dkShell(n))
		idle := dkRun(t, e, "p1", "admin", bb, "sleep", "600")
		src := dkStart(t, DockerOptions{Host: e.Host(), Project: "p1"})
		ls := src.waitN(t, 2*n, 30*time.Second)
		dkCheckSeq(t, ls, n, "out", "err")
		stdout, stderr := dkLogs(t, e, id)
		want := map[string]string{}
		for _, l := range append(stdout, stderr...) {
			ts, text, _ := strings.Cut(l, " ")
			want[text] = ts
		}
		for _, l := range ls {
			if l.Service != "front" || l.Container != id {
				t.Fatalf("line %+v from the wrong container", l)
			}
			ts, err := time.Parse(time.RFC3339Nano, want[l.Text])
			if err != nil || !ts.Equal(l.Time) {
				t.Fatalf("line %q: time %v, docker logs -t says %q", l.Text, l.Time, want[l.Text])
			}
		}
		// The idle container is followed too, and nothing more arrives.
		src.waitState(t, "admin", StateAttached)
		if st := src.status(t, "admin"); st.Container != idle || st.Lines != 0 {
			t.Fatalf("admin status %+v", st)
		}
		if got := len(src.settle(t, e, id)); got != 2*n {
			t.Fatalf("%d lines, want %d", got, 2*n)
		}
		if st := src.status(t, "front"); st.Lines != 2*n+1 || st.State != StateAttached || st.Project != "p1" { // and the mark
			t.Fatalf("front status %+v", st)
		}
		e.Docker(t, "stop", "-t", "0", idle)
		src.waitState(t, "admin", StateStopped)
	})

	t.Run("log stream", func(t *testing.T) {
		d, err := NewDocker(DockerOptions{Host: e.Host(), Project: "p0"})
		if err != nil {
			t.Fatal(err)
		}
		defer d.cli.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// As attach's inspect does before it.
		d.cli.NegotiateAPIVersion(ctx)
		if _, err := d.followLogs(ctx, "nosuchcontainer", ""); err == nil || !strings.Contains(err.Error(), "No such container") {
			t.Fatalf("followLogs of a missing container: %v, want the engine's refusal", err)
		}
		id := dkRun(t, e, "p0", "front", bb, "sh", "-c", "echo one; echo two >&2; exec sleep 600")
		rc, err := d.followLogs(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		// Unframed by HTTP: the stream starts with a log frame's header,
		// not a chunk size.
		dm := newDemux(rc.body, false, 1024)
		if dm.r != rc.body {
			t.Fatal("the demuxer reads through a buffer of its own: every byte is copied twice")
		}
		got := map[string]byte{}
		for len(got) < 2 {
			m, err := dm.next()
			if err != nil {
				t.Fatalf("after %v: %v", got, err)
			}
			got[string(m.text)] = m.stream
		}
		if got["one"] != streamStdout || got["two"] != streamStderr {
			t.Fatalf("messages %v, want one on stdout and two on stderr", got)
		}
		// The stream stays open while the container runs, and ctx ends it.
		read := make(chan error, 1)
		go func() { _, err := dm.next(); read <- err }()
		select {
		case err := <-read:
			t.Fatalf("the followed stream ended while the container runs: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		cancel()
		select {
		case err := <-read:
			if err == nil {
				t.Fatal("a read after cancel returned a message")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("cancel did not end the read")
		}
	})

	t.Run("long lines", func(t *testing.T) {
		script := `head -c 102400 /dev/zero | tr '\0' a; echo; echo after; head -c 1000 /dev/zero | tr '\0' b; echo; sleep 600`
		dkRun(t, e, "p2", "front", bb, "sh", "-c", script)
		src := dkStart(t, DockerOptions{Host: e.Host(), Project: "p2", MaxLine: 65536})
		ls := src.waitN(t, 3, 30*time.Second)
		if len(ls[0].Text) != 65536 || strings.Trim(ls[0].Text, "a") != "" {
			t.Fatalf("long line: %d bytes %.20q", len(ls[0].Text), ls[0].Text)
		}
		if ls[1].Text != "after" || ls[2].Text != strings.Repeat("b", 1000) {
			t.Fatalf("lines after the long one: %.30q %.30q", ls[1].Text, ls[2].Text)
		}
		if st := src.status(t, "front"); st.Truncated != 1 || st.Lines != 3 {
			t.Fatalf("status %+v", st)
		}
	})

	t.Run("tty", func(t *testing.T) {
		dkRun(t, e, "p3", "smtp", "-t", bb, "sh", "-c", `for i in 0 1 2; do echo "tty $i"; done; sleep 600`)
		src := dkStart(t, DockerOptions{Host: e.Host(), Project: "p3"})
		ls := src.waitN(t, 3, 30*time.Second)
		dkCheckSeq(t, ls, 3, "tty")
		for _, l := range ls {
			if strings.ContainsAny(l.Text, "\r\n") || l.Time.IsZero() {
				t.Fatalf("tty line %+v", l)
			}
		}
	})

	t.Run("resume", func(t *testing.T) {
		const n = 3000
		id := dkRun(t, e, "p4", "admin", spam, "logspam", "-n", fmt.Sprint(n), "-rate", "1000", "-streams", "both", "-sleep", "600s", "-mark", "/mark")
		st := dkOpenStore(t, filepath.Join(t.TempDir(), "bansd.db"))
		var all []sources.Line
		for round := 0; ; round++ {
			src := dkStart(t, DockerOptions{Host: e.Host(), Project: "p4", Cursors: st})
			if round < 3 {
				// Stop in the middle of the stream.
				src.waitN(t, 500, 30*time.Second)
				src.stop(t)
				all = append(all, src.got()...)
				continue
			}
			src.waitFor(t, "the rest", 30*time.Second, func(ls []sources.Line) bool { return len(all)+len(ls) >= 2*n })
			ls := src.settle(t, e, id)
			src.stop(t)
			all = append(all, ls...)
			break
		}
		dkCheckSeq(t, all, n, "out", "err")
		c, ok, err := st.Cursor("p4/admin")
		if err != nil || !ok || c.Count < 1 {
			t.Fatalf("stored cursor %+v %v %v", c, ok, err)
		}
	})

	t.Run("warm-up", func(t *testing.T) {
		const n = 3000
		id := dkRun(t, e, "p8", "admin", spam, "logspam", "-n", fmt.Sprint(n), "-rate", "1000", "-streams", "both", "-sleep", "600s", "-mark", "/mark")
		st := dkOpenStore(t, filepath.Join(t.TempDir(), "bansd.db"))
		opt := DockerOptions{Host: e.Host(), Project: "p8", Cursors: st, Warmup: time.Hour}
		// No cursor yet: nothing to warm up from.
		src := dkStart(t, opt)
		src.waitN(t, 500, 30*time.Second)
		src.stop(t)
		first := src.got()
		if w := src.status(t, "admin").Warmup; w.State != "" || warmLines(first) != 0 {
			t.Fatalf("first start warmed up: %+v", w)
		}
		// Restarted in the middle of the stream: exactly the lines the
		// cursor covers come again as Warm, then the rest live.
		src = dkStart(t, opt)
		src.waitFor(t, "the rest", 30*time.Second, func(ls []sources.Line) bool { return len(ls)-warmLines(ls)+len(first) >= 2*n })
		second := src.settle(t, e, id)
		src.stop(t)
		var warm, live []sources.Line
		for _, l := range second {
			if l.Warm {
				warm = append(warm, l)
			} else {
				live = append(live, l)
			}
		}
		if !slices.EqualFunc(warm, first, func(a, b sources.Line) bool {
			return a.Text == b.Text && a.Time.Equal(b.Time) && b.Container == a.Container
		}) {
			t.Fatalf("warm-up gave %d lines, the first run delivered %d (first warm %v, last warm %v)", len(warm), len(first), warm[:1], warm[len(warm)-1:])
		}
		if i := slices.IndexFunc(second, func(l sources.Line) bool { return !l.Warm }); slices.ContainsFunc(second[i:], func(l sources.Line) bool { return l.Warm }) {
			t.Fatal("a warm line came after a live one")
		}
		dkCheckSeq(t, append(first, live...), n, "out", "err")
		w := src.status(t, "admin").Warmup
		if w.State != WarmupComplete || w.Lines != len(first) || w.Skipped != 0 || w.Why != "" || w.Took <= 0 || w.Until.Sub(w.Want) != time.Hour {
			t.Fatalf("warm-up status %+v, want complete with %d lines", w, len(first))
		}
		if st := src.status(t, "admin"); st.Lines != uint64(len(live)+1) { // and the mark
			t.Fatalf("status counts %d lines, %d were live", st.Lines, len(live))
		}
		// Bounded by lines: the rest is skipped, and status says so.
		opt.WarmupMaxLines = 100
		src = dkStart(t, opt)
		ls := src.settle(t, e, id)
		src.stop(t)
		w = src.status(t, "admin").Warmup
		if warmLines(ls) != 100 || w.State != WarmupPartial || w.Lines != 100 || w.Skipped != 2*n+1-100 || // and round two's mark
			!strings.Contains(w.Why, "docker.warmup_max_lines (100)") {
			t.Fatalf("%d warm lines, status %+v; want 100, partial", warmLines(ls), w)
		}
		if live := len(ls) - warmLines(ls); live != 0 {
			t.Fatalf("%d live lines after a settled stop, want 0", live)
		}
	})

	t.Run("warm-up after the container was replaced", func(t *testing.T) {
		st := dkOpenStore(t, filepath.Join(t.TempDir(), "bansd.db"))
		opt := DockerOptions{Host: e.Host(), Project: "p10", Cursors: st, Warmup: time.Hour}
		old := dkRun(t, e, "p10", "front", bb, "sh", "-c", dkShell(20))
		src := dkStart(t, opt)
		src.waitN(t, 40, 30*time.Second)
		src.settle(t, e, old)
		src.stop(t)
		// Replaced while bansd was down (compose up --force-recreate).
		e.Docker(t, "rm", "-f", old)
		newer := dkRun(t, e, "p10", "front", bb, "sh", "-c", dkShell(5))
		src = dkStart(t, opt)
		ls := src.waitN(t, 10, 30*time.Second)
		src.stop(t)
		w := src.status(t, "front").Warmup
		if warmLines(ls) != 0 || w.State != WarmupPartial || !strings.Contains(w.Why, "replaced since the cursor ("+short(old)+")") {
			t.Fatalf("%d warm lines, warm-up %+v; want none, partial: replaced", warmLines(ls), w)
		}
		dkCheckSeq(t, ls, 5, "out", "err")
		if ls[0].Container != newer {
			t.Fatalf("lines from %s, want the new container %s", ls[0].Container, newer)
		}
	})

	t.Run("warm-up after rotation", func(t *testing.T) {
		// json-file keeps about 20 KB: most lines are rotated away.
		id := dkRun(t, e, "p9", "front", "--log-opt", "max-size=10k", "--log-opt", "max-file=2", spam,
			"logspam", "-n", "6000", "-rate", "1000", "-sleep", "600s", "-mark", "/mark")
		st := dkOpenStore(t, filepath.Join(t.TempDir(), "bansd.db"))
		opt := DockerOptions{Host: e.Host(), Project: "p9", Cursors: st, Warmup: 3 * time.Second}
		src := dkStart(t, opt)
		src.waitFor(t, "the last line", 30*time.Second, func(ls []sources.Line) bool {
			return len(ls) > 0 && ls[len(ls)-1].Text == "out 5999"
		})
		src.settle(t, e, id)
		src.stop(t)
		// Two seconds on, a new line cannot be taken for one the cursor
		// counts (its second or the next).
		time.Sleep(2 * time.Second)
		src = dkStart(t, opt)
		e.Docker(t, "exec", id, "touch", "/mark")
		src.waitFor(t, "a live mark", 30*time.Second, func(ls []sources.Line) bool {
			return slices.ContainsFunc(ls, func(l sources.Line) bool { return l.Text == "mark" && !l.Warm })
		})
		src.stop(t)
		w := src.status(t, "front").Warmup
		if w.State != WarmupPartial || !strings.Contains(w.Why, "rotated away") || w.Lines == 0 || !w.First.After(w.Want) {
			t.Fatalf("warm-up status %+v, want partial: rotated away", w)
		}
	})

	t.Run("recreate and restart", func(t *testing.T) {
		st := dkOpenStore(t, filepath.Join(t.TempDir(), "bansd.db"))
		src := dkStart(t, DockerOptions{Host: e.Host(), Project: "p5", Cursors: st})
		old := dkRun(t, e, "p5", "front", bb, "sh", "-c", `i=0; while [ $i -lt 100 ]; do echo "gen1 $i"; i=$((i+1)); done; sleep 600`)
		src.waitN(t, 100, 30*time.Second)
		// As `docker compose up -d` does: stop the old one, start a new one.
		e.Docker(t, "stop", "-t", "0", old)
		newer := dkRun(t, e, "p5", "front", bb, "sh", "-c", `i=0; while [ $i -lt 100 ]; do echo "gen2 $i"; i=$((i+1)); done; `+dkMarkLoop)
		e.Docker(t, "rm", old)
		ls := src.waitN(t, 200, 30*time.Second)
		dkCheckSeq(t, ls, 100, "gen1", "gen2")
		if ls[199].Container != newer {
			t.Fatalf("last line from %s, want %s", ls[199].Container, newer)
		}
		// The same container restarted prints its lines again: those are
		// new lines; the old ones are not read twice.
		e.Docker(t, "restart", "-t", "0", newer)
		src.waitN(t, 300, 30*time.Second)
		if ls = src.settle(t, e, newer); len(ls) != 300 {
			t.Fatalf("%d lines after the restart, want 300", len(ls))
		}
		dkCheckSeq(t, ls[200:], 100, "gen2")
		// Removed while running, a new one appears.
		e.Docker(t, "rm", "-f", newer)
		dkRun(t, e, "p5", "front", bb, "sh", "-c", `echo "gen3 0"; sleep 600`)
		ls = src.waitFor(t, "gen3", 30*time.Second, func(ls []sources.Line) bool { return ls[len(ls)-1].Text == "gen3 0" })
		dkCheckSeq(t, ls, 1, "gen3")
	})

	t.Run("engine restart", func(t *testing.T) {
		const n = 2000
		id := dkRun(t, e, "p6", "front", spam, "logspam", "-n", fmt.Sprint(n), "-rate", "400", "-streams", "both", "-sleep", "600s", "-mark", "/mark")
		st := dkOpenStore(t, filepath.Join(t.TempDir(), "bansd.db"))
		src := dkStart(t, DockerOptions{Host: e.Host(), Project: "p6", Cursors: st})
		src.waitN(t, 400, 30*time.Second)
		e.Restart(t)
		src.waitN(t, 2*n, 60*time.Second)
		dkCheckSeq(t, src.settle(t, e, id), n, "out", "err")
		if s := src.status(t, "front"); s.Reconnects == 0 || s.State != StateAttached {
			t.Fatalf("status after the engine restart: %+v", s)
		}
	})

	t.Run("engine killed", func(t *testing.T) {
		// Killed in a pause of the output: a line dockerd had read but not
		// yet written would be lost by dockerd itself, not by the source.
		id := dkRun(t, e, "p7", "admin", bb, "sh", "-c",
			`for b in a b; do i=0; while [ $i -lt 300 ]; do echo "$b $i"; i=$((i+1)); done; sleep 5; done; `+dkMarkLoop)
		st := dkOpenStore(t, filepath.Join(t.TempDir(), "bansd.db"))
		src := dkStart(t, DockerOptions{Host: e.Host(), Project: "p7", Cursors: st})
		src.waitN(t, 300, 30*time.Second)
		e.Kill(t)
		time.Sleep(time.Second)
		e.Restart(t)
		src.waitN(t, 600, 60*time.Second)
		dkCheckSeq(t, src.settle(t, e, id), 300, "a", "b")
	})
}

func TestDockerDiscovery(t *testing.T) {

	e := dockertest.Start(t, dockertest.Options{UserlandProxy: true})
	bb := e.ImportBusybox(t)
	e.Docker(t, "network", "create", "--subnet", "192.168.203.0/24", "--label", "com.docker.compose.project=mailu", "mailu_default")
	dkRun(t, e, "web", "front", bb, "sh", "-c", `echo "web front"; sleep 600`)
	dkRun(t, e, "web", "db", bb, "sh", "-c", `echo "web db"; sleep 600`)
	front := dkRun(t, e, "mailu", "front", "--network", "mailu_default", "-p", "45678:25",
		"-e", "SUBNET=192.168.203.0/24", "-e", "REAL_IP_FROM=192.0.2.10,198.51.100.0/24", "-e", "LOG_LEVEL=INFO",
		bb, "sh", "-c", `echo "mailu front"; `+dkMarkLoop)
	admin := dkRun(t, e, "mailu", "admin", "--network", "mailu_default", "-e", "SUBNET=192.0.2.99/32", "-e", "AUTH_RATELIMIT_EXEMPTION=203.0.113.0/24",
		bb, "sh", "-c", `echo "mailu admin"; `+dkMarkLoop)
	// `docker compose run admin ...`: a one-off beside the real admin.
	dkRun(t, e, "mailu", "admin", "-l", "com.docker.compose.oneoff=True", bb, "sh", "-c", `echo "oneoff admin"; sleep 600`)

	var mu sync.Mutex
	var seen []MailuInfo
	src := dkStart(t, DockerOptions{Host: e.Host(), OnMailu: func(m MailuInfo) {
		mu.Lock()
		seen = append(seen, m)
		mu.Unlock()
	}})
	src.waitN(t, 2, 30*time.Second)
	// Each followed container has delivered all it printed once its mark
	// is in; a container followed by mistake (web's, the one-off) would
	// have printed its line at start.
	src.settle(t, e, front)
	ls := src.settle(t, e, admin)
	var texts []string
	for _, l := range ls {
		texts = append(texts, l.Service+": "+l.Text)
	}
	if strings.Join(texts, "|") != "front: mailu front|admin: mailu admin" && strings.Join(texts, "|") != "admin: mailu admin|front: mailu front" {
		t.Fatalf("lines %q", texts)
	}
	m := src.d.Mailu()
	if m.Project != "mailu" {
		t.Fatalf("project %q", m.Project)
	}
	mu.Lock()
	if len(seen) == 0 || seen[len(seen)-1].Project != "mailu" {
		t.Errorf("OnMailu calls %+v", seen)
	}
	mu.Unlock()
	wantEnv := map[string]string{"SUBNET": "192.168.203.0/24", "REAL_IP_FROM": "192.0.2.10,198.51.100.0/24", "LOG_LEVEL": "INFO", "AUTH_RATELIMIT_EXEMPTION": "203.0.113.0/24"}
	for k, v := range wantEnv {
		if m.Env[k] != v {
			t.Errorf("env %s = %q, want %q (all: %v)", k, m.Env[k], v, m.Env)
		}
	}
	if got := fmt.Sprint(m.Prefixes("REAL_IP_FROM")); got != "[192.0.2.10/32 198.51.100.0/24]" {
		t.Errorf("REAL_IP_FROM prefixes %s", got)
	}
	nets := map[string]NetworkInfo{}
	for _, n := range m.Networks {
		nets[n.Name] = n
	}
	if n := nets["mailu_default"]; fmt.Sprintf("%v %v %s", n.Subnets, n.Gateways, n.Project) != "[192.168.203.0/24] [192.168.203.1] mailu" {
		t.Errorf("mailu_default: %+v", n)
	}
	if n := nets["bridge"]; fmt.Sprint(n.Subnets, n.Gateways) != "[192.0.2.0/25] [192.0.2.1]" {
		t.Errorf("bridge: %+v", n)
	}
	if m.UserlandProxy != "yes" {
		t.Errorf("userland proxy %q, want yes", m.UserlandProxy)
	}
	if m.ServerVersion == "" || m.ClientAPI == "" || m.ServerAPI == "" {
		t.Errorf("versions %q %q %q", m.ServerVersion, m.ServerAPI, m.ClientAPI)
	}
	if st := src.status(t, "front"); st.Container != front {
		t.Errorf("front status %+v", st)
	}
	// A network created later shows up.
	e.Docker(t, "network", "create", "--subnet", "198.51.100.0/28", "later")
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(src.d.Mailu().Networks, func(n NetworkInfo) bool { return n.Name == "later" }) {
		if time.Now().After(deadline) {
			t.Fatalf("network 'later' not discovered: %+v", src.d.Mailu().Networks)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
