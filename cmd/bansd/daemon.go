package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bansd/bansd/sources/docker"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/cmd/internal/wire"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/shield"
	"github.com/bansd/bansd/sources"
	"github.com/bansd/bansd/store"
)

const (
	// lineBuffer is the channel between the Docker source and the engine,
	// in batches (of at most 256 lines).
	lineBuffer = 64
	// decisionBuffer bounds processed batches (and their decisions)
	// waiting for the ban manager; the pipeline blocks beyond it rather
	// than grow memory.
	decisionBuffer = 64
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
	// procsAfterStart, when not 0, is GOMAXPROCS once the start's restore
	// is in the kernel (main.go says why).
	procsAfterStart int

	// reloadMu lets one reload run at a time (SIGHUP and the API can
	// ask together): each must diff against the config the last one left.
	reloadMu sync.Mutex

	mu         sync.Mutex // guards cfg, loadedAt, lastReload, live
	cfg        *configs.Config
	loadedAt   time.Time
	lastReload *control.ReloadResult
	live       jail.Protected

	engine *jail.Engine

	db     *store.DB
	mgr    *ban.Manager
	docker *docker.Docker
	// attr keeps the engine on the kernel's word about who connected.
	attr    *attribution
	metrics *metrics
	alarms  *alarmBook
	// attempts feeds the store's hourly attempt counts (stats.go).
	attempts attemptBook
	// crowdsec is the LAPI link (crowdsec.go); nil when off.
	crowdsec *crowdsecLink
	// blocklists are the [blocklists.NAME] (blocklist.go); nil until run
	// starts them, while the metrics listener already serves.
	blocklists atomic.Pointer[blocklists]
	// notify tells a person (notify.go); raised holds the alarms that
	// clear themselves, dockerDownSince (under mu) when dockerd stopped
	// answering.
	notify          *notifyLink
	raised          raised
	dockerDownSince time.Time
	// shield is the relay shield (shield.go); nil until run starts it.
	shield *relayShield
	// allow is the run-time allow-list (allow.go).
	allow allowBook

	// mailPorts hands a "mail"-scoped firewall the ports front publishes.
	mailPorts func([]uint16)

	// commitDelay is a fault hook (BANSD_FAULT_COMMIT_DELAY, a duration)
	// for the crash test: it holds each batch of decisions before the
	// store commits it, widening the window in which a kill must not lose
	// the ban. Zero in service.
	commitDelay time.Duration
	// memProfile, when set, is where the heap profile goes at SIGTERM
	// (BANSD_MEMPROFILE, main.go).
	memProfile string
}

func newDaemon(cfg *configs.Config, path string, log *slog.Logger, level *slog.LevelVar) (*daemon, error) {
	now := time.Now()
	d := &daemon{log: log, level: level, path: path, started: now, cfg: cfg, loadedAt: now}
	d.alarms = newAlarmBook(log)
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	d.notify = newNotifyLink(log.With("part", "notify"), nil, host)
	d.metrics = newMetrics(d)
	d.metrics.reg.MustRegister(notifyCollector{d.notify})
	d.metrics.reg.MustRegister(blocklistCollector{d})
	// Series exist from the start (at 0), so dashboards and alerts see them.
	for _, svc := range cfg.Docker.Services {
		d.metrics.lines.WithLabelValues(svc)
	}
	for _, name := range cfg.JailNames() {
		d.metrics.decisions.WithLabelValues(name)
	}
	for _, k := range []string{jail.AlarmGatewayClient, jail.AlarmAllowedClient, alarmRelayShield, alarmRelayOpen} {
		d.metrics.alarms.WithLabelValues(k)
	}
	if v := os.Getenv("BANSD_FAULT_COMMIT_DELAY"); v != "" {
		delay, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("BANSD_FAULT_COMMIT_DELAY: %w", err)
		}
		d.commitDelay = delay
		log.Warn("fault hook: decisions are held before their commit", "delay", delay)
	}
	d.engine, err = jail.NewEngine(cfg, jail.Options{Logger: log.With("part", "jail")})
	if err != nil {
		return nil, fmt.Errorf("jail engine: %w", err)
	}
	return d, nil
}

