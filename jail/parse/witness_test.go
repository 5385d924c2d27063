package parse

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/sources"
)

// kernelRecord stands for the kernel's record of completed handshakes (the
// real one is tested in package seen and end to end): the connections it
// holds, and an error to return.
type kernelRecord struct {
	conns map[netip.AddrPort]bool
	err   error
	asked int
}

func (k *kernelRecord) connect(addr string, port uint16) {
	k.conns[netip.AddrPortFrom(netip.MustParseAddr(addr), port)] = true
}

func (k *kernelRecord) Saw(a netip.Addr, port uint16) (bool, error) {
	k.asked++
	if k.err != nil {
		return false, k.err
	}
	if port != 0 {
		return k.conns[netip.AddrPortFrom(a, port)], nil
	}
	for ap := range k.conns {
		if ap.Addr() == a {
			return true, nil
		}
	}
	return false, nil
}

type kernelFeed struct {
	t      *testing.T
	k      *kernelRecord
	p      *Parser
	events []Event
}

func newKernelFeed(t *testing.T) *kernelFeed {
	k := &kernelRecord{conns: map[netip.AddrPort]bool{}}
	return &kernelFeed{t: t, k: k, p: NewParser(ParserOptions{Witness: k})}
}

func (f *kernelFeed) line(service string, off time.Duration, text string) {
	if ev, ok := f.p.Parse(sources.Line{Service: service, Container: "c1", Time: feedBase.Add(off), Text: text}); ok {
		if !ev.Witnessed {
			f.t.Fatalf("kernel mode gave an unwitnessed event: %+v", ev)
		}
		f.events = append(f.events, ev)
	}
}

// write feeds one nginx write (pieces a microsecond apart).
func (f *kernelFeed) write(off time.Duration, w string) {
	for i, l := range strings.FieldsFunc(w, func(r rune) bool { return r == '\n' || r == '\r' }) {
		f.line("front", off+time.Duration(i)*time.Microsecond, l)
	}
}

func (f *kernelFeed) expect(want ...string) {
	f.t.Helper()
	var got []string
	for _, ev := range f.events {
		got = append(got, fmt.Sprintf("%s×%d", ev.Addr, ev.Count))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		f.t.Fatalf("events %v, want %v (uncorroborated %v)", got, want, f.p.Stats().Uncorroborated)
	}
}

func (f *kernelFeed) unseen(reason string, n uint64) {
	f.t.Helper()
	if got := f.p.Stats().Uncorroborated[reason]; got != n {
		f.t.Fatalf("Uncorroborated[%s] = %d, want %d (all %v)", reason, got, n, f.p.Stats().Uncorroborated)
	}
}

func connectedPort(worker string, id int, addr string, port int) string {
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	return fmt.Sprintf("%s[info] %s: *%d client %s:%d connected to 0.0.0.0:25", ts, worker, id, addr, port)
}

func dovecotFrom(addr string, port, n int) string {
	return fmt.Sprintf(`Jan 01 00:00:00 imap-login: Info: Disconnected: Connection closed (auth failed, %d attempts in 2 secs): user=<x>, method=PLAIN, rip=%s, rport=%d, lip=192.168.203.5, lport=993, TLS`, n, addr, port)
}

func adminFrom(user, addr string, port int, hash string) string {
	return fmt.Sprintf(`[2026-01-01 00:00:00,000] INFO in nginx: Login attempt for: %s/imap/993 from: %s/%d: failed: badauth: %s`, user, addr, port, hash)
}

