package seen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/bansd/bansd/internal/netnstest"
)

// fillSeen4 writes n elements "10.x.y.z . 1025+i%60000" from userspace, in
// chunks the default wmem_max takes (the packet path writes the same keys).
func fillSeen4(b testing.TB, ns *netnstest.NS, n int) {
	b.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	s := &nftables.Set{Table: &nftables.Table{Family: nftables.TableFamilyINet, Name: "bansd"}, Name: Seen4}
	for start := 0; start < n; start += 2000 {
		var els []nftables.SetElement
		for i := start; i < min(n, start+2000); i++ {
			_, k := lookupKey(benchAddr(i), benchPort(i))
			els = append(els, nftables.SetElement{Key: k})
		}
		if err := c.SetAddElements(s, els); err != nil {
			b.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			b.Fatalf("fill %d: %v", start, err)
		}
	}
}

func benchAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}
func benchPort(i int) uint16 { return uint16(1025 + i%60000) }

// BenchmarkSeen: single-element lookups in a set of 10k elements.
func BenchmarkSeen(b *testing.B) {
	requireRoot(b)
	ns := netnstest.New(b)
	r := openRecord(b, ns, Options{}, 25)
	const n = 10000
	fillSeen4(b, ns, n)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		hit  bool
	}{{"hit", true}, {"miss", false}} {
		b.Run(tc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				a, p := benchAddr(i%n), benchPort(i%n)
				if !tc.hit {
					a = benchAddr(n + i%n)
				}
				s, err := r.Seen(ctx, a, p)
				if err != nil || s.Seen != tc.hit {
					b.Fatalf("Seen(%s, %d) = %+v, %v", a, p, s, err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
		})
	}
}

// benchTopo is buildTopo with a Docker-like baseline: empty nat chains, so
// conntrack runs in every variant (as it does on any Docker host), and a
// client that may reuse TIME_WAIT ports.
func benchTopo(b *testing.B) topo {
	tp := buildTopo(b)
	for _, fam := range []string{"ip", "ip6"} {
		tp.host.Run(b, "nft", "add", "table", fam, "nat")
		tp.host.Run(b, "nft", "add", "chain", fam, "nat", "pre", "{ type nat hook prerouting priority -100; }")
	}
	sysctl(b, tp.client, "net/ipv4/ip_local_port_range", "1024 65535")
	sysctl(b, tp.client, "net/ipv4/tcp_tw_reuse", "1")
	return tp
}

// variants runs fn without the record's chain, with it writing by
// "update" and with it writing by "add", in the same run.
func variants(b *testing.B, tp topo, fn func(b *testing.B)) {
	r := openRecord(b, tp.host, Options{}, portIn)
	ctx := context.Background()
	for _, v := range []string{"without", "update", "add"} {
		b.Run(v, func(b *testing.B) {
			tp.host.Exec("nft", "delete", "table", "inet", "bansd")
			if v != "without" {
				r.refresh = v == "update"
				if err := r.Ensure(ctx); err != nil {
					b.Fatal(err)
				}
			}
			fn(b)
			if v != "without" {
				n, err := r.Count(ctx, Seen4)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(n), "elements")
			}
		})
	}
}

