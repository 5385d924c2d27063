package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/notify"
	"github.com/bansd/bansd/store"
)

// notifyLink owns the running notifier and replaces it when a reload
// changes [notify]. A notifier runs even with no channel, so the bans of
// the current digest are counted before the first channel is added.
type notifyLink struct {
	log   *slog.Logger
	spool notify.Spool
	host  string

	// cur is read on every history event (the store's writers), so the
	// hot path takes no lock; mu serialises apply and close.
	cur    atomic.Pointer[notify.Notifier]
	mu     sync.Mutex
	cfg    configs.Notify
	stop   context.CancelFunc
	done   chan struct{}
	closed bool
}

func newNotifyLink(log *slog.Logger, spool notify.Spool, host string) *notifyLink {
	return &notifyLink{log: log, spool: spool, host: host}
}

// apply starts a notifier for cfg, or replaces the running one when cfg
// differs. The old one stops first (it spools what it was handed), then
// the new one takes over its digest and counters; the spool is the store's,
// so undelivered messages of a channel that stays are sent by the new one.
func (l *notifyLink) apply(cfg configs.Notify) (changed bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.cur.Load()
	if l.closed || old != nil && reflect.DeepEqual(cfg, l.cfg) {
		return false, nil
	}
	n, err := notify.New(cfg, l.spool, notify.Options{Host: l.host, Logger: l.log})
	if err != nil {
		return false, fmt.Errorf("notify: %w", err)
	}
	// Events from here on queue in n until it runs.
	l.cur.Store(n)
	if old != nil {
		l.stop()
		<-l.done
		n.TakeOver(old)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	l.cfg, l.stop, l.done = cfg, cancel, done
	return true, nil
}

// close stops the notifier after it has spooled what it was handed.
func (l *notifyLink) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.stop == nil {
		l.closed = true
		return
	}
	l.closed = true
	l.stop()
	<-l.done
}

// events hands the history's events on; it never blocks (Notify drops to a
// counter when the queue is full), so a ban is never slowed by delivery.
func (l *notifyLink) events(evs []store.Event) {
	n := l.cur.Load()
	if n == nil {
		return
	}
	for _, e := range evs {
		if ne, ok := notifyEvent(e); ok {
			n.Notify(ne)
		}
	}
}

// notifyEvent is what a history event tells a person. Expiries are the
// bans' planned ends: the digest's ban count says enough.
func notifyEvent(e store.Event) (notify.Event, bool) {
	ne := notify.Event{Time: e.Time, Target: e.Target, Jail: e.Jail, Duration: e.Duration, Level: e.Level, Reason: e.Reason, Text: e.Detail}
	switch e.Kind {
	case store.EventBan, store.EventRefresh, store.EventManual, store.EventImport:
		ne.Kind = notify.KindBan
		if e.Kind != store.EventBan {
			ne.Reason = strings.TrimSpace(e.Kind + ": " + e.Reason)
		}
		if e.UID != store.NoUID {
			ne.Reason += fmt.Sprintf(" (uid %d)", e.UID)
		}
	case store.EventUnban:
		ne.Kind = notify.KindUnban
		if e.UID != store.NoUID {
			ne.Reason = fmt.Sprintf("by uid %d", e.UID)
		}
	case store.EventAlarm:
		ne.Kind, ne.Text = notify.KindAlarm, alarmText(e)
	case store.EventCleared:
		ne.Kind = notify.KindAlarmCleared
	case store.EventStart, store.EventStop, store.EventReload, store.EventRefused:
		ne.Kind, ne.Reason = notify.KindDaemon, e.Kind
		if e.UID != store.NoUID {
			ne.Reason += fmt.Sprintf(" (uid %d)", e.UID)
		}
	default:
		return notify.Event{}, false
	}
	return ne, true
}

// alarmText is an alarm's message body: what was seen, what to do (the
// same words as status), and the line that showed it.
func alarmText(e store.Event) string {
	var b strings.Builder
	if e.Detail != "" {
		b.WriteString(e.Detail + "\n\n")
	}
	fix := alarmFix[e.Reason]
	if fix == "" {
		fix = defaultFix
	}
	b.WriteString("What to do: " + fix + "\n")
	for _, l := range e.Evidence {
		b.WriteString("\nLog line: " + l + "\n")
	}
	return b.String()
}

