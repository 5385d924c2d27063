// Package parse turns one Mailu log line into an Event: who (the client
// address), what (Kind), from which program (Origin), when (log time).
// Each Mailu source has its file (nginx.go with its connection table and
// forgery guard beside it in nginx_conn.go and nginx_front.go, dovecot.go,
// admin.go, postfix.go, rspamd.go); the shared scanners and timestamps are
// in parser.go and timestamp.go. It knows nothing of windows or bans.
package parse

import (
	"net/netip"
	"strings"
	"time"

	"github.com/bansd/bansd/sources"
)

// The matchers are hand-written scanners: each service
// has a literal prefilter that throws out benign lines without allocating,
// then anchored parsing. Attacker text (usernames, addresses, HELO) sits in
// the middle of lines, so every trusted field is taken from the side the
// attacker cannot reach: nginx "client:" from the left, Dovecot "rip=" and
// admin "from:" from the right end.

// Limits that keep one event bounded whatever the attacker writes.
const (
	// maxEventCount caps Dovecot's "(auth failed, N attempts" N: Dovecot
	// allows a handful of attempts per connection, never thousands.
	maxEventCount = 100
	// maxUserLen caps Event.User (an e-mail address is at most 254 bytes):
	// the engine keys maps on it.
	maxUserLen = 320
	// defaultMaxConnections is ParserOptions.MaxConnections' default.
	defaultMaxConnections = 65536
	// maxMaxConnections caps it (about 230 MB of table) so that a typo in
	// a configuration cannot ask for gigabytes.
	maxMaxConnections = 1 << 22
)

// Parser turns log lines into Events. It is stateful (nginx connection
// tracking, year context), bounded in memory, and not safe for concurrent use.
type Parser struct {
	now func() time.Time

	conns          connTable
	frontContainer string
	front          frontGuard
	connMax        connOrder
	adminBurst     burst

	// witness, when set, puts the parser in kernel mode (witness.go).
	witness Witness
	kconns  kconnTable
	tuples  tupleTable

	// verdict is what Parse made of the line it is parsing (verdict.go).
	verdict Verdict
	// live and warm are the counters of live lines and of warm-up lines
	// (SetWarm): a warm-up replays lines that were counted already.
	live, warm parseCounts
	warming    bool
}

// parseCounts are what ParserStats reports.
type parseCounts struct {
	// svc counts the verdicts per service.
	svc [svcCount]serviceCounters
	// witnessedN counts corroborated events.
	witnessedN uint64
	// untimedFront and unguardedDovecot: ParserStats' fields.
	untimedFront, unguardedDovecot uint64
}

func (p *Parser) cnt() *parseCounts {
	if p.warming {
		return &p.warm
	}
	return &p.live
}

// SetWarm switches the counters: on, lines are counted in WarmStats
// instead of Stats. Parsing is the same either way.
func (p *Parser) SetWarm(on bool) { p.warming = on }

// ParserOptions configures NewParser. The zero value is valid.
type ParserOptions struct {
	// MaxConnections bounds the nginx connection table (default 65536); oldest evicted.
	// The table is allocated whole (about 56 bytes a connection) and capped at 1<<22.
	MaxConnections int
	// Now supplies the year for year-less timestamps when a line has no Docker time (default time.Now).
	Now func() time.Time
	// Witness, when set, is the kernel's record of who connected: a line
	// then counts only if it names a connection the kernel saw (kernel
	// mode). Nil: the text rules alone (replay; a proxy the kernel cannot
	// see past).
	Witness Witness
}

