package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/bansd/bansd/sources/docker"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/sources"
	"github.com/bansd/bansd/store"
)

const (
	// lineBuffer is the channel between the Docker source and the engine.
	lineBuffer = 4096
	// decisionBuffer bounds decisions waiting for the ban manager; the
	// pipeline blocks beyond it rather than grow memory.
	decisionBuffer = 1024
	// manualBanTime is a manual ban's duration when bansctl gives none.
	manualBanTime = 24 * time.Hour
	// shutdownGrace bounds how long pending bans may take at SIGTERM.
	shutdownGrace = 20 * time.Second
)

// daemon wires sources → jail engine → ban manager → store and serves the
// control API.
type daemon struct {
	log     *slog.Logger
	level   *slog.LevelVar
	path    string // config file, "" for the embedded default
	started time.Time

	mu         sync.Mutex // guards cfg, loadedAt, lastReload, live
	cfg        *configs.Config
	loadedAt   time.Time
	lastReload *control.ReloadResult
	live       jail.Protected

	engine *jail.Engine
	// pending collects the decisions of the line being processed: the
	// engine calls onDecision from inside Process, on the pipeline.
	pendingMu sync.Mutex
	pending   []jail.Decision

	db     *store.DB
	mgr    *ban.Manager
	docker *docker.Docker
	// attr keeps the engine on the kernel's word about who connected.
	attr    *attribution
	metrics *metrics
	alarms  *alarmBook
}

func newDaemon(cfg *configs.Config, path string, log *slog.Logger, level *slog.LevelVar) (*daemon, error) {
	now := time.Now()
	d := &daemon{log: log, level: level, path: path, started: now, cfg: cfg, loadedAt: now}
	d.alarms = newAlarmBook(log)
	d.metrics = newMetrics(d)
	// Series exist from the start (at 0), so dashboards and alerts see them.
	for _, svc := range cfg.Docker.Services {
		d.metrics.lines.WithLabelValues(svc)
	}
	for _, name := range cfg.JailNames() {
		d.metrics.decisions.WithLabelValues(name)
	}
	d.metrics.alarms.WithLabelValues("gateway-client")
	var err error
	d.engine, err = jail.NewEngine(cfg, jail.Options{OnDecision: d.onDecision, OnAlarm: d.onAlarm, Logger: log.With("part", "jail")})
	if err != nil {
		return nil, fmt.Errorf("jail engine: %w", err)
	}
	return d, nil
}

