package docker

import (
	"context"
	"errors"
	"fmt"
	"github.com/bansd/bansd/prefix"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/bansd/bansd/sources"
)

// Cursor is where the Docker source stopped in a container's log: resume
// with since=Time (whole seconds) and skip the first Count log messages
// (lines, or chunks of lines longer than 16 KiB) the engine returns, which
// were already processed. The store keeps its own copy of this shape; the
// daemon converts between the two, so the store does not import its owner.
type Cursor struct {
	ContainerID string
	Time        time.Time
	Count       int
}

// CursorStore keeps cursors under "project/service" keys (store.DB).
type CursorStore interface {
	Cursor(key string) (Cursor, bool, error)
	PutCursors(map[string]Cursor) error
}

// DockerOptions configure the Docker source. The zero value follows the
// Mailu project found on the local engine.
type DockerOptions struct {
	// Host is the engine's address; "" means $DOCKER_HOST, else
	// unix:///var/run/docker.sock.
	Host string
	// Project is the compose project that runs Mailu; "" finds it: the
	// project with services front and admin.
	Project string
	// Services to follow; nil means front, admin, smtp, antispam.
	Services []string
	// MaxLine cuts longer lines (bytes); 0 means 65536.
	MaxLine int
	// Cursors keeps the resume points. With nil, Done is a no-op and every
	// start begins Backlog back.
	Cursors CursorStore
	Logger  *slog.Logger
	// Backlog is how far back to start in a container's log when no cursor
	// is stored for its service; 0 means one hour.
	Backlog time.Duration
	// OnMailu is called (from Run's goroutine) whenever the discovered
	// Mailu facts change.
	OnMailu func(MailuInfo)
	// Warmup is how far before a stored cursor a service's log is read
	// again at start, as Warm lines (the longest findtime, bounded by
	// docker.warmup_max_span); 0: none. WarmupMaxLines bounds how many
	// are delivered per service (0: no bound).
	Warmup         time.Duration
	WarmupMaxLines int
}

// DefaultServices are the Mailu services whose logs carry signals.
var DefaultServices = []string{"front", "admin", "smtp", "antispam"}

// Service states in SourceStatus.
const (
	StateWaiting      = "waiting"      // no container for the service (or no project yet)
	StateAttached     = "attached"     // following the container's log
	StateStopped      = "stopped"      // the container stopped; its log was read to the end
	StateReconnecting = "reconnecting" // the engine did not answer; retrying with backoff
)

// SourceStatus is one followed service, for `bansctl status`.
type SourceStatus struct {
	Project   string
	Service   string
	Container string
	State     string
	// Lines delivered since start; Truncated of them were cut at MaxLine.
	Lines     uint64
	Truncated uint64
	// LastLine is the Docker time of the newest delivered line and Lag how
	// far behind the wall clock it was when delivered.
	LastLine   time.Time
	Lag        time.Duration
	Reconnects int
	LastError  string
	// Warmup is the start-up warm-up; its State is "" when there was none
	// (no cursor stored, or warm-up off).
	Warmup WarmupStatus
}

// Warm-up states.
const (
	WarmupRunning  = "running"
	WarmupComplete = "complete"
	WarmupPartial  = "partial"
)

// WarmupStatus is one service's warm-up: the lines from Want (the cursor
// minus the warm-up span) to Until (the cursor) read again.
type WarmupStatus struct {
	State string
	// Want is where the warm-up was to begin; First is the first line
	// Docker returned, Until the stored cursor's time.
	Want, First, Until time.Time
	// Lines delivered as Warm; Skipped beyond WarmupMaxLines.
	Lines, Skipped int
	// Took is from the request to the first live line (or the end of the
	// log).
	Took time.Duration
	// Why says what is missing when partial.
	Why string
}

// Docker follows the log streams of Mailu's containers through the Docker
// API.
type Docker struct {
	opt    DockerOptions
	log    *slog.Logger
	cli    *client.Client
	now    func() time.Time
	mu     sync.Mutex
	svcs   map[string]*service // fixed after NewDocker
	order  []string
	info   MailuInfo
	proj   string
	notify chan struct{}       // closed and replaced when targets change
	envs   map[string][]string // container id: its environment (watch's goroutine only)
	spares spares              // batch slices back from Done (batch.go)
}