// ParserStats are the Parser's counters since NewParser.
type ParserStats struct {
	// Lines is every line given to Parse.
	Lines uint64
	// Matched is every line that produced an Event.
	Matched uint64
	// Forged counts lines that would have produced an Event but were judged
	// written by an attacker (through a line feed in an nginx username), by
	// reason: the Forge* constants. Every reason is present, zero or not.
	Forged map[string]uint64
	// Uncorroborated counts lines that would have produced an Event but
	// were not counted in kernel mode, by reason: the Unseen* constants.
	// Empty in text mode.
	Uncorroborated map[string]uint64
	// Witnessed is every Event the kernel corroborated.
	Witnessed uint64
	// Services breaks every line down by service (ServiceOther for those
	// bansd does not read): only services that had lines.
	Services map[string]ServiceStats
	// KernelMode: the parser had a Witness.
	KernelMode bool
	// UntimedFront counts front lines without Docker time: the text
	// rules then tell pieces of an nginx write by line count only, and
	// UnguardedDovecot of the Dovecot failures among them counted with no
	// piece test at all (none can be told from Dovecot's own).
	UntimedFront, UnguardedDovecot uint64
}

// Reasons a line is judged forged (keys of ParserStats.Forged).
const (
	// ForgeUnopened: the nginx *CONNID was never opened by a "connected"
	// line (or was evicted from the bounded table).
	ForgeUnopened = "unopened"
	// ForgeOtherAddress: the *CONNID was opened for another client address.
	ForgeOtherAddress = "other-address"
	// ForgePoisoned: the *CONNID's "connected" line was seen twice; a
	// duplicated "connected" line is counted here too.
	ForgePoisoned = "poisoned"
	// ForgeRepeat: a second counted failure on one *CONNID (nginx closes the
	// connection after a failed AUTH).
	ForgeRepeat = "repeat"
	// ForgeWorker: the PID#TID differs from the one on the connection's
	// "connected" line (so it is not a worker seen on that connected line).
	ForgeWorker = "worker"
	// ForgeFormat: the line has its own timestamp and its "connected" line
	// had none, or the reverse.
	ForgeFormat = "format"
	// ForgeTime: the line's own timestamp is more than 2 s away from
	// Docker's (modulo a whole time-zone offset).
	ForgeTime = "time"
	// ForgeBurst: the line is a piece of a line split inside an
	// attacker-controlled field: on front, it arrived within
	// microseconds (Docker time) of the nginx line carrying a login, or of
	// another such piece, i.e. in the same write(); on admin, in the burst
	// after a limiter line.
	ForgeBurst = "burst"
	// ForgeForeign: on front, the line arrived shortly after an nginx line
	// carrying a login (10 ms of Docker time, or 2048 lines without it) and
	// names another client than that line (if pieces were spread out by a
	// stall, the split's author only gets lines about himself counted
	// there); or it is an nginx failure on another client's connection
	// opened in such a window that came too soon after it (under 10 ms) or
	// still in a window.
	ForgeForeign = "foreign"
	// ForgeAhead: the "connected" line's *CONNID is far above the highest
	// seen (nginx's counter moves one by one).
	ForgeAhead = "ahead"
	// ForgeStale: the "connected" line's *CONNID is well below the highest
	// seen (nginx's counter only grows).
	ForgeStale = "stale"
)

type forgeReason uint8

const (
	forgeUnopened forgeReason = iota
	forgeOtherAddress
	forgePoisoned
	forgeRepeat
	forgeWorker
	forgeFormat
	forgeTime
	forgeBurst
	forgeForeign
	forgeAhead
	forgeStale
	forgeReasonCount
)

var forgeNames = [forgeReasonCount]string{
	forgeUnopened:     ForgeUnopened,
	forgeOtherAddress: ForgeOtherAddress,
	forgePoisoned:     ForgePoisoned,
	forgeRepeat:       ForgeRepeat,
	forgeWorker:       ForgeWorker,
	forgeFormat:       ForgeFormat,
	forgeTime:         ForgeTime,
	forgeBurst:        ForgeBurst,
	forgeForeign:      ForgeForeign,
	forgeAhead:        ForgeAhead,
	forgeStale:        ForgeStale,
}

// NewParser returns a Parser with its connection table sized (its slots
// are allocated at the first connection).
func NewParser(opt ParserOptions) *Parser {
	n := opt.MaxConnections
	if n <= 0 {
		n = defaultMaxConnections
	}
	n = min(n, maxMaxConnections)
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	p := &Parser{now: now, conns: newConnTable(n)}
	if opt.Witness != nil {
		p.SetWitness(opt.Witness)
	}
	return p
}

