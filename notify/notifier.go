package notify

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/store"
)

// Spool keeps undelivered messages across restarts; *store.DB is one.
type Spool interface {
	OutboxAdd(msgs []store.OutboxMessage) ([]store.OutboxMessage, error)
	Outbox(channel string) ([]store.OutboxMessage, error)
	OutboxRetry(id uint64, attempts int, next time.Time, lastErr string) error
	OutboxDelete(ids ...uint64) error
	OutboxDropBefore(t time.Time) (map[string]int, error)
}

// Options are the parts the daemon (or a test) supplies.
type Options struct {
	// Host names this machine in messages, EHLO and Message-IDs.
	Host   string
	Logger *slog.Logger
	// Dial opens SMTP connections (default net.Dialer).
	Dial DialFunc
	// TLSConfig for SMTP (default: system roots, ServerName = host).
	TLSConfig *tls.Config
	// Transport for webhooks (default http.DefaultTransport's clone).
	Transport http.RoundTripper
	// Queue bounds the hand-off (default 16384 events): events beyond it
	// are counted as lost, never waited for. Its memory follows what is
	// waiting, not the bound.
	Queue int
	// RetryMin and RetryMax bound the backoff (default 10s, 10m).
	RetryMin, RetryMax time.Duration
}

// sender is one kind of channel: SMTP or a webhook.
type sender interface {
	send(ctx context.Context, m Message) (answer string, err error)
	describe() string
}