func TestKernelModeNginx(t *testing.T) {
	const bot, victim = "203.0.113.66", "198.51.100.53"
	t.Run("a connection the kernel saw counts once", func(t *testing.T) {
		f := newKernelFeed(t)
		f.k.connect(bot, 40000)
		f.line("front", 0, connectedPort("23#23", 100, bot, 40000))
		// Pipelined: the failure microseconds after "connected".
		f.line("front", 20*time.Microsecond, failed("23#23", 100, bot, "a"))
		f.line("front", time.Millisecond, failed("23#23", 100, bot, "a"))
		f.expect(bot + "×1")
		f.unseen(UnseenSpent, 1)
	})
	t.Run("forged lines naming a victim that never connected", func(t *testing.T) {
		f := newKernelFeed(t)
		f.k.connect(bot, 40000)
		f.line("front", 0, connectedPort("23#23", 100, bot, 40000))
		f.write(time.Millisecond, failed("23#23", 100, bot, "x\n"+connectedPort("23#23", 9000000, victim, 1234)+"\n"+failed("23#23", 9000000, victim, "y")))
		// Spread out by any stall: still nothing.
		f.line("front", time.Second, connectedPort("23#23", 101, victim, 1234))
		f.line("front", 2*time.Second, failed("23#23", 101, victim, "y"))
		f.line("front", 3*time.Second, dovecotFrom(victim, 1234, 10))
		f.expect(bot + "×1")
		f.unseen(UnseenConnection, 3)
		f.unseen(UnseenUnopened, 2)
	})
	t.Run("forged lines naming a real connection of the victim", func(t *testing.T) {
		// The residual: the victim is connected right now from port
		// 5555 and the attacker guessed it. Its real "connected" line
		// binds the port; the forged one is an alias and opens nothing.
		f := newKernelFeed(t)
		f.k.connect(victim, 5555)
		f.line("front", 0, connectedPort("23#23", 100, victim, 5555))
		f.line("front", time.Millisecond, connectedPort("23#23", 9000000, victim, 5555))
		f.line("front", 2*time.Millisecond, failed("23#23", 9000000, victim, "y"))
		f.expect()
		f.unseen(UnseenAlias, 1)
		// A forged failure on the victim's real CONNID counts at most
		// once per real connection (nginx closes after a failure).
		f.line("front", 3*time.Millisecond, failed("23#23", 100, victim, "y"))
		f.line("front", 4*time.Millisecond, failed("23#23", 100, victim, "y"))
		f.expect(victim + "×1")
		f.unseen(UnseenSpent, 1)
	})
	t.Run("counter poisoning and start lines change nothing", func(t *testing.T) {
		f := newKernelFeed(t)
		for i := range 5 {
			f.k.connect(bot, uint16(40000+i))
		}
		f.line("front", 0, connectedPort("23#23", 100, bot, 40000))
		f.write(time.Millisecond, failed("23#23", 100, bot, "x\n"+connectedPort("23#23", 99000000, bot, 40001)))
		f.line("front", 2*time.Millisecond, "2026/01/01 00:00:00 [notice] 1#1: start worker processes")
		for i := 1; i < 5; i++ {
			f.line("front", time.Duration(i)*time.Second, connectedPort("24#24", 100+i, bot, 40000+i))
			f.line("front", time.Duration(i)*time.Second+300*time.Microsecond, failed("24#24", 100+i, bot, "a"))
		}
		// The forged line took port 40001 first: that one attempt is
		// lost (an alias), every other counts.
		f.expect(bot+"×1", bot+"×1", bot+"×1", bot+"×1")
	})
	t.Run("a port reused after a failure is a new connection", func(t *testing.T) {
		f := newKernelFeed(t)
		f.k.connect(bot, 40000)
		for i := range 3 {
			off := time.Duration(i) * time.Millisecond
			f.line("front", off, connectedPort("23#23", 100+i, bot, 40000))
			f.line("front", off+200*time.Microsecond, failed("23#23", 100+i, bot, "a"))
		}
		f.expect(bot+"×1", bot+"×1", bot+"×1")
	})
	t.Run("guard camping sets nothing aside", func(t *testing.T) {
		const camper = "203.0.113.70"
		f := newKernelFeed(t)
		f.k.connect(camper, 1)
		f.line("front", 0, connectedPort("23#23", 1, camper, 1))
		for i := range 6 {
			f.k.connect(bot, uint16(41000+i))
			off := time.Duration(i) * 10 * time.Millisecond
			f.line("front", off, failed("23#23", 1, camper, "aaaa"))
			f.line("front", off+10*time.Microsecond, connectedPort("23#23", 10+i, bot, 41000+i))
			f.line("front", off+20*time.Microsecond, failed("23#23", 1, camper, "bbbb"))
			f.line("front", off+30*time.Microsecond, failed("23#23", 10+i, bot, "a"))
		}
		var n int
		for _, ev := range f.events {
			if ev.Addr.String() == bot {
				n++
			}
		}
		if n != 6 {
			t.Fatalf("bot counted %d of 6", n)
		}
	})
	t.Run("the record cannot be read: nothing counts", func(t *testing.T) {
		f := newKernelFeed(t)
		f.k.connect(bot, 40000)
		f.k.err = errors.New("netlink: no buffer space")
		f.line("front", 0, connectedPort("23#23", 100, bot, 40000))
		f.line("front", time.Millisecond, failed("23#23", 100, bot, "a"))
		f.expect()
		f.unseen(UnseenError, 1)
	})
}

func TestKernelModeDovecotAndAdmin(t *testing.T) {
	const bot, victim = "203.0.113.66", "198.51.100.53"
	f := newKernelFeed(t)
	f.k.connect(bot, 50000)
	// One Disconnected line per connection, at most 5 attempts in it.
	f.line("front", 0, dovecotFrom(bot, 50000, 9))
	f.line("front", time.Millisecond, dovecotFrom(bot, 50000, 3))
	f.line("front", 2*time.Millisecond, dovecotFrom(victim, 50000, 3))
	f.expect(bot + "×5")
	f.unseen(UnseenSpent, 1)
	f.unseen(UnseenConnection, 1)

	g := newKernelFeed(t)
	g.k.connect(bot, 50001)
	for i := range 7 {
		g.line("admin", time.Duration(i)*time.Second, adminFrom("alice@example.com", bot, 50001, fmt.Sprintf("%06x", i)))
	}
	// A username holding " from: VICTIM/PORT": the address is read from
	// the right, and the victim never connected anyway.
	g.line("admin", 8*time.Second, adminFrom("x from: "+victim+"/1", victim, 1, "abcdef"))
	g.expect(bot+"×1", bot+"×1", bot+"×1", bot+"×1", bot+"×1")
	g.unseen(UnseenSpent, 2)
	g.unseen(UnseenConnection, 1)
	if s := g.p.Stats(); !s.KernelMode || s.Witnessed != 5 {
		t.Fatalf("stats %+v", s)
	}
}