// BenchmarkConnections: full TCP connections (handshake, one line, close)
// from the client through the host's prerouting, one at a time.
func BenchmarkConnections(b *testing.B) {
	tp := benchTopo(b)
	listen(b, tp.host, ":8025")
	addr := hostPort(hostC4, portIn)
	variants(b, tp, func(b *testing.B) {
		err := tp.client.Do(func() error {
			d := net.Dialer{Timeout: time.Second}
			for b.Loop() {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					return err
				}
				if _, err := c.Write([]byte("QUIT\r\n")); err != nil {
					return err
				}
				c.Close()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	})
}

// echoServer echoes every connection to port 8025 in the host namespace
// until the benchmark ends.
func echoServer(b *testing.B, tp topo) {
	b.Helper()
	tp.host.Serve(b, ":8025", func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// BenchmarkRoundTrips: one connection, a 1-byte request and reply per op:
// every request is a packet of an assured connection through the rule.
func BenchmarkRoundTrips(b *testing.B) {
	tp := benchTopo(b)
	echoServer(b, tp)
	variants(b, tp, func(b *testing.B) {
		c, err := dial(tp.client, hostPort(hostC4, portIn))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		buf := []byte{'x'}
		for b.Loop() {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
	})
}

// BenchmarkElementMemory: kernel memory (SUnreclaim, machine-wide, so
// noisy) per element of seen4, and the time Health takes at that size.
func BenchmarkElementMemory(b *testing.B) {
	requireRoot(b)
	const n = 100000
	for b.Loop() {
		ns := netnstest.New(b)
		r := openRecord(b, ns, Options{}, 25)
		runtimeSettle()
		before := sunreclaim(b)
		fillSeen4(b, ns, n)
		runtimeSettle()
		after := sunreclaim(b)
		b.ReportMetric(float64(after-before)/n, "B/elem")
		start := time.Now()
		if h := mustHealth(b, r); !h.OK() {
			b.Fatalf("Health = %+v", h)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "health-ms")
		start = time.Now()
		got, err := r.Count(context.Background(), Seen4)
		if err != nil || got != n {
			b.Fatalf("Count = %d, %v; want %d", got, err, n)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "count-ms")
	}
}

func runtimeSettle() { time.Sleep(300 * time.Millisecond) }

func sunreclaim(b testing.TB) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "SUnreclaim:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal(fmt.Errorf("no SUnreclaim in /proc/meminfo"))
	return 0
}

// BenchmarkConnectionsInterleaved alternates the three variants in chunks
// of 500 connections (20 rounds) inside one process, so that the load of a
// shared machine falls on all three alike; run it with -benchtime 1x. It
// reports each variant's rate and its ratio to "without".
func BenchmarkConnectionsInterleaved(b *testing.B) {
	tp := benchTopo(b)
	listen(b, tp.host, ":8025")
	addr := hostPort(hostC4, portIn)
	r := openRecord(b, tp.host, Options{}, portIn)
	ctx := context.Background()
	const rounds, chunk = 20, 500
	for b.Loop() {
		spent := map[string]time.Duration{}
		for range rounds {
			for _, v := range []string{"without", "update", "add"} {
				tp.host.Exec("nft", "delete", "table", "inet", "bansd")
				if v != "without" {
					r.refresh = v == "update"
					if err := r.Ensure(ctx); err != nil {
						b.Fatal(err)
					}
				}
				err := tp.client.Do(func() error {
					d := net.Dialer{Timeout: time.Second}
					start := time.Now()
					for range chunk {
						c, err := d.Dial("tcp", addr)
						if err != nil {
							return err
						}
						if _, err := c.Write([]byte("QUIT\r\n")); err != nil {
							return err
						}
						c.Close()
					}
					spent[v] += time.Since(start)
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		for _, v := range []string{"without", "update", "add"} {
			b.ReportMetric(rounds*chunk/spent[v].Seconds(), v+"-conns/s")
		}
		b.ReportMetric(spent["without"].Seconds()/spent["update"].Seconds(), "update/without")
		b.ReportMetric(spent["without"].Seconds()/spent["add"].Seconds(), "add/without")
	}
}

// BenchmarkRoundTripsInterleaved is BenchmarkRoundTrips with the variants
// alternated in chunks of 2000 round trips (20 rounds) on one connection
// per chunk; run it with -benchtime 1x.
func BenchmarkRoundTripsInterleaved(b *testing.B) {
	tp := benchTopo(b)
	echoServer(b, tp)
	r := openRecord(b, tp.host, Options{}, portIn)
	ctx := context.Background()
	const rounds, chunk = 20, 2000
	for b.Loop() {
		spent := map[string]time.Duration{}
		for range rounds {
			for _, v := range []string{"without", "update", "add"} {
				tp.host.Exec("nft", "delete", "table", "inet", "bansd")
				if v != "without" {
					r.refresh = v == "update"
					if err := r.Ensure(ctx); err != nil {
						b.Fatal(err)
					}
				}
				c, err := dial(tp.client, hostPort(hostC4, portIn))
				if err != nil {
					b.Fatal(err)
				}
				buf := []byte{'x'}
				start := time.Now()
				for range chunk {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Fatal(err)
					}
				}
				spent[v] += time.Since(start)
				c.Close()
			}
		}
		for _, v := range []string{"without", "update", "add"} {
			b.ReportMetric(float64(spent[v].Nanoseconds())/(rounds*chunk), v+"-ns/rt")
		}
	}
}