// ChannelStatus is what `bansctl status` and metrics show of a channel.
type ChannelStatus struct {
	Name          string    `json:"name"`
	Type          string    `json:"type"`   // email or webhook
	Target        string    `json:"target"` // server, without secrets
	Events        []string  `json:"events"`
	Sent          uint64    `json:"sent"`
	Failures      uint64    `json:"failures"` // failed attempts
	Pending       int       `json:"pending"`  // in the spool
	Dropped       uint64    `json:"dropped"`  // too old, given up
	Folded        uint64    `json:"folded"`   // held back by the hourly limit
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastAnswer    string    `json:"last_answer,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// Status is the notifier's state.
type Status struct {
	Channels []ChannelStatus `json:"channels"`
	// Lost counts events dropped at a full hand-off queue.
	Lost uint64 `json:"lost"`
	// SpoolErrors counts messages that could not be written to the spool.
	SpoolErrors uint64 `json:"spool_errors"`
}

type channel struct {
	name   string
	typ    string
	s      sender
	events map[Kind]bool
	wake   chan struct{}

	// Owned by Run: the hourly limit. sentEach are the single ban and
	// unban messages among sent.
	sent, sentEach []time.Time
	folded         Folded

	mu sync.Mutex
	st ChannelStatus
}

func (c *channel) update(fn func(*ChannelStatus)) {
	c.mu.Lock()
	fn(&c.st)
	c.mu.Unlock()
}

// Notifier sends events to the configured channels.
type Notifier struct {
	cfg      configs.Notify
	spool    Spool
	opt      Options
	log      *slog.Logger
	in       *queue
	channels map[string]*channel
	names    []string
	digest   digestAcc

	lost, spoolErrors atomic.Uint64
}

// New builds a notifier; nothing is sent until Run.
func New(cfg configs.Notify, spool Spool, opt Options) (*Notifier, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Host == "" {
		opt.Host = "localhost"
	}
	if opt.Dial == nil {
		d := &net.Dialer{}
		opt.Dial = d.DialContext
	}
	if opt.Transport == nil {
		opt.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if opt.Queue <= 0 {
		opt.Queue = 16384
	}
	if opt.RetryMin <= 0 {
		opt.RetryMin = 10 * time.Second
	}
	if opt.RetryMax < opt.RetryMin {
		opt.RetryMax = max(10*time.Minute, opt.RetryMin)
	}
	if cfg.MaxPerHour <= 0 {
		cfg.MaxPerHour = 20
	}
	if cfg.Digest <= 0 {
		cfg.Digest = time.Hour
	}
	if cfg.MaxSpoolAge <= 0 {
		cfg.MaxSpoolAge = 48 * time.Hour
	}
	n := &Notifier{cfg: cfg, spool: spool, opt: opt, log: opt.Logger, in: newQueue(opt.Queue), channels: map[string]*channel{}}
	add := func(name, typ string, s sender, events []string) {
		c := &channel{name: name, typ: typ, s: s, events: map[Kind]bool{}, wake: make(chan struct{}, 1)}
		for _, e := range events {
			c.events[Kind(e)] = true
		}
		c.st = ChannelStatus{Name: name, Type: typ, Target: s.describe(), Events: append([]string(nil), events...)}
		n.channels[name] = c
		n.names = append(n.names, name)
	}
	for name, e := range cfg.Email {
		add(name, "email", &emailSender{cfg: e, host: opt.Host, dial: opt.Dial, tlsConf: opt.TLSConfig}, e.Events)
	}
	for name, w := range cfg.Webhook {
		s, err := newWebhookSender(w, opt.Transport)
		if err != nil {
			return nil, err
		}
		add(name, "webhook", s, w.Events)
	}
	sort.Strings(n.names)
	n.digest.reset(time.Now())
	return n, nil
}

// Notify hands an event over without ever blocking: when the queue is
// full the event is counted as lost (the next digest says how many).
func (n *Notifier) Notify(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if !n.in.put(e) {
		n.lost.Add(1)
	}
}

// Status returns every channel's state, sorted by name.
func (n *Notifier) Status() Status {
	st := Status{Lost: n.lost.Load(), SpoolErrors: n.spoolErrors.Load()}
	for _, name := range n.names {
		c := n.channels[name]
		c.mu.Lock()
		cs := c.st
		cs.Events = append([]string(nil), c.st.Events...)
		c.mu.Unlock()
		st.Channels = append(st.Channels, cs)
	}
	return st
}

// ErrNoChannel means Test was given a name that is not configured.
var ErrNoChannel = errors.New("no such notify channel")

// Test sends a test message on a channel now, bypassing spool and limit,
// and returns the server's answer.
func (n *Notifier) Test(ctx context.Context, name string) (string, error) {
	c, ok := n.channels[name]
	if !ok {
		return "", fmt.Errorf("%w %q (configured: %v)", ErrNoChannel, name, n.names)
	}
	m := eventMessage(n.opt.Host, Event{Kind: KindTest, Time: time.Now()})
	answer, err := c.s.send(ctx, m)
	n.record(c, answer, err)
	return answer, err
}

// TakeOver carries a stopped notifier's state into n, which must not be
// running yet: the bans counted for the next digest, the lost count,
// events still queued, and the counters of channels n keeps (same name
// and type), so a reload with a changed [notify] loses neither a digest
// nor the metrics' counts. The spool needs nothing: it is the store's.
func (n *Notifier) TakeOver(old *Notifier) {
	n.digest = old.digest
	n.lost.Add(old.lost.Load())
	n.spoolErrors.Add(old.spoolErrors.Load())
	old.in.drain(n.Notify)
	for name, c := range n.channels {
		oc, ok := old.channels[name]
		if !ok || oc.typ != c.typ {
			continue
		}
		c.sent, c.sentEach, c.folded = oc.sent, oc.sentEach, oc.folded
		oc.mu.Lock()
		st := oc.st
		oc.mu.Unlock()
		c.update(func(s *ChannelStatus) {
			s.Sent, s.Failures, s.Pending, s.Dropped, s.Folded = st.Sent, st.Failures, st.Pending, st.Dropped, st.Folded
			s.LastSuccess, s.LastAnswer, s.LastError, s.LastErrorTime = st.LastSuccess, st.LastAnswer, st.LastError, st.LastErrorTime
		})
	}
}

// Channels returns the configured channel names, sorted.
func (n *Notifier) Channels() []string { return append([]string(nil), n.names...) }

// Run delivers until ctx ends. It is the only goroutine that reads the
// hand-off queue and the one that writes new messages to the spool.
func (n *Notifier) Run(ctx context.Context) error {
	// Too old first, so nothing past max_spool_age is sent after a
	// long downtime.
	n.purge(time.Now())
	var wg sync.WaitGroup
	for _, name := range n.names {
		c := n.channels[name]
		wg.Add(1)
		go func() { defer wg.Done(); n.deliver(ctx, c) }()
	}
	defer wg.Wait()
	digestT := time.NewTicker(n.cfg.Digest)
	defer digestT.Stop()
	purgeT := time.NewTicker(time.Minute)
	defer purgeT.Stop()
	for {
		select {
		case <-ctx.Done():
			// What was handed over before the end is still spooled (a
			// stop event, alarms of the last moment).
			n.in.drain(n.handle)
			return nil
		case <-n.in.wake:
			n.in.drain(n.handle)
		case now := <-digestT.C:
			// Held-back messages are summed up once per digest too,
			// so the summaries themselves cannot flood.
			n.flushDigest(now)
			n.flushFolded(now)
		case now := <-purgeT.C:
			n.purge(now)
		}
	}
}

func (n *Notifier) handle(e Event) {
	e = e.sanitized()
	if e.Kind == KindBan {
		n.digest.add(e)
	}
	var m *Message
	for _, name := range n.names {
		c := n.channels[name]
		if !c.events[e.Kind] {
			continue
		}
		if m == nil {
			mm := eventMessage(n.opt.Host, e)
			m = &mm
		}
		n.emit(c, *m, classOf(e.Kind))
	}
}

// Message classes for the hourly limit.
type class int

const (
	classEach    class = iota // a single ban or unban: at most half the limit
	classNormal               // alarms: all but the last slot
	classSummary              // digests and the folded summary: the last slot too
)

func classOf(k Kind) class {
	if k == KindBan || k == KindUnban {
		return classEach
	}
	return classNormal
}

func pruneHour(ts []time.Time, now time.Time) []time.Time {
	cut := now.Add(-time.Hour)
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	return ts[i:]
}

// allowed reports whether the channel may get one more message of class
// cl this hour. Single bans may use only half the slots and the last slot
// is kept for the folded summary, so a flood of bans never crowds out an
// alarm or the digest that sums the flood up.
func (n *Notifier) allowed(c *channel, now time.Time, cl class) bool {
	c.sent = pruneHour(c.sent, now)
	c.sentEach = pruneHour(c.sentEach, now)
	limit := n.cfg.MaxPerHour
	switch cl {
	case classEach:
		if len(c.sentEach) >= limit/2 {
			return false
		}
		limit--
	case classNormal:
		limit--
	}
	return len(c.sent) < limit
}

const maxFoldedTitles = 10

func (n *Notifier) emit(c *channel, m Message, cl class) {
	now := time.Now()
	if !n.allowed(c, now, cl) {
		f := &c.folded
		f.Count++
		if f.Kinds == nil {
			f.Kinds = map[string]int{}
		}
		f.Kinds[string(m.Kind)]++
		if len(f.Titles) < maxFoldedTitles {
			f.Titles = append(f.Titles, m.Title)
		}
		c.update(func(s *ChannelStatus) { s.Folded++ })
		return
	}
	c.sent = append(c.sent, now)
	if cl == classEach {
		c.sentEach = append(c.sentEach, now)
	}
	body, err := json.Marshal(m)
	if err == nil {
		_, err = n.spool.OutboxAdd([]store.OutboxMessage{{Channel: c.name, Created: now, NextTry: now, Body: body}})
	}
	if err != nil {
		n.spoolErrors.Add(1)
		n.log.Error("notify: message not spooled", "channel", c.name, "kind", m.Kind, "err", err)
		return
	}
	// Counted now: the sender may be stuck in a send for its timeout.
	c.update(func(s *ChannelStatus) { s.Pending++ })
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (n *Notifier) flushFolded(now time.Time) {
	for _, name := range n.names {
		c := n.channels[name]
		if c.folded.Count == 0 || !n.allowed(c, now, classSummary) {
			continue
		}
		f := c.folded
		c.folded = Folded{}
		n.emit(c, foldedMessage(n.opt.Host, now, f), classSummary)
	}
}

func (n *Notifier) flushDigest(now time.Time) {
	if n.digest.bans == 0 && n.lost.Load() == 0 {
		n.digest.reset(now)
		return
	}
	// A digest may take the last slot of the hour; when a channel has
	// none left, the bans keep adding up for a later digest rather than
	// being folded away.
	for _, name := range n.names {
		if c := n.channels[name]; c.events[KindDigest] && !n.allowed(c, now, classSummary) {
			return
		}
	}
	lost := n.lost.Swap(0)
	d := n.digest.result(now)
	d.Lost = lost
	n.digest.reset(now)
	m := digestMessage(n.opt.Host, d)
	for _, name := range n.names {
		if c := n.channels[name]; c.events[KindDigest] {
			n.emit(c, m, classSummary)
		}
	}
}

func (n *Notifier) purge(now time.Time) {
	dropped, err := n.spool.OutboxDropBefore(now.Add(-n.cfg.MaxSpoolAge))
	if err != nil {
		n.log.Error("notify: spool purge", "err", err)
		return
	}
	for ch, k := range dropped {
		n.log.Warn("notify: undelivered messages dropped", "channel", ch, "count", k, "older_than", n.cfg.MaxSpoolAge)
		if c, ok := n.channels[ch]; ok {
			c.update(func(s *ChannelStatus) { s.Dropped, s.Pending = s.Dropped+uint64(k), max(s.Pending-k, 0) })
		}
	}
}

func (n *Notifier) record(c *channel, answer string, err error) {
	now := time.Now()
	c.update(func(s *ChannelStatus) {
		if err == nil || errors.Is(err, errHugeAnswer) {
			s.LastSuccess, s.LastAnswer = now, answer
		}
		if err != nil {
			s.LastError, s.LastErrorTime = err.Error(), now
			if !errors.Is(err, errHugeAnswer) {
				s.Failures++
			}
		}
	})
}

// deliver is a channel's sender loop: oldest message first, one at a
// time; a failure backs the whole channel off so a dead server costs one
// timeout per try, not one per message.
func (n *Notifier) deliver(ctx context.Context, c *channel) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
		wait := n.deliverDue(ctx, c)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if wait > 0 {
			timer.Reset(wait)
		}
	}
}

// deliverDue sends what is due and returns how long until the next try
// (0: nothing waits).
func (n *Notifier) deliverDue(ctx context.Context, c *channel) time.Duration {
	msgs, err := n.spool.Outbox(c.name)
	if err != nil {
		n.log.Error("notify: read spool", "channel", c.name, "err", err)
		c.update(func(s *ChannelStatus) { s.LastError, s.LastErrorTime = err.Error(), time.Now() })
		return n.opt.RetryMin
	}
	// The spool's count now; deliveries count down from it and new
	// messages (emit) up, so status is right while a send hangs.
	c.update(func(s *ChannelStatus) { s.Pending = len(msgs) })
	done := func() { c.update(func(s *ChannelStatus) { s.Pending = max(s.Pending-1, 0) }) }
	var next time.Duration
	for _, om := range msgs {
		if ctx.Err() != nil {
			return 0
		}
		now := time.Now()
		if om.NextTry.After(now) {
			if d := om.NextTry.Sub(now); next == 0 || d < next {
				next = d
			}
			continue
		}
		var m Message
		if err := json.Unmarshal(om.Body, &m); err != nil {
			n.log.Error("notify: unreadable spooled message dropped", "channel", c.name, "id", om.ID, "err", err)
			n.spool.OutboxDelete(om.ID)
			done()
			c.update(func(s *ChannelStatus) { s.Dropped++ })
			continue
		}
		answer, err := c.s.send(ctx, m)
		n.record(c, answer, err)
		if err == nil || errors.Is(err, errHugeAnswer) {
			if derr := n.spool.OutboxDelete(om.ID); derr != nil {
				n.log.Error("notify: delivered message stays in the spool", "channel", c.name, "id", om.ID, "err", derr)
			}
			done()
			c.update(func(s *ChannelStatus) { s.Sent++ })
			n.log.Info("notify: delivered", "channel", c.name, "kind", m.Kind, "answer", answer)
			continue
		}
		if ctx.Err() != nil {
			return 0
		}
		backoff := n.opt.RetryMin << min(om.Attempts, 20)
		if backoff > n.opt.RetryMax || backoff <= 0 {
			backoff = n.opt.RetryMax
		}
		n.log.Warn("notify: delivery failed", "channel", c.name, "kind", m.Kind, "attempt", om.Attempts+1, "retry_in", backoff, "err", err)
		if rerr := n.spool.OutboxRetry(om.ID, om.Attempts+1, now.Add(backoff), err.Error()); rerr != nil {
			n.log.Error("notify: spool retry", "channel", c.name, "err", rerr)
		}
		return backoff
	}
	return next
}

// Digest accumulation, bounded whatever the flood.
const (
	maxDigestKeys    = 100_000
	maxDigestRepeats = 10
	digestTop        = 5
)

type digestAcc struct {
	since    time.Time
	bans     int
	targets  map[netip.Prefix]struct{}
	extraT   int // targets beyond maxDigestKeys (may count some twice)
	jails    map[string]int
	networks map[netip.Prefix]int
	repeats  []string
	moreRep  int
}

func (d *digestAcc) reset(now time.Time) {
	*d = digestAcc{since: now, targets: map[netip.Prefix]struct{}{}, jails: map[string]int{}, networks: map[netip.Prefix]int{}}
}

func (d *digestAcc) add(e Event) {
	d.bans++
	if e.Target.IsValid() {
		if _, ok := d.targets[e.Target]; !ok {
			if len(d.targets) < maxDigestKeys {
				d.targets[e.Target] = struct{}{}
			} else {
				d.extraT++
			}
		}
		bits := 24
		if e.Target.Addr().Is6() {
			bits = 64
		}
		if e.Target.Bits() < bits {
			bits = e.Target.Bits()
		}
		net, _ := e.Target.Addr().Prefix(bits)
		if _, ok := d.networks[net]; ok || len(d.networks) < maxDigestKeys {
			d.networks[net]++
		}
		if e.Level > 0 {
			if len(d.repeats) < maxDigestRepeats {
				d.repeats = append(d.repeats, e.Target.String())
			} else {
				d.moreRep++
			}
		}
	}
	if _, ok := d.jails[e.Jail]; ok || len(d.jails) < 1000 {
		d.jails[e.Jail]++
	}
}

func (d *digestAcc) result(now time.Time) Digest {
	out := Digest{Since: d.since, Until: now, Bans: d.bans, Targets: len(d.targets) + d.extraT,
		RepeatOffenders: append([]string{}, d.repeats...), MoreRepeatOffenders: d.moreRep}
	out.Jails = top(d.jails, func(k string) string { return k })
	out.Networks = top(d.networks, netip.Prefix.String)
	return out
}

func top[K comparable](m map[K]int, name func(K) string) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{Name: name(k), Count: v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Name < out[j].Name
	})
	if len(out) > digestTop {
		out = out[:digestTop]
	}
	return out
}