// FuzzKernelMode: whatever the lines and whatever the kernel holds, an
// event only names a connection the kernel holds, the tables keep their
// size, and nothing panics.
func FuzzKernelMode(f *testing.F) {
	for i, u := range fuzzUsers {
		f.Add(u, uint16(40000+i), uint8(i))
	}
	f.Fuzz(func(t *testing.T, user string, port uint16, mode uint8) {
		k := &kernelRecord{conns: map[netip.AddrPort]bool{}}
		if mode&1 != 0 {
			k.connect(fuzzClient.String(), port)
		}
		p := NewParser(ParserOptions{Witness: k, MaxConnections: 1024})
		c := fuzzClient.String()
		lines := []sources.Line{
			{Service: "front", Text: fmt.Sprintf("[info] 23#23: *100 client %s:%d connected to 0.0.0.0:25", c, port)},
			{Service: "front", Text: `[info] 23#23: *100 client login failed: "AUTH not supported" while in http auth state, client: ` + c + `, server: 0.0.0.0:25, login: "` + user + `"`},
			{Service: "admin", Text: "[2026-01-01 00:00:00,000] INFO in nginx: Login attempt for: " + user + "/imap/993 from: " + c + "/" + fmt.Sprint(port) + ": failed: badauth: 123456"},
			{Service: "front", Text: "Jan 01 00:00:00 imap-login: Info: Disconnected: Connection closed (auth failed, 9 attempts in 2 secs): user=<" + user + ">, method=PLAIN, rip=" + c + ", rport=" + fmt.Sprint(port) + ", lip=192.168.203.5, lport=993, TLS"},
		}
		for i, l := range lines {
			l.Container = "c1"
			l.Time = fuzzT0.Add(time.Duration(i) * time.Duration(mode) * time.Microsecond)
			for _, piece := range strings.FieldsFunc(l.Text, func(r rune) bool { return r == '\n' || r == '\r' }) {
				l.Text = piece
				ev, ok := p.Parse(l)
				if !ok {
					continue
				}
				checkInvariants(t, ev)
				if !ev.Witnessed {
					t.Fatalf("unwitnessed event %+v", ev)
				}
				if saw, _ := k.Saw(ev.Addr, ev.SrcPort); !saw {
					t.Fatalf("event for a connection the kernel never saw: %+v", ev)
				}
			}
		}
		// Allocated at first use, then never resized.
		if k, u := len(p.kconns.slots), len(p.tuples.slots); k != 0 && k != 1024 || u != 0 && u != 1024 {
			t.Fatalf("tables grew: %d, %d", len(p.kconns.slots), len(p.tuples.slots))
		}
	})
}

// TestLoggedInIsASuccess: Mailu 2.0's nginx "client logged in" (with the
// account admin answered) is a success on the client's own connection, in
// both modes; a forged one on a connection never opened is nothing.
func TestLoggedInIsASuccess(t *testing.T) {
	const user, bot = "203.0.113.2", "203.0.113.66"
	logged := func(id int, addr string) string {
		return fmt.Sprintf(`%s[info] 23#23: *%d client logged in, client: %s, server: 0.0.0.0:993, login: "alice@example.com"`, ts, id, addr)
	}
	f := newKernelFeed(t)
	f.k.connect(user, 40000)
	f.line("front", 0, connectedPort("23#23", 100, user, 40000))
	f.line("front", time.Millisecond, logged(100, user))
	f.line("front", 2*time.Millisecond, logged(101, bot))
	f.k.connect(user, 40001)
	f.line("front", 3*time.Millisecond, connectedPort("23#23", 102, user, 40001))
	f.line("front", 4*time.Millisecond, fmt.Sprintf(`%s[info] 23#23: *102 client logged in, client: %s, server: 0.0.0.0:993, login: "alice@example.com", upstream: 192.168.203.3:143`, ts, user))
	if len(f.events) != 2 || f.events[1].User != "alice@example.com" {
		t.Fatalf("kernel mode, with upstream: %+v", f.events)
	}
	f.events = f.events[:1]
	if len(f.events) != 1 || f.events[0].Kind != KindAuthSuccess || f.events[0].User != "alice@example.com" || f.events[0].Addr.String() != user {
		t.Fatalf("kernel mode: %+v", f.events)
	}
	tf := newFrontFeed(t)
	tf.at(0, connected("23#23", 100, user))
	tf.at(time.Second, logged(100, user))
	tf.at(2*time.Second, logged(101, bot))
	if len(tf.events) != 1 || tf.events[0].Kind != KindAuthSuccess {
		t.Fatalf("text mode: %+v", tf.events)
	}
}
