package parse

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/bansd/bansd/sources"
)

// frontFeed drives a Parser with front lines at controlled Docker times.
type frontFeed struct {
	t      *testing.T
	p      *Parser
	events []Event
}

func newFrontFeed(t *testing.T) *frontFeed {
	return &frontFeed{t: t, p: NewParser(ParserOptions{})}
}

// at feeds lines with Docker time base+off.
func (f *frontFeed) at(off time.Duration, lines ...string) {
	for _, l := range lines {
		if ev, ok := f.p.Parse(sources.Line{Service: "front", Container: "c1", Time: feedBase.Add(off), Text: l}); ok {
			f.events = append(f.events, ev)
		}
	}
}

// docker feeds what Docker makes of one write: split at LF (and CR, as
// Mailu 2024.06's Python pipe does), all in the same microsecond.
func (f *frontFeed) docker(off time.Duration, write string) {
	for i, l := range strings.FieldsFunc(write, func(r rune) bool { return r == '\n' || r == '\r' }) {
		f.at(off+time.Duration(i)*time.Microsecond, l)
	}
}

func (f *frontFeed) expect(addrs ...string) {
	f.t.Helper()
	var got []string
	for _, ev := range f.events {
		got = append(got, ev.Addr.String())
	}
	if strings.Join(got, " ") != strings.Join(addrs, " ") {
		f.t.Fatalf("events for %v, want %v", got, addrs)
	}
}

func (f *frontFeed) forged(reason string, n uint64) {
	f.t.Helper()
	if got := f.p.Stats().Forged[reason]; got != n {
		f.t.Fatalf("Forged[%s] = %d, want %d (all: %v)", reason, got, n, f.p.Stats().Forged)
	}
}

var feedBase = time.Date(2026, 1, 1, 0, 0, 0, 100e6, time.UTC)

const ts = "2026/01/01 00:00:00 "

func connected(worker string, id int, addr string) string {
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	return fmt.Sprintf("%s[info] %s: *%d client %s:40000 connected to 0.0.0.0:25", ts, worker, id, addr)
}

func failed(worker string, id int, addr, login string) string {
	return fmt.Sprintf(`%s[info] %s: *%d client login failed: "AUTH not supported" while in http auth state, client: %s, server: 0.0.0.0:25, login: "%s"`, ts, worker, id, addr, login)
}

func TestNginxCorroboration(t *testing.T) {
	const real, victim = "203.0.113.66", "198.51.100.1"
	t.Run("counted once on its own connection", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, real))
		f.at(time.Second, failed("23#23", 100, real, "a"))
		f.at(2*time.Second, failed("23#23", 100, real, "a"))
		f.expect(real)
		f.forged(ForgeRepeat, 1)
	})
	t.Run("never opened", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(time.Second, failed("23#23", 101, victim, "a"))
		f.expect()
		f.forged(ForgeUnopened, 1)
	})
	t.Run("opened for another address", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, real))
		f.at(time.Second, failed("23#23", 100, victim, "a"))
		f.expect()
		f.forged(ForgeOtherAddress, 1)
	})
	t.Run("connected twice: poisoned", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, victim))
		f.at(time.Second, connected("23#23", 100, victim))
		f.at(2*time.Second, failed("23#23", 100, victim, "a"))
		f.expect()
		f.forged(ForgePoisoned, 2)
	})
	t.Run("other worker", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, victim))
		f.at(time.Second, failed("9#9", 100, victim, "a"))
		f.expect()
		f.forged(ForgeWorker, 1)
	})
	t.Run("own time far from Docker's", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, victim))
		f.at(10*time.Second, failed("23#23", 100, victim, "a"))
		f.expect()
		f.forged(ForgeTime, 1)
	})
	t.Run("container in another time zone", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(-2*time.Hour, connected("23#23", 100, real))
		f.at(-2*time.Hour+time.Second, failed("23#23", 100, real, "a"))
		f.expect(real)
	})
	t.Run("timestamp-less copy of a timestamped connection", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, victim))
		f.at(time.Second, strings.TrimPrefix(failed("23#23", 100, victim, "a"), ts))
		f.expect()
		f.forged(ForgeFormat, 1)
	})
	t.Run("nginx restarted: CONNID reused much later", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, victim))
		late := ts[:11] + "00:20:00 "
		f.at(20*time.Minute, strings.Replace(connected("23#23", 100, real), ts, late, 1))
		f.at(20*time.Minute+time.Second, strings.Replace(failed("23#23", 100, real, "a"), ts, late, 1))
		f.expect(real)
	})
	t.Run("front container recreated", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, victim))
		f.p.Parse(sources.Line{Service: "front", Container: "c2", Time: feedBase.Add(time.Second), Text: failed("23#23", 100, victim, "a")})
		f.expect()
		f.forged(ForgeUnopened, 1)
	})
	t.Run("IPv6", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, "2001:db8::66"))
		f.at(time.Second, failed("23#23", 100, "2001:db8::66", "a"))
		f.expect("2001:db8::66")
	})
}