// NewDocker checks the options and prepares a client; nothing is contacted
// before Run.
func NewDocker(opt DockerOptions) (*Docker, error) {
	if opt.MaxLine == 0 {
		opt.MaxLine = 65536
	}
	if opt.MaxLine < 256 {
		return nil, fmt.Errorf("docker source: max_line %d is too small (minimum 256)", opt.MaxLine)
	}
	if opt.Backlog == 0 {
		opt.Backlog = time.Hour
	}
	if opt.Warmup < 0 || opt.WarmupMaxLines < 0 {
		return nil, fmt.Errorf("docker source: warm-up span %s and lines %d must not be negative", opt.Warmup, opt.WarmupMaxLines)
	}
	if opt.Services == nil {
		opt.Services = DefaultServices
	}
	if len(opt.Services) == 0 {
		return nil, errors.New("docker source: no services to follow")
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	cli, err := newClient(opt.Host)
	if err != nil {
		return nil, fmt.Errorf("docker source: %w", err)
	}
	d := &Docker{
		opt:    opt,
		log:    opt.Logger.With("source", "docker"),
		cli:    cli,
		now:    time.Now,
		svcs:   map[string]*service{},
		proj:   opt.Project,
		notify: make(chan struct{}),
		spares: make(spares, maxSpares),
	}
	for _, name := range opt.Services {
		if name == "" || d.svcs[name] != nil {
			return nil, fmt.Errorf("docker source: service %q is empty or listed twice", name)
		}
		d.svcs[name] = &service{name: name, state: StateWaiting, room: make(chan struct{}, maxPending/maxBatch)}
		d.order = append(d.order, name)
	}
	d.info.Project = opt.Project
	return d, nil
}

// newClient is the one way bansd talks to an engine: host "" means
// $DOCKER_HOST, else the default socket; the API version is negotiated
// (Engine 20.10 and current ones alike).
func newClient(host string) (*client.Client, error) {
	h := client.WithHostFromEnv()
	if host != "" {
		h = client.WithHost(host)
	}
	return client.NewClientWithOpts(h, client.WithAPIVersionNegotiation())
}

// Host is the engine address the source talks to, as the client resolved
// it (config, else $DOCKER_HOST, else the default socket).
func (d *Docker) Host() string { return d.cli.DaemonHost() }

// Run follows the services until ctx ends; call it once. Lines go to out
// in batches of one service each (the lines read before the stream ran
// dry), in order per service; a slow consumer slows the reading down,
// nothing is dropped. With a CursorStore the consumer must call Done for
// each batch, in the order they came (at most maxPending lines per
// service may wait for it). Trouble with the engine is
// retried with backoff and jitter, never returned.
func (d *Docker) Run(ctx context.Context, out chan<- []sources.Line) error {
	defer d.cli.Close()
	var wg sync.WaitGroup
	for _, name := range d.order {
		f := &follower{d: d, svc: d.svcs[name], out: out}
		wg.Go(func() { f.run(ctx) })
	}
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := d.FlushCursors(); err != nil {
					d.log.Error("saving cursors", "err", err)
				}
			}
		}
	})
	d.watch(ctx)
	wg.Wait()
	if err := d.FlushCursors(); err != nil {
		d.log.Error("saving cursors", "err", err)
	}
	return nil
}

// maxPending bounds the lines delivered but not yet Done per service when
// cursors are kept: the reader waits beyond it (room counts batches of at
// most maxBatch lines).
const maxPending = 1 << 14

// service is one followed compose service: its target container, what
// was delivered and what the consumer has processed.
type service struct {
	name string
	room chan struct{} // one token per pending batch

	mu         sync.Mutex
	target     target
	state      string
	container  string
	lines      uint64
	truncated  uint64
	lastLine   time.Time
	lag        time.Duration
	reconnects int
	lastErr    string
	pending    []pendingBatch // delivered, not yet Done; from head on
	head       int
	done       position
	dirty      bool
	warmup     WarmupStatus
}

// target is the container a service should be read from. starts counts
// the service's start events, so that a restart between two listings is
// still a change.
type target struct {
	id      string
	running bool
	starts  int
}

// pendingBatch is a delivered batch with live lines, not yet Done: where
// its container's read began, its last live line's time and the messages
// its live lines consumed.
type pendingBatch struct {
	container string
	floor     int64
	last      time.Time
	runs      []secRun
}