// run runs until ctx ends. Start-up order: state, firewall, API, then
// logs, so that a ban decided from the first line has somewhere to go.
func (d *daemon) run(ctx context.Context, hup <-chan os.Signal) error {
	cfg := d.config()
	db, closeState, err := d.openState(cfg)
	if err != nil {
		return err
	}
	defer closeState()

	if err := d.openParts(ctx, cfg, db); err != nil {
		return err
	}
	defer d.attr.close()
	stopAllow, err := d.startAllow(ctx)
	if err != nil {
		return err
	}
	defer stopAllow()

	srv, ln, closeMetrics, err := d.listen(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeMetrics()

	// The manager outlives the pipeline so that pending bans are flushed.
	mgrCtx, stopMgr := context.WithCancel(context.Background())
	defer stopMgr()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- d.mgr.Run(mgrCtx) }()
	go func() {
		// The start's restore reads every ban and builds its kernel
		// batches: garbage of a size the daemon never needs again, which
		// the runtime would hand back to the OS only minutes later. Idle
		// bansd is judged by its resident set, so it goes back at once,
		// and so do the store's pages the restore read (they stay in
		// the page cache).
		select {
		case <-d.mgr.Ready():
			if err := d.db.ReleasePages(); err != nil {
				d.log.Warn("releasing the store's pages", "err", err)
			}
			debug.FreeOSMemory()
			if d.procsAfterStart > 0 {
				runtime.GOMAXPROCS(d.procsAfterStart)
			}
		case <-mgrCtx.Done():
		}
	}()
	stopCrowdSec, err := d.startCrowdSec(mgrCtx, cfg, nil)
	if err != nil {
		return fmt.Errorf("crowdsec: %w", err)
	}
	defer stopCrowdSec()
	stopBlocklists, err := d.startBlocklists(mgrCtx, cfg, nil)
	if err != nil {
		return err
	}
	defer stopBlocklists()

	go func() {
		if err := srv.Serve(ln); err != nil {
			d.log.Error("control socket", "err", err)
		}
	}()

	srcCtx, stopSrc := context.WithCancel(ctx)
	defer stopSrc()
	pipeDone, banDone := d.startPipeline(srcCtx, mgrCtx)

	d.log.Info("bansd started", "version", version, "config", cfgName(d.path), "socket", cfg.Daemon.Socket, "state", cfg.Daemon.State)
	d.event(store.Event{Kind: store.EventStart, Detail: "version " + version, UID: store.NoUID})
	if err := d.serve(ctx, hup, cfg, mgrDone); err != nil {
		stopSrc()
		<-pipeDone
		srv.Shutdown(context.Background())
		return err
	}

	if d.memProfile != "" {
		writeHeapProfile(d.memProfile, d.log)
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
	d.flushAttempts(time.Now())
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

// openState opens the store and the notifier that spools in it; close
// stops the notifier (after the stop event is handed over) and then the
// store.
func (d *daemon) openState(cfg *configs.Config) (db *store.DB, close func(), err error) {
	if err := os.MkdirAll(filepath.Dir(cfg.Daemon.State), 0o700); err != nil {
		return nil, nil, fmt.Errorf("state directory: %w", err)
	}
	if db, err = store.Open(cfg.Daemon.State); err != nil {
		return nil, nil, fmt.Errorf("open state: %w", err)
	}
	d.db = db
	db.SetEventLimits(store.EventLimits{MaxEvents: cfg.History.MaxEvents, MaxAge: cfg.History.MaxAge})
	closeDB := func() {
		if err := db.Close(); err != nil {
			d.log.Error("close state", "err", err)
		}
	}
	// Every history event also reaches the notifier.
	d.notify.spool = db
	db.SetEventHook(d.notify.events)
	if _, err := d.notify.apply(cfg.Notify); err != nil {
		closeDB()
		return nil, nil, err
	}
	return db, func() { d.notify.close(); closeDB() }, nil
}

// listen takes the control socket and the metrics listener (serving
// metrics at once) before anything starts, so a failure leaves no
// goroutine, manager or server behind. closeMetrics stops the metrics.
func (d *daemon) listen(ctx context.Context, cfg *configs.Config) (srv *control.Server, ln net.Listener, closeMetrics func(), err error) {
	metricsHandler := promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{})
	if srv, err = control.NewServer(d, metricsHandler, cfg.Daemon.SocketGroup, d.log); err != nil {
		return nil, nil, nil, err
	}
	if ln, err = srv.Listen(cfg.Daemon.Socket); err != nil {
		return nil, nil, nil, err
	}
	closeMetrics = func() {}
	if addr := cfg.Daemon.MetricsListen; addr != "" {
		msrv, ml, err := control.ServeMetrics(ctx, addr, metricsHandler)
		if err != nil {
			ln.Close()
			return nil, nil, nil, err
		}
		go msrv.Serve(ml)
		closeMetrics = func() { msrv.Close() }
	}
	return srv, ln, closeMetrics, nil
}

// startPipeline runs the Docker source (until srcCtx ends), the engine
// and the ban loop (on mgrCtx, which outlives the source so that pending
// bans are flushed). pipeDone closes when the engine has taken every
// line, banDone when the last ban is through.
func (d *daemon) startPipeline(srcCtx, mgrCtx context.Context) (pipeDone, banDone chan struct{}) {
	lines := make(chan []sources.Line, lineBuffer)
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		if err := d.docker.Run(srcCtx, lines); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("docker source stopped", "err", err)
		}
	}()
	done := make(chan processed, decisionBuffer)
	banDone = make(chan struct{})
	go func() {
		defer close(banDone)
		d.banLoop(mgrCtx, done)
	}()
	pipeDone = make(chan struct{})
	go func() {
		defer close(pipeDone)
		d.pipeline(lines, srcDone, done)
	}()
	return pipeDone, banDone
}