// KernelMode reports whether lines count only on the kernel's word.
func (p *Parser) KernelMode() bool { return p.witness != nil }

// SetWitness switches between kernel mode (w != nil) and the text rules
// (nil), forgetting what either mode tracked.
func (p *Parser) SetWitness(w Witness) {
	p.witness = w
	p.conns.reset()
	p.front = frontGuard{}
	p.connMax = connOrder{}
	p.frontContainer = ""
	if w != nil && p.kconns.n == 0 {
		p.kconns = newKconnTable(p.conns.n)
		p.tuples = newTupleTable(p.conns.n)
	}
	p.kconns.reset()
	clear(p.tuples.slots)
}

// Stats returns a copy of the counters of live lines.
func (p *Parser) Stats() ParserStats { return p.stats(&p.live) }

// WarmStats returns a copy of the counters of warm-up lines.
func (p *Parser) WarmStats() ParserStats { return p.stats(&p.warm) }

func (p *Parser) stats(pc *parseCounts) ParserStats {
	var forged [forgeReasonCount]uint64
	var unseen [unseenReasonCount]uint64
	s := ParserStats{Forged: make(map[string]uint64, forgeReasonCount), Services: map[string]ServiceStats{},
		UntimedFront: pc.untimedFront, UnguardedDovecot: pc.unguardedDovecot}
	for i := range pc.svc {
		c := &pc.svc[i]
		s.Lines += c.lines
		for _, n := range c.matched {
			s.Matched += n
		}
		for r, n := range c.forged {
			forged[r] += n
		}
		for r, n := range c.unseen {
			unseen[r] += n
		}
		if c.lines > 0 {
			s.Services[svcNames[i]] = c.stats()
		}
	}
	for i, n := range forged {
		s.Forged[forgeNames[i]] = n
	}
	if p.witness != nil {
		s.KernelMode = true
		s.Witnessed = pc.witnessedN
		s.Uncorroborated = make(map[string]uint64, unseenReasonCount)
		for i, n := range unseen {
			s.Uncorroborated[unseenNames[i]] = n
		}
	}
	return s
}

// reject sets the line being parsed aside as forged.
// Add sums the counters of two parsers' stats (replay parses each input
// with parsers of its own).
func (s ParserStats) Add(o ParserStats) ParserStats {
	s.Lines += o.Lines
	s.Matched += o.Matched
	s.Witnessed += o.Witnessed
	s.UntimedFront += o.UntimedFront
	s.UnguardedDovecot += o.UnguardedDovecot
	s.KernelMode = s.KernelMode || o.KernelMode
	s.Forged = addCounts(s.Forged, o.Forged)
	s.Uncorroborated = addCounts(s.Uncorroborated, o.Uncorroborated)
	for name, b := range o.Services {
		if s.Services == nil {
			s.Services = map[string]ServiceStats{}
		}
		a := s.Services[name]
		a.Lines += b.Lines
		a.Matched = addCounts(a.Matched, b.Matched)
		a.Ignored = addCounts(a.Ignored, b.Ignored)
		a.Unparsable = addCounts(a.Unparsable, b.Unparsable)
		a.Forged = addCounts(a.Forged, b.Forged)
		a.Uncorroborated = addCounts(a.Uncorroborated, b.Uncorroborated)
		s.Services[name] = a
	}
	return s
}

func addCounts(a, b map[string]uint64) map[string]uint64 {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = make(map[string]uint64, len(b))
	}
	for k, n := range b {
		a[k] += n
	}
	return a
}

func (p *Parser) reject(r forgeReason) {
	p.verdict = Verdict{Class: ClassForged, reason: uint8(r)}
}

// notSeen sets the line being parsed aside as uncorroborated (kernel mode).
func (p *Parser) notSeen(r unseenReason) {
	p.verdict = Verdict{Class: ClassUncorroborated, reason: uint8(r)}
}

// lineTime is what a matcher found about the line's own timestamp.
type lineTime struct {
	t  time.Time
	ok bool
}