// TestNginxForgedLines writes whole nginx (and Dovecot) lines through a line
// feed in the username, as an attacker can.
func TestNginxForgedLines(t *testing.T) {
	const real, victim = "203.0.113.66", "198.51.100.1"
	forgedConn := connected("23#23", 200, victim)
	forgedFail := failed("23#23", 200, victim, "x")
	forgedDovecot := `Jan 01 00:00:00 imap-login: Info: Disconnected: Connection closed (auth failed, 5 attempts in 10 secs): user=<x>, method=PLAIN, rip=198.51.100.1, rport=1, lip=192.168.203.5, lport=993, TLS`
	forgedAdminLike := `[2026-01-01 00:00:00,100] INFO in nginx: Login attempt for: a/imap/993 from: 198.51.100.1/1: failed: badauth: 123456`
	cases := []struct {
		name, user string
	}{
		{"LF, quote left open", "x\n" + forgedConn + "\n" + forgedFail + "\nend"},
		{"LF, attacker closes the quote", `x"` + "\n" + forgedConn + "\n" + forgedFail[:len(forgedFail)-1]},
		{"CR split (2024.06 Python pipe)", "cr\r" + forgedConn + "\r" + forgedFail + "\rpart2 client: 8.8.8.8"},
		{"padding before the forged lines", "x\n" + strings.Repeat("pad\n", 100) + forgedConn + "\n" + forgedFail},
		{"forged Dovecot failure", `x"` + "\n" + forgedDovecot + "\n" + "y"},
		{"forged Dovecot failure, open quote", "x\n" + forgedDovecot},
		{"forged line without own timestamp", "x\n" + strings.TrimPrefix(forgedConn, ts) + "\n" + strings.TrimPrefix(forgedFail, ts)},
		{"injected client: field", "client: 8.8.8.8, server: 0.0.0.0:25"},
		{"admin-looking line in front", "x\n" + forgedAdminLike},
		{"STARTTLS marker in username", "a using starttls, server: 0.0.0.0:25, login: \"b\nclient: 8.8.8.8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFrontFeed(t)
			f.at(0, connected("23#23", 100, real))
			f.docker(time.Second, failed("23#23", 100, real, c.user))
			// 2.0 repeats the login field on later lines of the session.
			f.docker(time.Second+200*time.Millisecond, `2026/01/01 00:00:01 [crit] 23#23: *100 SSL_shutdown() failed while in http auth state, client: `+real+`, server: 0.0.0.0:25, login: "`+c.user+`"`)
			// The forged connection is never completed by a real line,
			// and the attacker's second try on it comes later.
			f.at(5*time.Second, strings.Replace(forgedFail, ts, "2026/01/01 00:00:05 ", 1))
			f.expect(real)
		})
	}
	t.Run("burst ends: unrelated real connection counts", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, real))
		f.docker(time.Second, failed("23#23", 100, real, "x\n"+forgedConn))
		f.at(2*time.Second, connected("23#23", 101, "203.0.113.67"))
		f.at(2*time.Second+time.Millisecond, failed("23#23", 101, "203.0.113.67", "y"))
		f.at(3*time.Second, `Jan 01 00:00:03 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=203.0.113.68, rport=1, lip=192.168.203.5, lport=993, TLS`)
		f.expect(real, "203.0.113.67", "203.0.113.68")
		f.forged(ForgeBurst, 1)
	})
	t.Run("other nginx lines with a login field open a burst", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, real))
		f.docker(time.Second, `2026/01/01 00:00:00 [info] 23#23: *100 client closed connection while in http auth state, client: `+real+`, server: 0.0.0.0:25, login: "x"`+"\n"+forgedDovecot)
		f.expect()
		f.forged(ForgeBurst, 1)
	})
	t.Run("HTTP access lines do not keep a burst open", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, real))
		f.docker(time.Second, failed("23#23", 100, real, "x"))
		for i := range 40 {
			f.at(time.Second+time.Duration(i)*3*time.Millisecond, `198.51.100.9 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "-"`)
		}
		f.at(time.Second+60*time.Millisecond, `Jan 01 00:00:01 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=203.0.113.68, rport=1, lip=192.168.203.5, lport=993, TLS`)
		f.expect(real, "203.0.113.68")
	})
	t.Run("continuation lines keep a burst open", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, real))
		f.docker(time.Second, failed("23#23", 100, real, "x"))
		for i := range 40 {
			f.at(time.Second+time.Duration(i)*3*time.Millisecond, "padding")
		}
		f.at(time.Second+118*time.Millisecond, `Jan 01 00:00:01 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=198.51.100.1, rport=1, lip=192.168.203.5, lport=993, TLS`)
		f.expect(real)
		f.forged(ForgeForeign, 1)
	})
	t.Run("no Docker time: burst counted in lines", func(t *testing.T) {
		p := NewParser(ParserOptions{})
		var got []string
		feed := func(s string) {
			for _, l := range strings.Split(s, "\n") {
				if ev, ok := p.Parse(sources.Line{Service: "front", Text: l}); ok {
					got = append(got, ev.Addr.String())
				}
			}
		}
		feed(connected("23#23", 100, real))
		feed(failed("23#23", 100, real, "x\n"+forgedConn+"\n"+forgedFail))
		if strings.Join(got, " ") != real {
			t.Fatalf("events %v, want only %s", got, real)
		}
	})
}