// serve handles signals and the periodic work until ctx ends (nil) or
// the ban manager stops on its own, which it only does when the firewall
// is unusable (its error).
func (d *daemon) serve(ctx context.Context, hup <-chan os.Signal, cfg *configs.Config, mgrDone <-chan error) error {
	// Alarms the engine held back (once a minute per address) are
	// delivered periodically, so status and the log catch up.
	alarmTick := time.NewTicker(time.Minute)
	defer alarmTick.Stop()
	// The kernel record is checked and repaired as often as the ban table.
	attrTick := time.NewTicker(cfg.Firewall.Reconcile)
	defer attrTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			d.reload(store.NoUID)
		case now := <-alarmTick.C:
			for _, a := range d.engine.FlushAlarms() {
				d.onAlarm(a)
			}
			d.flushAttempts(now)
			d.checkDocker(now)
			d.clearQuietGateways(now)
		case <-attrTick.C:
			d.attr.check(ctx)
			// Facts discovery does not hear of (the host's addresses)
			// are read again, and `nft flush ruleset` repaired.
			d.shield.update(ctx)
		case err := <-mgrDone:
			return fmt.Errorf("ban manager: %w", err)
		}
	}
}

// openParts makes the enforcement and the log source: the nftables
// sets and the ban manager, the relay shield, the kernel record and the
// Docker source. Nothing runs yet.
func (d *daemon) openParts(ctx context.Context, cfg *configs.Config, db *store.DB) error {
	nft, err := ban.NewNFT(cfg.Firewall.Table, cfg.Firewall.Priority, ban.WithScope(cfg.Firewall.Scope, cfg.Firewall.ScopePorts))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	fw := &timedFirewall{Firewall: nft, hist: d.metrics.nftFlush}
	d.mailPorts = scopeHook(nft, d.log.With("part", "ban"))
	banOpt := banOptions(cfg, fw, db, d.engine.NeverBan, d.log.With("part", "ban"))
	banOpt.OnReconcile = d.onReconcile
	d.mgr, err = ban.NewManager(banOpt)
	if err != nil {
		return fmt.Errorf("ban manager: %w", err)
	}
	sh, err := shield.Open(shield.Options{Table: cfg.Firewall.Table})
	if err != nil {
		return fmt.Errorf("relay shield: %w", err)
	}
	// Before the Docker source: its first discovery decides the shield.
	d.shield = newRelayShield(sh, cfg.Firewall.RelayShield, d.log.With("part", "shield"), d.onAlarm, d.event, hostAddrs, ipv6Listeners)
	d.attr = startAttribution(ctx, cfg, d.engine, d.log.With("part", "attribution"), 0)
	d.docker, err = docker.NewDocker(docker.DockerOptions{
		Host: cfg.Docker.Host, Project: cfg.Docker.Project, Services: cfg.Docker.Services,
		MaxLine: cfg.Docker.MaxLine, Cursors: cursorStore{db}, Logger: d.log.With("part", "docker"), OnMailu: d.onMailu,
		Warmup: min(d.engine.Lookback(), cfg.Docker.WarmupMaxSpan), WarmupMaxLines: cfg.Docker.WarmupMaxLines,
	})
	if err != nil {
		d.attr.close()
		return fmt.Errorf("docker source: %w", err)
	}
	d.setProtected()
	return nil
}