// Parse returns the line's event and true, or false when the line carries no
// signal (or was judged forged).
func (p *Parser) Parse(l sources.Line) (Event, bool) {
	p.verdict = Verdict{}
	var (
		ev  Event
		own lineTime
		ok  bool
	)
	svc := serviceIndex(l.Service)
	switch svc {
	case svcFront:
		if p.witness != nil {
			ev, own, ok = p.parseFrontKernel(l)
		} else {
			ev, own, ok = p.parseFront(l)
		}
	case svcAdmin:
		ev, own, ok = p.parseAdmin(l)
	case svcSMTP:
		ev, own, ok = p.parsePostfix(l)
	case svcAntispam:
		ev, own, ok = p.parseRspamd(l)
	}
	if !ok {
		p.count(svc, nil)
		return Event{}, false
	}
	switch {
	case !l.Time.IsZero():
		ev.Time = l.Time
	case own.ok:
		ev.Time = own.t
	default:
		ev.Time = p.now()
	}
	if p.witness != nil && !ev.Witnessed {
		if ev, ok = p.witnessed(ev, ev.Time.UnixNano()); !ok {
			p.count(svc, nil)
			return Event{}, false
		}
	}
	if ev.Witnessed {
		p.cnt().witnessedN++
	}
	if ev.Count < 1 {
		ev.Count = 1
	}
	if len(ev.User) > maxUserLen {
		ev.User = ev.User[:maxUserLen]
	}
	ev.Line = l.Text
	p.verdict = Verdict{Class: ClassMatched}
	p.count(svc, &ev)
	return ev, true
}

// yearRef is the time year-less timestamps are placed near.
func (p *Parser) yearRef(l sources.Line) time.Time {
	if !l.Time.IsZero() {
		return l.Time
	}
	return p.now()
}

// parseAddr accepts a bare IPv4 or IPv6 address as a client: no zone, not
// unspecified, IPv4-mapped addresses unmapped.
func parseAddr(s string) (netip.Addr, bool) {
	if len(s) == 0 || len(s) > 45 {
		return netip.Addr{}, false
	}
	a, ok := parseIPv4(s)
	if !ok {
		var err error
		if a, err = netip.ParseAddr(s); err != nil || a.Zone() != "" {
			return netip.Addr{}, false
		}
		a = a.Unmap()
	}
	if a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a, true
}

// parseIPv4 is netip.ParseAddr's IPv4 rule (four decimal fields up to 255,
// no leading zeros) without its generality: every Mailu line carries an
// address, and this is most of their parsing cost. Anything else (IPv6,
// or text netip must judge) is false, for netip.ParseAddr.
func parseIPv4(s string) (netip.Addr, bool) {
	var b [4]byte
	f, v, n := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if n > 0 && v == 0 {
				return netip.Addr{}, false // leading zero
			}
			v = v*10 + int(c-'0')
			n++
			if v > 255 {
				return netip.Addr{}, false
			}
		case c == '.' && n > 0 && f < 3:
			b[f] = byte(v)
			f, v, n = f+1, 0, 0
		default:
			return netip.Addr{}, false
		}
	}
	if f != 3 || n == 0 {
		return netip.Addr{}, false
	}
	b[3] = byte(v)
	return netip.AddrFrom4(b), true
}

// lastIndex is strings.LastIndex for the short separators the parsers
// look for from the end of a line: it jumps between occurrences of the
// separator's last byte, cheaper than LastIndex's rolling hash on lines
// of this length.
func lastIndex(s, sep string) int {
	n := len(sep)
	if n == 0 {
		return len(s)
	}
	last := sep[n-1]
	for end := len(s); end >= n; {
		j := strings.LastIndexByte(s[:end], last)
		if j < n-1 {
			return -1
		}
		if s[j-n+1:j+1] == sep {
			return j - n + 1
		}
		end = j
	}
	return -1
}

// addrEnd returns the length of the address-looking prefix of s: hex
// digits, '.' and ':'.
func addrEnd(s string) int {
	for i := 0; i < len(s); i++ {
		if !addrChars[s[i]] {
			return i
		}
	}
	return len(s)
}