// run runs until ctx ends. Start-up order: state, firewall, API, then
// logs, so that a ban decided from the first line has somewhere to go.
func (d *daemon) run(ctx context.Context, hup <-chan os.Signal) error {
	cfg := d.config()
	if err := os.MkdirAll(filepath.Dir(cfg.Daemon.State), 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	db, err := store.Open(cfg.Daemon.State)
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	d.db = db
	db.SetEventLimits(store.EventLimits{MaxEvents: cfg.History.MaxEvents, MaxAge: cfg.History.MaxAge})
	defer func() {
		if err := db.Close(); err != nil {
			d.log.Error("close state", "err", err)
		}
	}()

	nft, err := ban.NewNFT(cfg.Firewall)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	fw := &timedFirewall{Firewall: nft, hist: d.metrics.nftFlush}
	d.mgr, err = ban.NewManager(banOptions(cfg, fw, db, d.engine.NeverBan, d.log.With("part", "ban")))
	if err != nil {
		return fmt.Errorf("ban manager: %w", err)
	}
	d.attr = startAttribution(ctx, cfg, d.engine, d.log.With("part", "attribution"), 0)
	defer d.attr.close()
	d.docker, err = docker.NewDocker(docker.DockerOptions{
		Host: cfg.Docker.Host, Project: cfg.Docker.Project, Services: cfg.Docker.Services,
		MaxLine: cfg.Docker.MaxLine, Cursors: cursorStore{db}, Logger: d.log.With("part", "docker"), OnMailu: d.onMailu,
	})
	if err != nil {
		return fmt.Errorf("docker source: %w", err)
	}
	d.setProtected()

	metricsHandler := promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{})
	srv, err := control.NewServer(d, metricsHandler, cfg.Daemon.SocketGroup, d.log)
	if err != nil {
		return err
	}
	ln, err := srv.Listen(cfg.Daemon.Socket)
	if err != nil {
		return err
	}

	// The manager outlives the pipeline so that pending bans are flushed.
	mgrCtx, stopMgr := context.WithCancel(context.Background())
	defer stopMgr()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- d.mgr.Run(mgrCtx) }()

	go func() {
		if err := srv.Serve(ln); err != nil {
			d.log.Error("control socket", "err", err)
		}
	}()
	if addr := cfg.Daemon.MetricsListen; addr != "" {
		msrv, ml, err := control.ServeMetrics(ctx, addr, metricsHandler)
		if err != nil {
			return err
		}
		go msrv.Serve(ml)
		defer msrv.Close()
	}

	srcCtx, stopSrc := context.WithCancel(ctx)
	defer stopSrc()
	lines := make(chan sources.Line, lineBuffer)
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		if err := d.docker.Run(srcCtx, lines); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("docker source stopped", "err", err)
		}
	}()
	decisions := make(chan jail.Decision, decisionBuffer)
	banDone := make(chan struct{})
	go func() {
		defer close(banDone)
		d.banLoop(mgrCtx, decisions)
	}()
	pipeDone := make(chan struct{})
	go func() {
		defer close(pipeDone)
		d.pipeline(lines, srcDone, decisions)
	}()

	d.log.Info("bansd started", "version", version, "config", cfgName(d.path), "socket", cfg.Daemon.Socket, "state", cfg.Daemon.State)
	d.event(store.Event{Kind: store.EventStart, Detail: "version " + version, UID: store.NoUID})
	// Alarms the engine held back (once a minute per address) are
	// delivered periodically, so status and the log catch up.
	alarmTick := time.NewTicker(time.Minute)
	defer alarmTick.Stop()
	// The kernel record is checked and repaired as often as the ban table.
	attrTick := time.NewTicker(cfg.Firewall.Reconcile)
	defer attrTick.Stop()
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			d.reload(store.NoUID)
		case <-alarmTick.C:
			d.engine.FlushAlarms()
		case <-attrTick.C:
			d.attr.check(ctx)
		case err := <-mgrDone:
			// The manager only stops on its own when the firewall is unusable.
			stopSrc()
			<-pipeDone
			srv.Shutdown(context.Background())
			return fmt.Errorf("ban manager: %w", err)
		}
	}

	d.log.Info("stopping: flushing pending bans and cursors; kernel bans stay in place")
	stopSrc()
	<-pipeDone
	select {
	case <-banDone:
	case <-time.After(shutdownGrace):
		d.log.Error("pending bans not flushed in time", "grace", shutdownGrace)
	}
	if err := d.docker.FlushCursors(); err != nil {
		d.log.Error("flush cursors", "err", err)
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(shCtx)
	cancel()
	stopMgr()
	if err := <-mgrDone; err != nil && !errors.Is(err, context.Canceled) {
		d.log.Error("ban manager", "err", err)
	}
	d.event(store.Event{Kind: store.EventStop, UID: store.NoUID})
	d.log.Info("stopped")
	return nil
}

func cfgName(p string) string {
	if p == "" {
		return "(embedded default)"
	}
	return p
}

// pipeline is the one goroutine that feeds the engine. A line's decisions
// go out after the cursors are saved and before the line is marked done,
// so the saved cursor and the ban agree.
func (d *daemon) pipeline(lines <-chan sources.Line, srcDone <-chan struct{}, decisions chan<- jail.Decision) {
	defer close(decisions)
	handle := func(l sources.Line) {
		d.metrics.lines.WithLabelValues(l.Service).Inc()
		d.engine.Process(l)
		d.pendingMu.Lock()
		out := d.pending
		d.pending = nil
		d.pendingMu.Unlock()
		if len(out) > 0 {
			if err := d.docker.FlushCursors(); err != nil {
				d.log.Error("flush cursors", "err", err)
			}
			for _, dec := range out {
				decisions <- dec
			}
		}
		d.docker.Done(l)
	}
	for {
		select {
		case l := <-lines:
			handle(l)
		case <-srcDone:
			// The source stopped: what it already delivered is still read.
			for {
				select {
				case l := <-lines:
					handle(l)
				default:
					return
				}
			}
		}
	}
}