func cfgName(p string) string {
	if p == "" {
		return "(embedded default)"
	}
	return p
}

// processed is one batch of lines the engine has seen and the decisions
// they caused.
type processed struct {
	lines []sources.Line
	decs  []jail.Decision
}

// pipeline is the one goroutine that feeds the engine. Every line goes on
// to banLoop, which marks it done only after the bans it caused are in the
// store: the source's cursor, saved every second, never passes a line
// whose ban is still queued.
func (d *daemon) pipeline(lines <-chan []sources.Line, srcDone <-chan struct{}, out chan<- processed) {
	defer close(out)
	handle := func(batch []sources.Line) {
		var decs []jail.Decision
		live := 0
		for _, l := range batch {
			if l.Warm {
				// Processed before the restart: it only rebuilds the windows.
				d.engine.Warm(l)
				continue
			}
			live++
			res := d.engine.Process(l)
			for _, a := range res.Alarms {
				d.onAlarm(a)
			}
			for _, dec := range res.Decisions {
				d.metrics.decisions.WithLabelValues(dec.Jail).Inc()
			}
			decs = append(decs, res.Decisions...)
		}
		if live > 0 {
			// A batch is one service's.
			d.metrics.lines.WithLabelValues(batch[0].Service).Add(float64(live))
		}
		out <- processed{lines: batch, decs: decs}
	}
	for {
		select {
		case b := <-lines:
			handle(b)
		case <-srcDone:
			// The source stopped: what it already delivered is still read.
			for {
				select {
				case b := <-lines:
					handle(b)
				default:
					return
				}
			}
		}
	}
}

// banLoop hands decisions to the ban manager, coalescing the batches that
// arrive together into one BanMany, and then marks those batches done, in
// the order they came.
func (d *daemon) banLoop(ctx context.Context, in <-chan processed) {
	batch := make([]processed, 0, 64)
	var reqs []ban.Request
	var decs []jail.Decision
	for p := range in {
		batch = append(batch[:0], p)
	drain:
		for len(batch) < cap(batch) {
			select {
			case more, ok := <-in:
				if !ok {
					break drain
				}
				batch = append(batch, more)
			default:
				break drain
			}
		}
		reqs, decs = reqs[:0], decs[:0]
		for _, p := range batch {
			for _, dec := range p.decs {
				reqs = append(reqs, requestFrom(dec))
				decs = append(decs, dec)
			}
		}
		if len(reqs) > 0 {
			d.ban(ctx, reqs, decs)
		}
		for _, p := range batch {
			d.docker.Done(p.lines)
		}
	}
}

// ban commits one batch of decisions and logs each ban that happened.
func (d *daemon) ban(ctx context.Context, reqs []ban.Request, decs []jail.Decision) {
	if d.commitDelay > 0 {
		d.log.Warn("fault hook: holding decisions before their commit", "decisions", len(reqs), "delay", d.commitDelay)
		select {
		case <-time.After(d.commitDelay):
		case <-ctx.Done():
		}
	}
	errs, err := d.mgr.BanEach(ctx, reqs)
	if err != nil {
		d.log.Error("ban", "err", err, "decisions", len(reqs))
		return
	}
	now := time.Now()
	applied := decs[:0:0]
	for i, dec := range decs {
		if errs[i] != nil {
			d.log.Warn("ban not applied", "target", dec.Target, "jail", dec.Jail, "err", errs[i])
			continue
		}
		if !dec.Time.IsZero() {
			d.metrics.banLatency.Observe(now.Sub(dec.Time).Seconds())
		}
		d.log.Info("ban", "target", dec.Target, "jail", dec.Jail, "reason", dec.Reason, "events", dec.Events)
		applied = append(applied, dec)
	}
	// Shared only once committed: CrowdSec never learns a ban this host
	// did not make.
	d.shareDecisions(applied)
}