// status is what bansctl status shows; nil when no channel is configured.
func (l *notifyLink) status() *control.NotifyStatus {
	n := l.cur.Load()
	if n == nil {
		return nil
	}
	st := n.Status()
	if len(st.Channels) == 0 {
		return nil
	}
	out := &control.NotifyStatus{Lost: st.Lost, SpoolErrors: st.SpoolErrors}
	for _, c := range st.Channels {
		out.Channels = append(out.Channels, control.NotifyChannel{
			Name: c.Name, Kind: c.Type, Target: c.Target, Events: c.Events, Sent: c.Sent, Failures: c.Failures,
			Pending: c.Pending, Dropped: c.Dropped, Folded: c.Folded, LastSuccess: c.LastSuccess, LastAnswer: c.LastAnswer,
			LastError: c.LastError, LastErrorTime: c.LastErrorTime,
		})
	}
	return out
}

// test sends a test message on one channel, or on each when name is "".
func (l *notifyLink) test(ctx context.Context, name string) ([]control.NotifyTestResult, error) {
	n := l.cur.Load()
	if n == nil || len(n.Channels()) == 0 {
		return nil, &control.HTTPError{Code: http.StatusNotFound, Message: "no notify channel is configured ([notify.email.NAME] or [notify.webhook.NAME])"}
	}
	names := n.Channels()
	if name != "" {
		names = []string{name}
	}
	out := make([]control.NotifyTestResult, 0, len(names))
	for _, ch := range names {
		answer, err := n.Test(ctx, ch)
		if errors.Is(err, notify.ErrNoChannel) {
			return nil, &control.HTTPError{Code: http.StatusNotFound, Message: err.Error()}
		}
		r := control.NotifyTestResult{Channel: ch, OK: err == nil, Answer: answer}
		if err != nil {
			r.Error = err.Error()
		}
		l.log.Info("notify: test message", "channel", ch, "ok", r.OK, "answer", answer, "err", r.Error)
		out = append(out, r)
	}
	return out, nil
}

func (d *daemon) NotifyTest(ctx context.Context, channel string) ([]control.NotifyTestResult, error) {
	return d.notify.test(ctx, channel)
}

var (
	notifySent = prometheus.NewDesc("bansd_notify_sent_total",
		"Messages delivered, by channel.", []string{"channel"}, nil)
	notifyFailures = prometheus.NewDesc("bansd_notify_failures_total",
		"Failed delivery attempts, by channel.", []string{"channel"}, nil)
	notifyPending = prometheus.NewDesc("bansd_notify_pending",
		"Messages waiting in the spool, by channel.", []string{"channel"}, nil)
	notifyDropped = prometheus.NewDesc("bansd_notify_dropped_total",
		"Messages given up (older than notify.max_spool_age), by channel.", []string{"channel"}, nil)
	notifyLost = prometheus.NewDesc("bansd_notify_lost_total",
		"Events dropped at the notifier's full hand-off queue.", nil, nil)
)

// notifyCollector reads the notifier's counters at scrape time.
type notifyCollector struct{ l *notifyLink }

func (notifyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{notifySent, notifyFailures, notifyPending, notifyDropped, notifyLost} {
		ch <- d
	}
}

func (c notifyCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.l.cur.Load()
	if n == nil {
		return
	}
	st := n.Status()
	for _, s := range st.Channels {
		ch <- prometheus.MustNewConstMetric(notifySent, prometheus.CounterValue, float64(s.Sent), s.Name)
		ch <- prometheus.MustNewConstMetric(notifyFailures, prometheus.CounterValue, float64(s.Failures), s.Name)
		ch <- prometheus.MustNewConstMetric(notifyPending, prometheus.GaugeValue, float64(s.Pending), s.Name)
		ch <- prometheus.MustNewConstMetric(notifyDropped, prometheus.CounterValue, float64(s.Dropped), s.Name)
	}
	ch <- prometheus.MustNewConstMetric(notifyLost, prometheus.CounterValue, float64(st.Lost))
}