func TestNginxHugeAndOddLines(t *testing.T) {
	const real = "203.0.113.66"
	huge := strings.Repeat("client: 8.8.8.8, ", 1<<20/17)
	for name, user := range map[string]string{
		"1 MiB username":  huge,
		"invalid UTF-8":   "\xff\xfe client: 8.8.8.8 \xc3",
		"U+FFFD":          "\uFFFD\uFFFD client: 8.8.8.8",
		"quotes":          `"""`,
		"NUL and escapes": "\x00\x1b[31m\t",
	} {
		t.Run(name, func(t *testing.T) {
			f := newFrontFeed(t)
			f.at(0, connected("23#23", 100, real))
			f.at(time.Second, failed("23#23", 100, real, user))
			f.expect(real)
			if u := f.events[0].User; len(u) > maxUserLen {
				t.Fatalf("User is %d bytes", len(u))
			}
		})
	}
	p := NewParser(ParserOptions{})
	big := strings.Repeat("\xff2026/01/01 00:00:00 [info] 1#1: *1 client", 1<<20/40)
	for _, svc := range []string{"front", "admin", "smtp", "antispam"} {
		if ev, ok := p.Parse(sources.Line{Service: svc, Time: feedBase, Text: big}); ok {
			t.Fatalf("%s: garbage gave %+v", svc, ev)
		}
	}
}