// addrChars are the bytes of an address's text form (a table: addrEnd
// runs over every front line).
var addrChars = [256]bool{
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true,
	'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true,
	'.': true, ':': true,
}

// digits returns the length of the leading run of ASCII digits of s.
func digits(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return i
		}
	}
	return len(s)
}

// atoiBounded parses a non-empty run of ASCII digits; false if anything else
// or if the value exceeds max.
func atoiBounded(s string, max uint64) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (max-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// portOf returns the port at the end of "host:port" ("0.0.0.0:25",
// "[::]:25"), or 0.
func portOf(s string) int {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return 0
	}
	n, ok := atoiBounded(s[i+1:], 65535)
	if !ok {
		return 0
	}
	return int(n)
}

// burst is the short span after an admin limiter line whose raw username may
// have been split by a line feed: lines in it may be the attacker's own. It
// is measured in Docker time, or in lines when the stream has no Docker
// timestamps (files replayed without them). Front uses frontGuard instead.
type burst struct {
	start, until time.Time
	window       time.Duration
	// addr is the client of the limiter lines that opened the burst
	// (taken from the left of the username, so trusted); invalid when
	// they named several. Lines about it still count: at worst the
	// attacker adds to his own count.
	addr netip.Addr
	// Line-counted mode.
	lines lineSpan
}

// lineSpan is a span counted in lines, for streams without Docker time
// (burst, frontGuard): renewed up to n lines ahead, at most total lines
// from when it opened.
type lineSpan struct {
	left, budget int
}

func (s *lineSpan) active() bool { return s.left > 0 }

// open starts the span (total lines at most) or renews a running one.
func (s *lineSpan) open(n, total int) {
	if s.left <= 0 {
		s.budget = total
	}
	s.extend(n)
}

// extend renews the span up to n lines ahead, within its budget.
func (s *lineSpan) extend(n int) {
	s.left = max(s.left, min(n, s.budget))
}

// take reports whether the line falls in the span, consuming it.
func (s *lineSpan) take() bool {
	if s.left <= 0 {
		return false
	}
	s.left--
	s.budget--
	return true
}

// Bounds of a burst.
const (
	// burstOpen: the username is not closed at the end of the line, so
	// the line was split.
	burstOpen = 50 * time.Millisecond
	// burstClosed: the username looks closed, but the attacker may have
	// written the usual end himself before the line feed.
	burstClosed = 5 * time.Millisecond
	burstMax    = time.Second // from its first line, however it is extended
	// burstLines: without Docker time nothing tells how long the
	// attacker's write was; a username holds a few dozen lines at most
	// (nginx's smtp_client_buffer).
	burstLines    = 64
	burstMaxLines = 4096
)

// open starts a burst at t about addr, or extends a running one.
func (b *burst) open(t time.Time, window time.Duration, addr netip.Addr) {
	fresh := (t.IsZero() && !b.lines.active()) || (!t.IsZero() && (b.until.IsZero() || t.After(b.until)))
	switch {
	case fresh:
		b.addr = addr
	case b.addr != addr:
		b.addr = netip.Addr{}
	}
	if t.IsZero() {
		b.lines.open(burstLines, burstMaxLines)
		return
	}
	if b.until.IsZero() || t.After(b.until) {
		b.start = t
		b.until = time.Time{}
	}
	b.window = window
	b.push(t)
}

func (b *burst) push(t time.Time) {
	u := t.Add(b.window)
	if lim := b.start.Add(burstMax); u.After(lim) {
		u = lim
	}
	if u.After(b.until) {
		b.until = u
	}
}

// in reports whether a line at t falls in the burst (consuming one line in
// line-counted mode).
func (b *burst) in(t time.Time) bool {
	if t.IsZero() {
		return b.lines.take()
	}
	return !b.until.IsZero() && !t.After(b.until)
}

// extend renews the burst after a continuation line.
func (b *burst) extend(t time.Time) {
	if t.IsZero() {
		b.lines.extend(burstLines)
		return
	}
	b.push(t)
}
