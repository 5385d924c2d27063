package ban

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/roottest"

	"github.com/bansd/bansd/jail"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/internal/netnstest"
	"github.com/bansd/bansd/store"
)

func testConfig(t testing.TB) *configs.Config {
	t.Helper()
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	// Tests trigger reconciles themselves unless they set a period.
	cfg.Firewall.Reconcile = time.Hour
	return cfg
}

func newNFT(t testing.TB, ns *netnstest.NS, cfg *configs.Config, opts ...NFTOption) *NFT {
	t.Helper()
	n, err := NewNFT(cfg.Firewall.Table, cfg.Firewall.Priority, append([]NFTOption{WithNetNS(ns.Fd()), WithScope(cfg.Firewall.Scope, cfg.Firewall.ScopePorts)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// ensuredNFT is newNFT with the default sets in place.
func ensuredNFT(t testing.TB, ns *netnstest.NS, cfg *configs.Config, opts ...NFTOption) *NFT {
	t.Helper()
	fw := newNFT(t, ns, cfg, opts...)
	if err := fw.Ensure(DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	return fw
}

func openStore(t testing.TB, path string) *store.DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "bansd.db")
	}
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// startManager runs a manager until the test ends and waits for its first
// reconcile.
func startManager(t testing.TB, opt Options) *Manager {
	t.Helper()
	m, err := NewManager(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("Run returned before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run not ready after 30 s")
	}
	return m
}

func waitFor(t testing.TB, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kernel lists the elements of our sets, with their remaining time.
func kernel(t testing.TB, fw *NFT) map[netip.Prefix]time.Duration {
	t.Helper()
	els, err := fw.List()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[netip.Prefix]time.Duration, len(els))
	for _, e := range els {
		out[e.Target] = e.Timeout
	}
	return out
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// v4 returns the i-th /32 in 10.0.0.0/8; it never reaches a real network:
// all kernel tests run in empty namespaces.
func v4(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
}

// clock is a settable Now for tests of the manager's own time logic.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// faultFW wraps the real firewall to inject the faults the kernel cannot
// produce on demand, and checks that every ban is in the store first.
type faultFW struct {
	Firewall
	db *store.DB

	mu        sync.Mutex
	failAdds  int
	notStored []netip.Prefix
}

func (f *faultFW) Add(els []Element) error {
	for _, e := range els {
		if _, ok, err := f.db.GetBan(e.Target); err != nil || !ok {
			f.mu.Lock()
			f.notStored = append(f.notStored, e.Target)
			f.mu.Unlock()
		}
	}
	f.mu.Lock()
	fail := f.failAdds > 0
	if fail {
		f.failAdds--
	}
	f.mu.Unlock()
	if fail {
		return errors.New("injected: netlink send failed")
	}
	return f.Firewall.Add(els)
}

func requireRoot(t testing.TB) {
	roottest.Require(t, "programs nftables in a network namespace")
}

// withConfig fills o's settings from cfg the way the daemon does, with the
// never-ban verdict of a real jail engine built from cfg.
func withConfig(t testing.TB, o Options, cfg *configs.Config) Options {
	t.Helper()
	o, err := configOptions(o, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func configOptions(o Options, cfg *configs.Config) (Options, error) {
	e, err := jail.NewEngine(cfg, jail.Options{})
	if err != nil {
		return o, fmt.Errorf("jail.NewEngine: %w", err)
	}
	o.NeverBan = e.NeverBan
	o.Batch, o.Reconcile = cfg.Firewall.Batch, cfg.Firewall.Reconcile
	o.Factor, o.BantimeMax, o.HistoryMaxAge = cfg.Ban.Factor, cfg.Ban.BantimeMax, cfg.Ban.HistoryMaxAge
	o.EvidenceLines = cfg.Engine.EvidenceLines
	return o, nil
}