// TestConnTableBounded opens ten million distinct connections.
func TestConnTableBounded(t *testing.T) {
	const maxConns = 1 << 16
	p := NewParser(ParserOptions{MaxConnections: maxConns})
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	buf := append(make([]byte, 0, 128), ts+"[info] 23#23: *"...)
	line := sources.Line{Service: "front", Container: "c", Time: feedBase}
	const n = 10_000_000
	for id := 1; id <= n; id++ {
		b := strconv.AppendInt(buf, int64(id), 10)
		b = append(b, " client 203.0.113."...)
		b = strconv.AppendInt(b, int64(id%250+1), 10)
		b = append(b, ":1 connected to 0.0.0.0:25"...)
		// No copy: the parser keeps nothing of a "connected" line's text,
		// and this keeps the test about the parser's memory, fast.
		line.Text = unsafe.String(&b[0], len(b))
		p.Parse(line)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if len(p.conns.slots) != maxConns {
		t.Fatalf("table has %d slots, want %d", len(p.conns.slots), maxConns)
	}
	// The slots are allocated at the first connection: the table itself
	// and at most 1 MiB besides.
	table := int64(maxConns) * int64(unsafe.Sizeof(connEntry{}))
	if grown := int64(ms.HeapAlloc) - int64(before); grown > table+1<<20 {
		t.Fatalf("heap grew by %d bytes over %d connections", grown, n)
	}
	// The oldest are gone, the newest are there.
	if _, ok := p.Parse(sources.Line{Service: "front", Container: "c", Time: feedBase, Text: failed("23#23", 1, "203.0.113.2", "a")}); ok {
		t.Fatal("evicted connection still counted")
	}
	if _, ok := p.Parse(sources.Line{Service: "front", Container: "c", Time: feedBase.Add(time.Second), Text: failed("23#23", n, fmt.Sprintf("203.0.113.%d", n%250+1), "a")}); !ok {
		t.Fatal("newest connection not counted")
	}
	if got := p.Stats().Forged[ForgeUnopened]; got != 1 {
		t.Fatalf("unopened = %d, want 1", got)
	}
}

// dockerSpaced feeds one write split at LF and CR, its pieces step apart
// (Docker's copier: a few µs; Mailu 2024.06's Python pipe: tens of µs; a
// stalled daemon: more). It returns the Docker time of the last piece.
func (f *frontFeed) dockerSpaced(off, step time.Duration, write string) time.Duration {
	pieces := strings.FieldsFunc(write, func(r rune) bool { return r == '\n' || r == '\r' })
	for i, l := range pieces {
		f.at(off+time.Duration(i)*step, l)
	}
	return off + time.Duration(len(pieces)-1)*step
}

// TestNginxFastBot replays what real nginx 1.22 under Docker logged for a
// bot that reconnects as soon as its failure arrives: the next "connected"
// line 1.8-3.2 ms after the previous failure (0.1 ms veth), the failure a
// few ms after its "connected" line. Every attempt counts, whatever the
// username, and nothing the usernames forge does.
func TestNginxFastBot(t *testing.T) {
	const bot, victim = "203.0.113.66", "198.51.100.1"
	users := map[string]func(id int) string{
		"plain": func(int) string { return "admin@example.com" },
		"quote": func(int) string { return `a"b` },
		"LF open": func(id int) string {
			return "x\n" + connected("23#23", 9000+id, victim) + "\n" + failed("23#23", 9000+id, victim, "y")
		},
		"LF closed quote": func(id int) string {
			f := failed("23#23", 9000+id, victim, "y")
			return `x"` + "\n" + connected("23#23", 9000+id, victim) + "\n" + f[:len(f)-1]
		},
		"CR split, own connected line": func(id int) string {
			// The forged connection is the bot's own next CONNID.
			return "cr\r" + connected("23#23", id+1, victim) + "\r" + failed("23#23", id+1, victim, "y") + "\rpart2"
		},
		"LF, forged Dovecot line": func(int) string {
			return "x\n" + `Jan 01 00:00:00 imap-login: Info: Disconnected: Connection closed (auth failed, 5 attempts in 10 secs): user=<x>, method=PLAIN, rip=198.51.100.1, rport=1, lip=192.168.203.5, lport=993, TLS`
		},
	}
	gaps := []time.Duration{1 * time.Millisecond, 1832 * time.Microsecond, 3217 * time.Microsecond}
	steps := map[string]time.Duration{"Docker read": 3 * time.Microsecond, "Python pipe": 60 * time.Microsecond}
	for name, user := range users {
		for sname, step := range steps {
			t.Run(name+"/"+sname, func(t *testing.T) {
				f := newFrontFeed(t)
				var off time.Duration = 7 * time.Millisecond
				const n = 6
				for i := range n {
					id := 100 + 2*i
					f.at(off, connected("23#23", id, bot))
					off += 4*time.Millisecond + 311*time.Microsecond
					off = f.dockerSpaced(off, step, failed("23#23", id, bot, user(id)))
					off += gaps[i%len(gaps)]
				}
				want := make([]string, n)
				for i := range want {
					want[i] = bot
				}
				f.expect(want...)
			})
		}
	}
}

// TestNginxParallelBot: five parallel IMAP sessions of one client on Mailu
// 2.0 (nginx proxies every port): connects close together, failures as
// admin answers them. All five count.
func TestNginxParallelBot(t *testing.T) {
	const bot = "203.0.113.66"
	f := newFrontFeed(t)
	for i := range 5 {
		f.at(time.Duration(i)*210*time.Microsecond, connected("23#23", 100+i, bot))
	}
	off := 9 * time.Millisecond
	for i := range 5 {
		f.docker(off, failed("23#23", 100+i, bot, `user"`+strconv.Itoa(i)))
		off += 1100*time.Microsecond + time.Duration(i)*400*time.Microsecond
	}
	f.expect(bot, bot, bot, bot, bot)
}

// TestNginxForgedSpreadOut: forged lines that a loaded Docker (or Python
// pipe) spread further apart than one read still name no third party.
func TestNginxForgedSpreadOut(t *testing.T) {
	const bot, victim = "203.0.113.66", "198.51.100.1"
	fresh := func(id int) string {
		return "x\n" + connected("23#23", id, victim) + "\n" + failed("23#23", id, victim, "y")
	}
	cases := []struct {
		name   string
		run    func(f *frontFeed)
		reason string
		n      uint64
	}{
		{"pieces 2 ms apart: foreign", func(f *frontFeed) {
			f.dockerSpaced(time.Second, 2*time.Millisecond, failed("23#23", 100, bot, fresh(101)))
		}, ForgeForeign, 1},
		{"padding keeps the window open", func(f *frontFeed) {
			f.dockerSpaced(time.Second, 3*time.Millisecond, failed("23#23", 100, bot, "x\n"+strings.Repeat("pad\n", 30)+connected("23#23", 101, victim)+"\n"+failed("23#23", 101, victim, "y")))
		}, ForgeForeign, 1},
		{"far-future CONNIDs after a stall", func(f *frontFeed) {
			f.at(time.Second, connected("23#23", 5000, "203.0.113.7"))
			f.dockerSpaced(time.Second+10*time.Millisecond, 0, failed("23#23", 100, bot, "x"))
			f.dockerSpaced(time.Second+50*time.Millisecond, 2*time.Millisecond, connected("23#23", 3000, victim)+"\n"+failed("23#23", 3000, victim, "y"))
		}, ForgeAhead, 2},
		{"forged login line naming the victim starts no trusted guard", func(f *frontFeed) {
			// After a stall the attacker's next piece is itself a
			// login line for the victim on a forged connection.
			f.dockerSpaced(time.Second, 0, failed("23#23", 100, bot, "x"))
			f.at(time.Second+30*time.Millisecond, failed("23#23", 300, victim, "z"))
			f.dockerSpaced(time.Second+35*time.Millisecond, 2*time.Millisecond, `2026/01/01 00:00:00 [crit] 23#23: *300 SSL_shutdown() failed while in http auth state, client: `+victim+`, server: 0.0.0.0:25, login: "`+fresh(301)+`"`)
		}, ForgeForeign, 1},
		{"slow pipe, long padding", func(f *frontFeed) {
			f.dockerSpaced(time.Second, 400*time.Microsecond, failed("23#23", 100, bot, "x\n"+strings.Repeat("p\n", 600)+dovecotLine(victim)))
		}, ForgeBurst, 1},
		{"pair spread over the window's end", func(f *frontFeed) {
			// The connected line in the window, the failure just
			// after it: closer than a real dialogue.
			f.dockerSpaced(time.Second, 8*time.Millisecond, failed("23#23", 100, bot, fresh(101)))
		}, ForgeForeign, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFrontFeed(t)
			f.at(0, connected("23#23", 100, bot))
			c.run(f)
			f.expect(bot)
			f.forged(c.reason, c.n)
		})
	}
}