// Done tells the source that the consumer has processed a batch Run sent:
// its service's cursor moves past it (and past any batch before it).
// Batches must be Done in the order they came. The slice goes back to the
// source, to carry later lines: the consumer must not keep it.
func (d *Docker) Done(lines []sources.Line) {
	defer d.spares.put(lines)
	if d.opt.Cursors == nil {
		return
	}
	// The last live line names the batch (warm lines have no place).
	var l *sources.Line
	for i := len(lines) - 1; i >= 0; i-- {
		if !lines[i].Warm {
			l = &lines[i]
			break
		}
	}
	if l == nil {
		return
	}
	s := d.svcs[l.Service]
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.pending[s.head:]
	i := slices.IndexFunc(q, func(p pendingBatch) bool {
		return p.container == l.Container && p.last.Equal(l.Time)
	})
	if i < 0 {
		return
	}
	for _, p := range q[:i+1] {
		if s.done.container != p.container {
			s.done = position{container: p.container, floor: p.floor}
		}
		s.done.add(p.runs)
		s.dirty = true
		<-s.room
	}
	clear(q[:i+1])
	s.head += i + 1
	switch {
	case s.head == len(s.pending):
		s.pending, s.head = s.pending[:0], 0
	case s.head > 64 && s.head > len(s.pending)/2:
		n := copy(s.pending, s.pending[s.head:])
		clear(s.pending[n:])
		s.pending, s.head = s.pending[:n], 0
	}
}

// FlushCursors writes the cursors of the services that moved since the
// last flush.
func (d *Docker) FlushCursors() error {
	if d.opt.Cursors == nil {
		return nil
	}
	d.mu.Lock()
	proj := d.proj
	d.mu.Unlock()
	if proj == "" {
		return nil
	}
	cs := map[string]Cursor{}
	var flushed []*service
	for _, name := range d.order {
		s := d.svcs[name]
		s.mu.Lock()
		if s.dirty {
			cs[proj+"/"+name] = s.done.cursor()
			s.dirty = false
			flushed = append(flushed, s)
		}
		s.mu.Unlock()
	}
	if len(cs) == 0 {
		return nil
	}
	if err := d.opt.Cursors.PutCursors(cs); err != nil {
		for _, s := range flushed {
			s.mu.Lock()
			s.dirty = true
			s.mu.Unlock()
		}
		return fmt.Errorf("docker source: save cursors: %w", err)
	}
	return nil
}

// Status reports each followed service.
func (d *Docker) Status() []SourceStatus {
	d.mu.Lock()
	proj := d.proj
	d.mu.Unlock()
	var st []SourceStatus
	for _, name := range d.order {
		s := d.svcs[name]
		s.mu.Lock()
		st = append(st, SourceStatus{
			Project: proj, Service: name, Container: s.container, State: s.state,
			Lines: s.lines, Truncated: s.truncated, LastLine: s.lastLine, Lag: s.lag,
			Reconnects: s.reconnects, LastError: s.lastErr, Warmup: s.warmup,
		})
		s.mu.Unlock()
	}
	return st
}

// Mailu returns what was discovered about the Mailu deployment.
func (d *Docker) Mailu() MailuInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info.clone()
}

func (s *service) set(f func(s *service)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

// setTargets records the containers found for each service and wakes the
// followers.
func (d *Docker) setTargets(proj string, ts map[string]target) {
	d.mu.Lock()
	if proj != "" {
		// Cursors keep the last project's keys while it is gone.
		d.proj = proj
	}
	changed := false
	for name, s := range d.svcs {
		s.mu.Lock()
		if s.target != ts[name] {
			s.target, changed = ts[name], true
		}
		s.mu.Unlock()
	}
	if changed {
		close(d.notify)
		d.notify = make(chan struct{})
	}
	d.mu.Unlock()
}

// waitTarget returns the service's target once it differs from old (or
// right away when it does already).
func (d *Docker) waitTarget(ctx context.Context, s *service, old target) (target, error) {
	for {
		d.mu.Lock()
		ch := d.notify
		s.mu.Lock()
		t := s.target
		s.mu.Unlock()
		d.mu.Unlock()
		if t != old {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return target{}, ctx.Err()
		case <-ch:
		}
	}
}

func (d *Docker) project() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proj
}

// backoff is exponential with full jitter between half and all of the
// step, so that several sources do not hammer a restarting engine in step.
type backoff struct{ step time.Duration }

const (
	backoffMin = 200 * time.Millisecond
	backoffMax = 30 * time.Second
)

func (b *backoff) wait(ctx context.Context) error {
	b.step = min(max(b.step*2, backoffMin), backoffMax)
	d := b.step/2 + rand.N(b.step/2+1)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (b *backoff) reset() { b.step = 0 }

// parsePrefix reads a Docker or Mailu network value: a CIDR, or a bare
// address taken as a host prefix.
func parsePrefix(s string) (netip.Prefix, bool) {
	p, err := prefix.Parse(s)
	return p, err == nil
}