// banLoop hands decisions to the ban manager, coalescing those that
// arrive together into one BanMany.
func (d *daemon) banLoop(ctx context.Context, decisions <-chan jail.Decision) {
	batch := make([]jail.Decision, 0, 64)
	for dec := range decisions {
		batch = append(batch[:0], dec)
	drain:
		for len(batch) < cap(batch) {
			select {
			case more, ok := <-decisions:
				if !ok {
					break drain
				}
				batch = append(batch, more)
			default:
				break drain
			}
		}
		reqs := make([]ban.Request, len(batch))
		for i, dec := range batch {
			reqs[i] = requestFrom(dec)
		}
		n, err := d.mgr.BanMany(ctx, reqs)
		if err != nil {
			d.log.Error("ban", "err", err, "decisions", len(batch), "banned", n)
		}
		now := time.Now()
		for _, dec := range batch {
			if !dec.Time.IsZero() {
				d.metrics.banLatency.Observe(now.Sub(dec.Time).Seconds())
			}
			d.log.Info("ban", "target", dec.Target, "jail", dec.Jail, "reason", dec.Reason, "events", dec.Events)
		}
	}
}

// onDecision runs inside engine.Process.
func (d *daemon) onDecision(dec jail.Decision) {
	d.metrics.decisions.WithLabelValues(dec.Jail).Inc()
	d.pendingMu.Lock()
	d.pending = append(d.pending, dec)
	d.pendingMu.Unlock()
}

// onAlarm runs inside engine.Process.
func (d *daemon) onAlarm(a jail.Alarm) {
	d.metrics.alarms.WithLabelValues(a.Kind).Inc()
	d.alarms.add(a, time.Now())
	d.event(alarmEvent(a))
}

func (d *daemon) config() *configs.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// reload re-reads the config file. A bad file is refused and the running
// config stays; jails whose settings did not change keep their counts.
func (d *daemon) reload(uid int) control.ReloadResult {
	res := control.ReloadResult{Time: time.Now()}
	cfg, err := configs.Load(d.path)
	if err == nil {
		err = d.engine.Reload(cfg)
	}
	d.mu.Lock()
	if err != nil {
		res.Error = err.Error()
		d.log.Error("reload refused, the previous config keeps running", "err", err)
	} else {
		res.OK = true
		old := d.cfg
		d.cfg, d.loadedAt = cfg, res.Time
		d.level.Set(parseLevel(cfg.Daemon.LogLevel))
		d.log.Info("config reloaded", "config", cfgName(d.path))
		if restartNeeded(old, cfg) {
			d.log.Warn("daemon, docker and firewall settings changed: they take effect at the next restart")
		}
	}
	d.lastReload = &res
	d.mu.Unlock()
	if res.OK {
		d.event(store.Event{Kind: store.EventReload, Detail: cfgName(d.path), UID: uid})
	} else {
		d.event(store.Event{Kind: store.EventRefused, Detail: res.Error, UID: uid})
	}
	if res.OK {
		d.setProtected()
	}
	return res
}

func restartNeeded(a, b *configs.Config) bool {
	return a.Daemon.Socket != b.Daemon.Socket || a.Daemon.SocketGroup != b.Daemon.SocketGroup ||
		a.Daemon.State != b.Daemon.State || a.Daemon.MetricsListen != b.Daemon.MetricsListen ||
		a.Docker.Host != b.Docker.Host || a.Docker.Project != b.Docker.Project ||
		fmt.Sprint(a.Docker.Services) != fmt.Sprint(b.Docker.Services) || a.Firewall != b.Firewall || a.Ban != b.Ban
}

// onMailu receives what the Docker source learnt about the Mailu stack.
func (d *daemon) onMailu(info docker.MailuInfo) {
	d.mu.Lock()
	d.live = protectedFromMailu(info)
	attr := d.attr
	d.mu.Unlock()
	d.setProtected()
	if attr != nil {
		attr.mailu(context.Background(), info.Ports, info.Env)
	}
}

// setProtected gives the engine the never-ban inputs: the host's own
// addresses (read now) and what Docker told us.
func (d *daemon) setProtected() {
	d.mu.Lock()
	p := d.live
	d.mu.Unlock()
	p.HostAddrs = hostAddrs()
	d.engine.SetProtected(p)
}

func hostAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// timedFirewall times each kernel transaction for bansd_nft_flush_seconds.
type timedFirewall struct {
	ban.Firewall
	hist interface{ Observe(float64) }
}

func (t *timedFirewall) Add(elems []ban.Element) error {
	start := time.Now()
	err := t.Firewall.Add(elems)
	t.hist.Observe(time.Since(start).Seconds())
	return err
}

func (t *timedFirewall) Remove(targets []netip.Prefix) error {
	start := time.Now()
	err := t.Firewall.Remove(targets)
	t.hist.Observe(time.Since(start).Seconds())
	return err
}