func TestNginxFastAndStale(t *testing.T) {
	const real = "203.0.113.66"
	t.Run("pipelining bot: failure 300 µs after its connected line counts", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, real))
		f.at(300*time.Microsecond, failed("23#23", 100, real, "a"))
		f.at(time.Second, connected("23#23", 101, real))
		f.at(time.Second+time.Millisecond, failed("23#23", 101, real, "a"))
		// nginx answers AUTH on port 25 itself: 54 µs were seen live.
		f.at(2*time.Second, connected("23#23", 102, real))
		f.at(2*time.Second+50*time.Microsecond, failed("23#23", 102, real, "a"))
		f.expect(real, real, real)
	})
	t.Run("workers log a little out of order", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 2000, real))
		f.at(time.Millisecond, connected("24#24", 2000-connSlack, real))
		f.at(5*time.Millisecond, failed("24#24", 2000-connSlack, real, "a"))
		f.expect(real)
	})
	t.Run("another client connecting in a bot's window", func(t *testing.T) {
		// Many bots at once on port 25: one connects 4 ms after
		// another's failure; its own failure comes 45 ms later. Text
		// rules cannot tell it from a forged pair a stall spread out:
		// a suspect connection never counts (kernel mode counts it).
		const other = "203.0.113.80"
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 100, real))
		f.docker(5*time.Millisecond, failed("23#23", 100, real, "x"))
		f.at(9*time.Millisecond, connected("23#23", 101, other))
		f.at(54*time.Millisecond, failed("23#23", 101, other, "y"))
		f.at(time.Second, connected("23#23", 102, other))
		f.at(time.Second+45*time.Millisecond, failed("23#23", 102, other, "y"))
		f.expect(real, other)
		f.forged(ForgeForeign, 1)
	})
	t.Run("bot met mid-stream", func(t *testing.T) {
		// bansd starts reading after the bot's first "connected" line.
		f := newFrontFeed(t)
		f.docker(0, failed("23#23", 100, real, "x\n"+connected("23#23", 900, "198.51.100.1")))
		off := 2 * time.Millisecond
		for id := 101; id <= 103; id++ {
			f.at(off, connected("23#23", id, real))
			off += 4 * time.Millisecond
			f.docker(off, failed("23#23", id, real, `q"`))
			off += 2 * time.Millisecond
		}
		f.expect(real, real, real)
		f.forged(ForgeUnopened, 1)
		f.forged(ForgeBurst, 1)
	})
	t.Run("nginx restarted in the same container", func(t *testing.T) {
		f := newFrontFeed(t)
		f.at(0, connected("23#23", 50000, real))
		var off time.Duration
		// Paced beyond foreignWindow: a failure on a connection the
		// parser refused opens a window where everyone is foreign.
		for id := 1; id <= staleReset+1; id++ {
			off += 30 * time.Millisecond
			f.at(off, connected("40#40", id, real))
			off += 30 * time.Millisecond
			f.at(off, failed("40#40", id, real, "a"))
		}
		f.forged(ForgeStale, staleReset-1)
		f.forged(ForgeUnopened, staleReset-1)
		f.expect(real, real)
	})
}

