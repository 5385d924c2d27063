// Package mailugen writes realistic Mailu container logs (front, admin,
// smtp, as `docker logs -t` prints them) with a known ground truth: which
// targets bansd must ban and which addresses must raise an alarm. It feeds
// the replay tests and benchmarks.
//
// Attackers use the documentation ranges only (203.0.113.0/24,
// 192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32). Benign clients appear as
// text from 198.18.0.0/15 (the benchmarking range) and 2001:db8:f000::/40.
package mailugen

import (
	"bufio"
	"container/heap"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mailu versions the generator can write.
const (
	V2024 = "2024.06"
	V20   = "2.0"
)

// Options says what to generate. The zero value is usable with Dir set.
type Options struct {
	Dir string
	// Lines is about how many lines to write in all (benign traffic fills
	// what the attacks leave). Default 100000.
	Lines int
	// Attackers is how many single-address attackers (password guessers,
	// port-25 AUTH bots, relay probers, token guessers). Default 24.
	Attackers int
	// Distinct > 0 switches to the memory test: that many distinct
	// attacking addresses, one bad API token each, nothing else. No bans.
	Distinct int
	Seed     uint64
	// Version is V2024 (default) or V20.
	Version string
	// Start is the first line's time. Default 2026-11-20T00:00:00Z.
	Start time.Time
	// Span is how long the logs cover. Default 24h.
	Span time.Duration
}

// Truth is what a correct engine decides on the generated logs with the
// default configuration.
type Truth struct {
	Version string `json:"version"`
	// Bans are the targets that must be banned, sorted; no other target may be.
	Bans []string `json:"bans"`
	// Alarms are the addresses that must raise a gateway-client alarm.
	Alarms []string `json:"alarms"`
	Lines  int      `json:"lines"`
	// Files maps each service to its log file.
	Files map[string]string `json:"files"`
}

// Services written, in the order Files lists them.
var Services = []string{"front", "admin", "smtp"}

const (
	svcFront = iota
	svcAdmin
	svcSMTP
)

// Timestamp styles of the programs' own prefixes.
type tsStyle uint8

const (
	tsNone   tsStyle = iota
	tsNginx          // 2006/01/02 15:04:05
	tsSyslog         // Jan 02 15:04:05
	tsAdmin          // [2006-01-02 15:04:05,000]
	tsAccess         // ... [02/Jan/2006:15:04:05 +0000] ... (at the \x00 mark)
)

type record struct {
	t     time.Time
	seq   uint64
	svc   uint8
	style tsStyle
	// guard: the parser treats the next few ms of this stream as possibly
	// forged (a username that may hold a line feed), so the writer keeps
	// the stream's next line clear of it, as real traffic almost always is.
	guard bool
	body  string
	// conn names the nginx connection of a line whose body holds \x01 for
	// its *CONNID; the writer numbers connections in log order, as nginx
	// does. connLast: the connection's last line.
	conn     uint64
	connLast bool
}

type recHeap []record

func (h recHeap) Len() int { return len(h) }
func (h recHeap) Less(i, j int) bool {
	if !h[i].t.Equal(h[j].t) {
		return h[i].t.Before(h[j].t)
	}
	return h[i].seq < h[j].seq
}
func (h recHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *recHeap) Push(x any)   { *h = append(*h, x.(record)) }
func (h *recHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

type gen struct {
	opt   Options
	rng   *rand.Rand
	heap  recHeap
	seq   uint64
	conn  uint64 // nginx *CONNID, one counter for all workers
	qid   uint64
	bans  map[string]bool
	alarm map[string]bool
	users []string
}

func (g *gen) push(t time.Time, svc uint8, style tsStyle, body string, guard bool) {
	g.seq++
	heap.Push(&g.heap, record{t: t, seq: g.seq, svc: svc, style: style, body: body, guard: guard})
}

// pushConn pushes a front nginx line of connection conn.
func (g *gen) pushConn(t time.Time, conn uint64, last bool, body string, guard bool) {
	g.seq++
	heap.Push(&g.heap, record{t: t, seq: g.seq, svc: svcFront, style: tsNginx, body: body, guard: guard, conn: conn, connLast: last})
}

// Generate writes the logs into opt.Dir and returns the ground truth (also
// written to truth.json).
func Generate(opt Options) (*Truth, error) {
	if opt.Dir == "" {
		return nil, fmt.Errorf("mailugen: no output directory")
	}
	if opt.Lines <= 0 {
		opt.Lines = 100000
	}
	if opt.Attackers < 0 {
		return nil, fmt.Errorf("mailugen: negative attackers")
	}
	if opt.Attackers == 0 && opt.Distinct == 0 {
		opt.Attackers = 24
	}
	if opt.Distinct > 1<<20 {
		return nil, fmt.Errorf("mailugen: at most %d distinct addresses fit 2001:db8::/32 as generated", 1<<20)
	}
	switch opt.Version {
	case "":
		opt.Version = V2024
	case V2024, V20:
	default:
		return nil, fmt.Errorf("mailugen: unknown Mailu version %q (want %s or %s)", opt.Version, V2024, V20)
	}
	if opt.Start.IsZero() {
		opt.Start = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	}
	if opt.Span <= 0 {
		opt.Span = 24 * time.Hour
	}
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("mailugen: %w", err)
	}
	g := &gen{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x6d61696c75)), bans: map[string]bool{}, alarm: map[string]bool{}}
	for i := range 400 {
		g.users = append(g.users, fmt.Sprintf("%s%d@example.com", []string{"info", "admin", "sales", "john", "mary", "test", "office", "support"}[i%8], i))
	}
	w, err := newWriters(opt.Dir)
	if err != nil {
		return nil, err
	}
	defer w.close()

	if opt.Distinct > 0 {
		g.distinct()
	} else {
		g.attacks()
	}
	attackLines := len(g.heap)
	if opt.Distinct == 0 {
		if err := g.benign(w, opt.Lines-attackLines); err != nil {
			return nil, err
		}
	}
	for len(g.heap) > 0 {
		if err := w.write(heap.Pop(&g.heap).(record)); err != nil {
			return nil, err
		}
	}
	if err := w.close(); err != nil {
		return nil, err
	}
	tr := &Truth{Version: opt.Version, Lines: w.lines, Files: map[string]string{}}
	for k := range g.bans {
		tr.Bans = append(tr.Bans, k)
	}
	for k := range g.alarm {
		tr.Alarms = append(tr.Alarms, k)
	}
	slices.Sort(tr.Bans)
	slices.Sort(tr.Alarms)
	if tr.Bans == nil {
		tr.Bans = []string{}
	}
	if tr.Alarms == nil {
		tr.Alarms = []string{}
	}
	for i, s := range Services {
		tr.Files[s] = w.paths[i]
	}
	data, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(opt.Dir, "truth.json"), append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("mailugen: %w", err)
	}
	return tr, nil
}