// onAlarm records an alarm the engine returned.
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
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	res := control.ReloadResult{Time: time.Now()}
	cfg, err := configs.Load(d.path)
	if err == nil {
		err = d.engine.Reload(cfg)
	}
	d.mu.Lock()
	var allowChange string
	var oldIgnore []netip.Prefix
	if err != nil {
		res.Error = err.Error()
		d.log.Error("reload refused, the previous config keeps running", "err", err)
	} else {
		res.OK = true
		old := d.cfg
		allowChange = prefixChange(old.Engine.IgnoreIP, cfg.Engine.IgnoreIP)
		oldIgnore = old.Engine.IgnoreIP
		d.cfg, d.loadedAt = cfg, res.Time
		d.level.Set(parseLevel(cfg.Daemon.LogLevel))
		d.log.Info("config reloaded", "config", cfgName(d.path))
		if restartNeeded(old, cfg) {
			d.log.Warn("daemon, docker, firewall, ban, crowdsec or blocklists settings changed: they take effect at the next restart")
		}
	}
	d.mu.Unlock()
	if res.OK {
		d.event(store.Event{Kind: store.EventReload, Detail: cfgName(d.path), UID: uid})
		if allowChange != "" {
			d.log.Info("allow-list changed", "ignoreip", allowChange, "uid", uid)
			d.event(store.Event{Kind: store.EventAllow, Reason: "ignoreip", Detail: allowChange, UID: uid})
			d.liftIgnored(oldIgnore, cfg.Engine.IgnoreIP, uid)
		}
	} else {
		d.event(store.Event{Kind: store.EventRefused, Detail: res.Error, UID: uid})
	}
	if res.OK {
		d.setProtected()
		if d.shield != nil {
			d.shield.setConfig(context.Background(), cfg.Firewall.RelayShield)
		}
		if changed, err := d.notify.apply(cfg.Notify); err != nil {
			d.log.Error("notify: the new channels did not start; the previous ones keep running", "err", err)
		} else if changed {
			d.log.Info("notify: channels restarted with the reloaded config", "channels", cfg.Notify.ChannelNames())
		}
	}
	// Published last: whoever sees this reload in status (bansctl, a
	// script after SIGHUP) must also find its history and its effects.
	d.mu.Lock()
	d.lastReload = &res
	d.mu.Unlock()
	return res
}

// prefixChange says what a new allow-list adds and removes, "" when the
// same.
func prefixChange(old, cur []netip.Prefix) string {
	var added, removed []string
	for _, p := range cur {
		if !slices.Contains(old, p) {
			added = append(added, p.String())
		}
	}
	for _, p := range old {
		if !slices.Contains(cur, p) {
			removed = append(removed, p.String())
		}
	}
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "added "+strings.Join(added, ", "))
	}
	if len(removed) > 0 {
		parts = append(parts, "removed "+strings.Join(removed, ", "))
	}
	return strings.Join(parts, "; ")
}

func restartNeeded(a, b *configs.Config) bool {
	// manual_bantime is read at each manual ban: a reload applies it.
	ab, bb := a.Ban, b.Ban
	ab.ManualBantime, bb.ManualBantime = 0, 0
	return a.Daemon.Socket != b.Daemon.Socket || a.Daemon.SocketGroup != b.Daemon.SocketGroup ||
		a.Daemon.State != b.Daemon.State || a.Daemon.MetricsListen != b.Daemon.MetricsListen ||
		a.Docker.Host != b.Docker.Host || a.Docker.Project != b.Docker.Project ||
		fmt.Sprint(a.Docker.Services) != fmt.Sprint(b.Docker.Services) || !a.Firewall.Equal(b.Firewall) || ab != bb ||
		!reflect.DeepEqual(a.CrowdSec, b.CrowdSec) || !reflect.DeepEqual(a.Blocklists, b.Blocklists)
}

// onMailu receives what the Docker source learnt about the Mailu stack.
func (d *daemon) onMailu(info docker.MailuInfo) {
	d.mu.Lock()
	d.live = wire.Protected(info)
	attr, mailPorts, sh := d.attr, d.mailPorts, d.shield
	d.mu.Unlock()
	if sh != nil {
		sh.mailu(context.Background(), info)
	}
	d.setProtected()
	if mailPorts != nil {
		mailPorts(info.Ports)
	}
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

func (t *timedFirewall) Swap(remove []netip.Prefix, add []ban.Element) error {
	start := time.Now()
	err := t.Firewall.Swap(remove, add)
	t.hist.Observe(time.Since(start).Seconds())
	return err
}