// TestNginxNoDockerTimeBots: a file without Docker time. A bot's
// back-to-back attempts all count; its forged lines about others do not.
func TestNginxNoDockerTimeBots(t *testing.T) {
	const bot, victim = "203.0.113.66", "198.51.100.1"
	p := NewParser(ParserOptions{})
	var got []string
	feed := func(s string) {
		for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if ev, ok := p.Parse(sources.Line{Service: "front", Text: l}); ok {
				got = append(got, ev.Addr.String())
			}
		}
	}
	users := []string{"a", `q"`, "x\n" + connected("23#23", 900, victim) + "\n" + failed("23#23", 900, victim, "y"), "cr\r" + failed("23#23", 1, victim, "y")}
	for i, u := range users {
		feed(connected("23#23", 100+i, bot))
		feed(failed("23#23", 100+i, bot, u))
	}
	// Another client connecting in the span is suspect and never counts;
	// its next connection, after the span, does.
	const other = "203.0.113.80"
	feed(connected("23#23", 200, other))
	for range guardLines {
		feed(`198.51.100.9 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "-"`)
	}
	feed(failed("23#23", 200, other, "y"))
	for range guardLines {
		feed(`198.51.100.9 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "-"`)
	}
	feed(connected("23#23", 201, other))
	feed(failed("23#23", 201, other, "y"))
	if want := strings.Repeat(bot+" ", len(users)) + other; strings.Join(got, " ") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
	if n := p.Stats().Forged[ForgeForeign]; n != 3 {
		t.Fatalf("foreign = %d, want 3 (%v)", n, p.Stats().Forged)
	}
}