// Alarms with a natural end: raised once while the cause holds, cleared
// (in the history and to the channels) when it goes away.
const (
	alarmFirewallLost     = "firewall-table-lost"
	alarmDockerDown       = "docker-unreachable"
	dockerUnreachableLong = 5 * time.Minute
	// gatewayQuiet: a Docker gateway not seen as a client for this long
	// (log time) clears its gateway-client alarm.
	gatewayQuiet = time.Hour
)

// raised tracks which of those alarms hold now.
type raised struct {
	mu sync.Mutex
	on map[string]bool
}

// set reports whether the alarm changed state.
func (r *raised) set(kind string, on bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on == nil {
		r.on = map[string]bool{}
	}
	if r.on[kind] == on {
		return false
	}
	r.on[kind] = on
	return true
}

func (d *daemon) clearAlarm(kind, detail string) {
	d.log.Info("alarm cleared: "+kind, "detail", detail)
	d.event(store.Event{Kind: store.EventCleared, Reason: kind, Detail: detail, UID: store.NoUID})
}

// onReconcile turns the ban manager's repairs into an alarm: someone (a
// firewall script, "nft flush ruleset") removed bansd's table or its bans.
// A repair that worked clears it at once; one that failed holds it until a
// reconcile succeeds.
func (d *daemon) onReconcile(repaired []string, err error) {
	if len(repaired) > 0 {
		d.raised.set(alarmFirewallLost, true)
		d.onAlarm(alarmOf(alarmFirewallLost, "bansd's nftables table was damaged: "+strings.Join(repaired, "; ")))
	} else if err != nil && d.raised.set(alarmFirewallLost, true) {
		d.onAlarm(alarmOf(alarmFirewallLost, "the firewall cannot be reconciled: "+err.Error()))
	}
	if err == nil && d.raised.set(alarmFirewallLost, false) {
		detail := "the table is whole again"
		if len(repaired) > 0 {
			detail = "repaired: " + strings.Join(repaired, "; ")
		}
		d.clearAlarm(alarmFirewallLost, detail)
	}
}

// clearQuietGateways clears the gateway-client alarms whose gateway has
// not shown up as a client for gatewayQuiet: Docker was fixed, or the
// relay shield keeps those clients out.
func (d *daemon) clearQuietGateways(now time.Time) {
	for _, a := range d.alarms.quiet(jail.AlarmGatewayClient, now.Add(-gatewayQuiet)) {
		d.clearAlarm(jail.AlarmGatewayClient, fmt.Sprintf("no client seen as the Docker gateway %s since %s (%d times before)", a.Addr, a.Last.UTC().Format(time.RFC3339), a.Count))
	}
}

// checkDocker raises an alarm when dockerd has not answered for long (no
// log lines, so no bans) and clears it when it answers again.
func (d *daemon) checkDocker(now time.Time) {
	ds, _ := d.sourceStatus()
	down := strings.HasPrefix(ds.State, "waiting for dockerd") || strings.HasPrefix(ds.State, "reconnecting")
	why := ds.Error
	if !down {
		why = ds.State
	}
	d.dockerAlarm(now, down, fmt.Sprintf("dockerd at %s", d.docker.Host()), why)
}

func (d *daemon) dockerAlarm(now time.Time, down bool, what, why string) {
	d.mu.Lock()
	if !down {
		d.dockerDownSince = time.Time{}
	} else if d.dockerDownSince.IsZero() {
		d.dockerDownSince = now
	}
	since := d.dockerDownSince
	d.mu.Unlock()
	switch {
	case down && now.Sub(since) >= dockerUnreachableLong && d.raised.set(alarmDockerDown, true):
		d.onAlarm(alarmOf(alarmDockerDown, fmt.Sprintf("%s has not answered since %s: %s", what, since.UTC().Format(time.RFC3339), why)))
	case !down && d.raised.set(alarmDockerDown, false):
		d.clearAlarm(alarmDockerDown, what+" answers again: "+why)
	}
}