// writers hold one buffered file per service and keep each stream's Docker
// timestamps increasing.
type writers struct {
	files []*os.File
	bufs  []*bufio.Writer
	paths []string
	last  []time.Time
	guard []bool
	lines int
	buf   []byte
	conns map[uint64]uint64
	conn  uint64
}

func newWriters(dir string) (*writers, error) {
	w := &writers{}
	for _, s := range Services {
		p := filepath.Join(dir, s+".log")
		f, err := os.Create(p)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("mailugen: %w", err)
		}
		w.files = append(w.files, f)
		w.bufs = append(w.bufs, bufio.NewWriterSize(f, 1<<20))
		w.paths = append(w.paths, p)
	}
	w.last = make([]time.Time, len(Services))
	w.guard = make([]bool, len(Services))
	w.conns = map[uint64]uint64{}
	return w, nil
}

func (w *writers) write(r record) error {
	t := r.t
	minGap := time.Microsecond
	if w.guard[r.svc] {
		minGap = 20 * time.Millisecond
	}
	if lim := w.last[r.svc].Add(minGap); !w.last[r.svc].IsZero() && t.Before(lim) {
		t = lim
	}
	w.last[r.svc], w.guard[r.svc] = t, r.guard
	b := w.buf[:0]
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z")
	b = append(b, ' ')
	switch r.style {
	case tsNginx:
		b = t.UTC().AppendFormat(b, "2006/01/02 15:04:05 ")
	case tsSyslog:
		b = t.UTC().AppendFormat(b, "Jan 02 15:04:05 ")
	case tsAdmin:
		b = t.UTC().AppendFormat(b, "[2006-01-02 15:04:05,000] ")
	}
	if r.conn != 0 {
		id, ok := w.conns[r.conn]
		if !ok {
			w.conn++
			id = w.conn
			w.conns[r.conn] = id
		}
		if r.connLast {
			delete(w.conns, r.conn)
		}
		before, after, _ := strings.Cut(r.body, "\x01")
		b = append(b, before...)
		b = strconv.AppendUint(b, id, 10)
		b = append(b, after...)
	} else if r.style == tsAccess {
		before, after, _ := strings.Cut(r.body, "\x00")
		b = append(b, before...)
		b = t.UTC().AppendFormat(b, "02/Jan/2006:15:04:05 +0000")
		b = append(b, after...)
	} else {
		b = append(b, r.body...)
	}
	b = append(b, '\n')
	w.buf = b
	w.lines++
	if _, err := w.bufs[r.svc].Write(b); err != nil {
		return fmt.Errorf("mailugen: write %s: %w", Services[r.svc], err)
	}
	return nil
}