// TestNoDockerTimeDovecotCounts: without Docker time a Dovecot failure of
// another client right after an nginx login line counts (nothing tells it
// from a piece, and setting every such line aside hid real attackers), and
// the stats say the front lines were untimed and the Dovecot ones unguarded.
func TestNoDockerTimeDovecotCounts(t *testing.T) {
	const bot, other = "203.0.113.66", "203.0.113.80"
	p := NewParser(ParserOptions{})
	var got []string
	for _, l := range []string{connected("23#23", 100, bot), failed("23#23", 100, bot, "x"), dovecotLine(other), dovecotLine(other)} {
		if ev, ok := p.Parse(sources.Line{Service: "front", Text: l}); ok {
			got = append(got, ev.Addr.String())
		}
	}
	if want := bot + " " + other + " " + other; strings.Join(got, " ") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
	if st := p.Stats(); st.UntimedFront != 4 || st.UnguardedDovecot != 2 || st.Forged[ForgeForeign] != 0 {
		t.Fatalf("stats %+v, want 4 untimed front lines, 2 unguarded Dovecot lines, none foreign", st)
	}
}

func dovecotLine(addr string) string {
	return `Jan 01 00:00:00 imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=` + addr + `, rport=1, lip=192.168.203.5, lport=993, TLS`
}

// TestNginxHTTPFlood: HTTP access lines closer together than pieceGap do
// not make a whole busy second pieces: they go to nginx's stdout, never in
// a write of its error log, so they neither are pieces nor carry a chain.
func TestNginxHTTPFlood(t *testing.T) {
	const bot, other = "203.0.113.66", "203.0.113.80"
	f := newFrontFeed(t)
	f.at(0, connected("23#23", 100, bot))
	f.docker(5*time.Millisecond, failed("23#23", 100, bot, "x"))
	off := 5 * time.Millisecond
	for range 2300 {
		off += 100 * time.Microsecond
		f.at(off, `198.51.100.9 - - [01/Jan/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "-"`)
	}
	f.at(off+100*time.Microsecond, dovecotLine(other))
	f.expect(bot, other)
}

// TestNginxParallelSessionsTogether: the failures of one client's parallel
// sessions can reach Docker microseconds apart (admin answers them all at
// once): each is a "piece" after the previous login line, yet each is the
// same client on its own real connection, and counts. Connections another
// client opens in between do not make that client's lines count as pieces.
func TestNginxParallelSessionsTogether(t *testing.T) {
	const bot, victim = "203.0.113.66", "198.51.100.1"
	f := newFrontFeed(t)
	for i := range 5 {
		f.at(time.Duration(i)*20*time.Microsecond, connected("23#23", 100+i, bot))
	}
	off := 30 * time.Millisecond
	for i := range 5 {
		f.docker(off, failed("23#23", 100+i, bot, "alice@example.com"))
		off += 15 * time.Microsecond
	}
	// A piece naming the victim right after them still counts for nobody.
	f.docker(off, connected("23#23", 105, victim))
	f.docker(off+10*time.Microsecond, failed("23#23", 105, victim, "y"))
	f.expect(bot, bot, bot, bot, bot)
}

// TestNginxRestartInPlace: nginx restarted inside the same container (its
// CONNIDs start at 1 again, seconds later) must not make the new
// connections look reused.
func TestNginxRestartInPlace(t *testing.T) {
	const a, b = "203.0.113.20", "203.0.113.30"
	f := newFrontFeed(t)
	off := time.Duration(0)
	for i := 1; i <= 3; i++ {
		f.at(off, connected("23#23", i, a))
		f.docker(off+20*time.Millisecond, failed("23#23", i, a, "x"))
		off += 100 * time.Millisecond
	}
	f.at(off+time.Second, "2026/11/27 10:00:01 [notice] 1#1: start worker processes")
	off += 2 * time.Second
	for i := 1; i <= 4; i++ {
		f.at(off, connected("31#31", i, b))
		f.docker(off+20*time.Millisecond, failed("31#31", i, b, "x"))
		off += 100 * time.Millisecond
	}
	f.expect(a, a, a, b, b, b, b)
}

// TestTextRulesCampingIsForgery is why the text rules cannot count a bot
// while another client camps on the guard (issue 10, item 8), and why
// that stays so (README, Security: text mode). A camper's non-attempt
// login line, then a bot's real "connected" and failure lines, read by
// Docker in one read (dockerd behind under load: the attacker can load the
// machine) are, byte for byte and in Docker time, the lines of one nginx
// write whose username forges the bot's lines with the next CONNID, which
// an attacker can guess (a wrong guess is only refused). Any rule over the
// text, its order and Docker time judges both alike: counting the camped
// bot would let the forger frame any address. The rules count neither.
func TestTextRulesCampingIsForgery(t *testing.T) {
	const camper, bot = "203.0.113.70", "203.0.113.80"
	carrier := fmt.Sprintf(`%s[info] 23#23: *100 client sent invalid base64 encoding in AUTH LOGIN command while in auth state, client: %s, server: 0.0.0.0:25, login: "`, ts, camper)
	botConn := connected("23#23", 101, bot)
	botFail := failed("23#23", 101, bot, "camped0")
	const step = 2 * time.Microsecond

	// Camping: three writes, of the camper's line and the bot's two.
	camping := []string{carrier + `camp0a"`, botConn, botFail}
	// Forgery: one write, the username closing its own quote; nginx adds
	// the last one.
	write := carrier + `camp0a"` + "\n" + botConn + "\n" + strings.TrimSuffix(botFail, `"`) + `"`
	forgery := strings.Split(write, "\n")
	if strings.Join(camping, "\n") != strings.Join(forgery, "\n") {
		t.Fatalf("the constructions differ:\n%q\n%q", camping, forgery)
	}
	// One input, so one verdict for both: the forged bot is not counted.
	f := newFrontFeed(t)
	f.at(0, connected("23#23", 100, camper))
	for i, l := range forgery {
		f.at(time.Second+time.Duration(i)*step, l)
	}
	f.expect()
}