func (w *writers) close() error {
	var first error
	for i, f := range w.files {
		if f == nil {
			continue
		}
		if err := w.bufs[i].Flush(); err != nil && first == nil {
			first = err
		}
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
		w.files[i] = nil
	}
	return first
}

// ---- addresses ----

func v4(a, b, c, d int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a), byte(b), byte(c), byte(d)})
}

func v6(groups ...uint16) netip.Addr {
	var b [16]byte
	for i, g := range groups {
		b[2*i], b[2*i+1] = byte(g>>8), byte(g)
	}
	return netip.AddrFrom16(b)
}

func host(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

const (
	frontIP   = "192.168.203.5"
	gatewayIP = "192.168.203.1"
	imapIP    = "192.168.203.8"
)

func (g *gen) port() int { return 1024 + g.rng.IntN(64000) }

func (g *gen) hash6() string { return fmt.Sprintf("%06x", g.rng.IntN(1<<24)) }

func (g *gen) jitter(d time.Duration) time.Duration { return time.Duration(g.rng.Int64N(int64(d))) }

// ---- line makers: each writes the lines one real attempt leaves ----

var mailPorts = []struct {
	proto string
	port  int
	svc   string
}{{"imap", 993, "imap"}, {"submission", 465, "submission"}, {"imap", 143, "imap"}, {"pop3", 995, "pop3"}, {"sieve", 4190, "managesieve"}, {"submission", 587, "submission"}}

// nginxMail writes a 2.0 front mail-proxy attempt (every mail port), or
// any port-25 attempt: "connected" then the failure line on one CONNID.
func (g *gen) nginxMail(t time.Time, a netip.Addr, port int, reason, login string) {
	g.conn++
	server := fmt.Sprintf("0.0.0.0:%d", port)
	connected := fmt.Sprintf("client %s:%d connected to %s", a, g.port(), server)
	if a.Is6() {
		server = fmt.Sprintf("[::]:%d", port)
		connected = fmt.Sprintf("client [%s]:%d connected to %s", a, g.port(), server)
	}
	g.pushConn(t, g.conn, false, "[info] 23#23: *\x01 "+connected, false)
	g.pushConn(t.Add(30*time.Millisecond+g.jitter(time.Second)), g.conn, true,
		fmt.Sprintf("[info] 23#23: *\x01"+` client login failed: "%s" while in http auth state, client: %s, server: %s, login: "%s"`, reason, a, server, login), true)
}

// dovecotFail writes front's Dovecot failure for n attempts on one connection.
func (g *gen) dovecotFail(t time.Time, a netip.Addr, svc string, port, n int, user string) {
	g.push(t, svcFront, tsSyslog, fmt.Sprintf("%s-login: Info: Disconnected: Connection closed (auth failed, %d attempts in %d secs): user=<%s>, method=PLAIN, rip=%s, rport=%d, lip=%s, lport=%d, TLS",
		svc, n, 2*n, user, a, g.port(), frontIP, port), false)
}

func (g *gen) adminAttempt(t time.Time, a netip.Addr, user, proto string, port int, outcome string) {
	g.push(t, svcAdmin, tsAdmin, fmt.Sprintf("INFO in nginx: Login attempt for: %s/%s/%d from: %s/%d: %s", user, proto, port, a, g.port(), outcome), false)
}

// guess is one password guess against a mail port, as each version logs it.
func (g *gen) guess(t time.Time, a netip.Addr, user string, unknown, limited bool) {
	mp := mailPorts[g.rng.IntN(len(mailPorts))]
	if g.opt.Version == V20 {
		reason := "Authentication credentials invalid"
		if limited {
			reason = "Temporary authentication failure (rate-limit)"
			g.push(t, svcAdmin, tsAdmin, fmt.Sprintf("WARNING in limiter: Authentication attempt from %s has been rate-limited.", a), false)
		}
		g.nginxMail(t.Add(20*time.Millisecond), a, mp.port, reason, user)
		return
	}
	switch {
	case limited:
		g.push(t, svcAdmin, tsAdmin, fmt.Sprintf("WARNING in limiter: Authentication attempt from %s for %s has been rate-limited.", a, user), true)
	case unknown:
		g.adminAttempt(t, a, "'"+user+"'", mp.proto, mp.port, "failed: account disabled")
	default:
		g.adminAttempt(t, a, user, mp.proto, mp.port, "failed: badauth: "+g.hash6())
	}
	g.dovecotFail(t.Add(2*time.Second), a, mp.svc, mp.port, 1, user)
}

func (g *gen) success(t time.Time, a netip.Addr, user string) {
	mp := mailPorts[g.rng.IntN(len(mailPorts))]
	if g.opt.Version == V20 {
		// 2.0 logs no per-attempt success for mail; SSO logins are logged.
		g.push(t, svcAdmin, tsAdmin, fmt.Sprintf("INFO in base: Login succeeded for %s from %s pwned=0.", user, a), false)
		g.push(t.Add(5*time.Millisecond), svcFront, tsAccess, fmt.Sprintf(`%s - - [`+"\x00"+`] "POST /sso/login HTTP/1.1" 302 218 "https://mail.example.com/sso/login" "Mozilla/5.0"`, a), false)
		return
	}
	g.adminAttempt(t, a, user, mp.proto, mp.port, "success: password")
	g.push(t.Add(40*time.Millisecond), svcFront, tsSyslog, fmt.Sprintf("%s-login: Info: proxy(%s,%s:%d): Started proxying to %s:%d (0.042 secs): user=<%s>, method=PLAIN, rip=%s, rport=%d, lip=%s, lport=%d, TLS",
		mp.svc, user, imapIP, mp.port, imapIP, mp.port, user, a, g.port(), frontIP, mp.port), false)
}

func (g *gen) port25Auth(t time.Time, a netip.Addr, login string) {
	g.nginxMail(t, a, 25, "AUTH not supported", login)
}

func (g *gen) relayProbe(t time.Time, a netip.Addr) {
	g.conn++
	g.pushConn(t, g.conn, true, fmt.Sprintf("[info] 23#23: *\x01 client %s connected to 0.0.0.0:25", hostPort(a, g.port())), false)
	g.push(t.Add(50*time.Millisecond), svcSMTP, tsSyslog, "mail postfix/smtpd[412]: connect from mailu-front-1.mailu_default["+frontIP+"]", false)
	g.push(t.Add(300*time.Millisecond), svcSMTP, tsSyslog, fmt.Sprintf("mail postfix/smtpd[412]: NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 <victim%d@gmail.com>: Relay access denied; from=<spam@x.example> to=<victim%d@gmail.com> proto=ESMTP helo=<x.example>", a, g.rng.IntN(1000), g.rng.IntN(1000)), false)
	g.push(t.Add(400*time.Millisecond), svcSMTP, tsSyslog, "mail postfix/smtpd[412]: disconnect from mailu-front-1.mailu_default["+frontIP+"] ehlo=1 xclient=1 mail=1 rcpt=0/1 quit=1 commands=4/5", false)
}

func hostPort(a netip.Addr, p int) string { return netip.AddrPortFrom(a, uint16(p)).String() }

func (g *gen) tokenGuess(t time.Time, a netip.Addr) {
	g.push(t, svcAdmin, tsAdmin, fmt.Sprintf("WARNING in common: Invalid API token provided by %s.", a), false)
	g.push(t.Add(3*time.Millisecond), svcFront, tsAccess, fmt.Sprintf(`%s - - [`+"\x00"+`] "GET /api/v1/user HTTP/1.1" 403 38 "-" "python-requests/2.31"`, a), false)
}

// ssoGuess is a 2.0 SSO password guess (admin's "Login failed for").
func (g *gen) ssoGuess(t time.Time, a netip.Addr, user string) {
	g.push(t, svcAdmin, tsAdmin, fmt.Sprintf("WARNING in base: Login failed for %s from %s.", user, a), false)
	g.push(t.Add(4*time.Millisecond), svcFront, tsAccess, fmt.Sprintf(`%s - - [`+"\x00"+`] "POST /sso/login HTTP/1.1" 200 7271 "-" "Mozilla/5.0"`, a), false)
}

// ---- scenarios ----

// attacks schedules every attack and the benign edge cases, recording the
// ground truth as it goes.
func (g *gen) attacks() {
	start, span := g.opt.Start, g.opt.Span
	// Single-address attackers. IPv4 ones share two /24s, so they are
	// placed in slots 90 minutes apart, at most 3 per /24 and slot: the
	// network jail (4 addresses) must never see them together.
	slot := 90 * time.Minute
	slots := int(span / slot)
	v4cap := 2 * 3 * slots
	nv4 := 0
	for i := range g.opt.Attackers {
		var a netip.Addr
		var at time.Time
		if i%3 != 2 && nv4 < v4cap {
			j := nv4
			nv4++
			if j%2 == 0 {
				a = v4(203, 0, 113, 10+j/2)
			} else {
				a = v4(192, 0, 2, 10+j/2)
			}
			at = start.Add(time.Duration(j/6)*slot + g.jitter(5*time.Minute))
		} else {
			a = v6(0x2001, 0xdb8, uint16(0x1000+i), 0, 0, 0, 0, uint16(1+g.rng.IntN(0xfff0)))
			at = start.Add(g.jitter(span - 30*time.Minute))
		}
		g.bans[host(a)] = true
		switch i % 4 {
		case 0: // password guesser: 12-16 distinct passwords in < 20 min
			limited := i%8 == 4 && g.opt.Version == V2024
			n := 12 + g.rng.IntN(5)
			for k := range n {
				g.guess(at.Add(time.Duration(k)*70*time.Second+g.jitter(10*time.Second)), a, g.users[g.rng.IntN(len(g.users))], false, limited && k >= 5)
			}
		case 1: // port-25 AUTH bot: 7-10 tries in < 8 min
			n := 7 + g.rng.IntN(4)
			for k := range n {
				g.port25Auth(at.Add(time.Duration(k)*45*time.Second+g.jitter(5*time.Second)), a, g.users[g.rng.IntN(len(g.users))])
			}
		case 2: // relay prober: 6-8 in < 20 min
			n := 6 + g.rng.IntN(3)
			for k := range n {
				g.relayProbe(at.Add(time.Duration(k)*2*time.Minute+g.jitter(30*time.Second)), a)
			}
		case 3: // API token guesser (2024.06) / SSO guesser (2.0)
			if g.opt.Version == V20 {
				for k := range 12 {
					g.ssoGuess(at.Add(time.Duration(k)*time.Minute+g.jitter(10*time.Second)), a, g.users[k])
				}
				break
			}
			n := 6 + g.rng.IntN(4)
			for k := range n {
				g.tokenGuess(at.Add(time.Duration(k)*2*time.Minute+g.jitter(30*time.Second)), a)
			}
		}
	}

	// A distributed spray over one /24: 20 addresses, 3 unknown users each.
	sprayAt := start.Add(span / 3)
	k := 0
	for r := range 3 {
		for h := range 20 {
			a := v4(198, 51, 100, 10+h)
			g.guess(sprayAt.Add(time.Duration(k)*35*time.Second+g.jitter(5*time.Second)), a, fmt.Sprintf("spray%d-%d@example.com", r, h), true, false)
			k++
		}
	}
	g.bans["198.51.100.0/24"] = true
	// IPv6: 8 addresses of one /64 (network jail), and 16 /64s of one /48
	// (network48 jail), each address staying far under the address jails.
	at6 := start.Add(span / 2)
	k = 0
	for r := range 5 {
		for h := range 8 {
			g.guess(at6.Add(time.Duration(k)*40*time.Second), v6(0x2001, 0xdb8, 5, 5, 0, 0, 0, uint16(0x100+h)), fmt.Sprintf("v6spray%d-%d@example.com", r, h), true, false)
			k++
		}
	}
	g.bans["2001:db8:5:5::/64"] = true
	at48 := start.Add(2 * span / 3)
	k = 0
	for r := range 5 {
		for h := range 16 {
			g.guess(at48.Add(time.Duration(k)*30*time.Second), v6(0x2001, 0xdb8, 6, uint16(h), 0, 0, 0, 7), fmt.Sprintf("v48spray%d-%d@example.com", r, h), true, false)
			k++
		}
	}
	g.bans["2001:db8:6::/48"] = true

	// Docker's userland proxy: IPv6 clients show up as the gateway, for
	// logins and as Postfix's XCLIENT client (the open-relay sign).
	for k := range 150 {
		t := start.Add(time.Duration(k) * span / 150)
		if k%5 == 0 {
			g.success(t, netip.MustParseAddr(gatewayIP), g.users[k])
		} else {
			g.guess(t, netip.MustParseAddr(gatewayIP), g.users[k], false, false)
		}
		if k%10 == 0 {
			q := g.nextQID()
			g.push(t.Add(time.Second), svcSMTP, tsSyslog, fmt.Sprintf("mail postfix/smtpd[77]: %s: client=unknown[%s]", q, gatewayIP), false)
		}
	}
	g.alarm[gatewayIP] = true

	// Benign edge cases that must not be banned.
	stale := v4(198, 18, 7, 7)
	staleHash := g.hash6()
	every := 5 * time.Minute
	if g.opt.Version == V20 {
		// 2.0 logs no password hash: only a slow poll stays under maxretry.
		every = 15 * time.Minute
	}
	for t := start.Add(time.Hour); t.Before(start.Add(7 * time.Hour)); t = t.Add(every) {
		if g.opt.Version == V20 {
			g.nginxMail(t, stale, 993, "Authentication credentials invalid", "stale@example.com")
			continue
		}
		mp := mailPorts[0]
		g.adminAttempt(t, stale, "stale@example.com", mp.proto, mp.port, "failed: badauth: "+staleHash)
		g.dovecotFail(t.Add(2*time.Second), stale, mp.svc, mp.port, 1, "stale@example.com")
	}
	// A user who logged in, then her other devices with an old password:
	// that (address, user) pair is exempt. (Other users from the same
	// address are not: that is the attacker who owns one account.)
	nat := v4(198, 18, 9, 9)
	natAt := start.Add(4 * time.Hour)
	g.success(natAt, nat, "boss@example.com")
	for k := range 15 {
		t := natAt.Add(time.Duration(k+1) * 2 * time.Minute)
		if g.opt.Version == V20 {
			g.ssoGuess(t, nat, "boss@example.com")
		} else {
			g.guess(t, nat, "boss@example.com", false, false)
		}
	}
}

func (g *gen) nextQID() string {
	g.qid++
	return fmt.Sprintf("%X", 0xA303311BB3A+g.qid*7919)
}

// distinct writes one bad API token from each of opt.Distinct addresses,
// each in its own /64, 16 per /48: nothing reaches any threshold, every
// address and network is a key to track.
func (g *gen) distinct() {
	n := g.opt.Distinct
	step := g.opt.Span / time.Duration(n)
	for i := range n {
		a := v6(0x2001, 0xdb8, uint16(i>>4), uint16(i&0xf), 0, 0, 0, 1)
		g.push(g.opt.Start.Add(time.Duration(i)*step), svcAdmin, tsAdmin, fmt.Sprintf("WARNING in common: Invalid API token provided by %s.", a), false)
	}
}

// benign writes everyday traffic until about n lines, flushing the heap
// behind the generation time.
func (g *gen) benign(w *writers, n int) error {
	if n <= 0 {
		return nil
	}
	const perSession = 3.6 // lines per session, on average
	gap := float64(g.opt.Span) * perSession / float64(n)
	t := g.opt.Start
	written := 0
	for written < n {
		t = t.Add(time.Duration(g.rng.ExpFloat64() * gap))
		before := len(g.heap)
		g.session(t)
		written += len(g.heap) - before
		for len(g.heap) > 0 && g.heap[0].t.Before(t.Add(-5*time.Second)) {
			if err := w.write(heap.Pop(&g.heap).(record)); err != nil {
				return err
			}
		}
	}
	return nil
}

// client picks a benign client address: a pool of 20000 IPv4 (64 per /24)
// and 4000 IPv6 (16 per /48), as spread out as real users are.
func (g *gen) client() netip.Addr {
	i := g.rng.IntN(24000)
	if i < 20000 {
		return v4(198, 18+(i>>14)&1, (i>>6)&0xff, 1+i&0x3f)
	}
	i -= 20000
	return v6(0x2001, 0xdb8, 0xf000|uint16(i&0xff), uint16(i>>8), 0, 0, 0, uint16(1+i))
}

var paths = []string{"/webmail/", "/webmail/?_task=mail&_action=refresh", "/sso/login", "/static/app.css", "/admin/ui/", "/webmail/skins/elastic/ui.min.js", "/.well-known/autoconfig/mail/config-v1.1.xml"}

func (g *gen) session(t time.Time) {
	a := g.client()
	user := g.users[g.rng.IntN(len(g.users))]
	switch r := g.rng.IntN(100); {
	case r < 35: // mail client login
		g.success(t, a, user)
		if g.opt.Version == V2024 {
			g.push(t.Add(20*time.Millisecond), svcAdmin, tsAccess, frontIP+` - - [`+"\x00"+`] "GET /internal/auth/email HTTP/1.0" 200 0 "-" "-"`, false)
		}
	case r < 70: // web: a few requests
		for k := range 1 + g.rng.IntN(5) {
			g.push(t.Add(time.Duration(k)*150*time.Millisecond), svcFront, tsAccess,
				fmt.Sprintf(`%s - - [`+"\x00"+`] "GET %s HTTP/2.0" 200 %d "-" "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"`, a, paths[g.rng.IntN(len(paths))], 200+g.rng.IntN(90000)), false)
		}
	case r < 93: // inbound mail on port 25
		g.conn++
		q := g.nextQID()
		g.pushConn(t, g.conn, true, fmt.Sprintf("[info] 23#23: *\x01 client %s connected to 0.0.0.0:25", hostPort(a, g.port())), false)
		g.push(t.Add(60*time.Millisecond), svcSMTP, tsSyslog, "mail postfix/smtpd[412]: connect from mailu-front-1.mailu_default["+frontIP+"]", false)
		g.push(t.Add(300*time.Millisecond), svcSMTP, tsSyslog, fmt.Sprintf("mail postfix/smtpd[412]: %s: client=mail-%d.example.net[%s]", q, g.rng.IntN(900), a), false)
		g.push(t.Add(500*time.Millisecond), svcSMTP, tsSyslog, fmt.Sprintf("mail postfix/qmgr[352]: %s: from=<news@example.net>, size=%d, nrcpt=1 (queue active)", q, 2000+g.rng.IntN(80000)), false)
		g.push(t.Add(700*time.Millisecond), svcSMTP, tsSyslog, fmt.Sprintf("mail postfix/lmtp[420]: %s: to=<%s>, relay=imap[%s]:2525, delay=0.4, delays=0.2/0.01/0.01/0.18, dsn=2.0.0, status=sent (250 2.0.0 <%s> Ok)", q, user, imapIP, user), false)
		g.push(t.Add(800*time.Millisecond), svcSMTP, tsSyslog, "mail postfix/smtpd[412]: disconnect from mailu-front-1.mailu_default["+frontIP+"] ehlo=2 starttls=1 xclient=1 mail=1 rcpt=1 data=1 quit=1 commands=8", false)
	case r < 97: // TLS junk from scanners (the scan jail is off by default)
		mp := mailPorts[g.rng.IntN(len(mailPorts))]
		if g.opt.Version == V2024 {
			g.push(t, svcFront, tsSyslog, fmt.Sprintf("%s-login: Info: Disconnected: Connection closed (disconnected before auth was ready, waited 0 secs): user=<>, rip=%s, rport=%d, lip=%s, lport=%d, TLS handshaking: Connection closed", mp.svc, a, g.port(), frontIP, mp.port), false)
		} else {
			g.conn++
			g.pushConn(t, g.conn, true, fmt.Sprintf("[info] 23#23: *\x01 client %s connected to 0.0.0.0:%d", hostPort(a, g.port()), mp.port), false)
		}
	default: // a typo, then the right password
		g.guess(t, a, user, false, false)
		g.success(t.Add(20*time.Second), a, user)
	}
}
