package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/seen"
)

// attribution keeps the engine on the kernel's word about who connected:
// it owns the kernel record (package seen), gives it Mailu's published
// ports, repairs it, and drops the engine to the text rules when the record
// cannot be had or cannot see the clients (Mailu behind a remote proxy).
type attribution struct {
	log    *slog.Logger
	engine *jail.Engine
	rec    *seen.Record // nil: text mode from the start

	mu      sync.Mutex
	mode    string // "kernel" or "text"
	why     string // why text mode, or a problem of the record
	ports   []uint16
	problem string
	full    bool
}

// kernelWitness answers the engine from the kernel record. Each lookup is
// one netlink round trip (tens of microseconds). seen checks its context
// only before the call (the library's lasting socket takes no deadline),
// so a per-lookup timer would cost an allocation on the hot path and bound
// nothing.
type kernelWitness struct{ rec *seen.Record }

func (w kernelWitness) Saw(a netip.Addr, port uint16) (bool, error) {
	s, err := w.rec.Seen(context.Background(), a, port)
	return s.Seen, err
}

// startAttribution opens and ensures the record when the config asks for
// kernel mode, and sets the engine's mode.
func startAttribution(ctx context.Context, cfg *configs.Config, e *jail.Engine, log *slog.Logger, netns int) *attribution {
	a := &attribution{log: log, engine: e, mode: "text"}
	if cfg.Firewall.Attribution != "kernel" {
		a.why = "firewall.attribution = \"text\""
		e.SetWitness(nil)
		return a
	}
	rec, err := seen.Open(seen.Options{Table: cfg.Firewall.Table, Timeout: cfg.Firewall.SeenTimeout,
		Size: uint32(cfg.Firewall.SeenSize), NetNS: netns})
	if err == nil {
		err = rec.Ensure(ctx)
		if err != nil {
			rec.Close()
		}
	}
	if err != nil {
		a.why = "the kernel record of connections is unavailable: " + err.Error()
		log.Error("attribution falls back to the text rules", "err", err)
		e.SetWitness(nil)
		return a
	}
	a.rec, a.mode = rec, "kernel"
	e.SetWitness(kernelWitness{rec})
	if rec.EmptyAtStart() {
		log.Warn("attribution: " + recordEmpty)
	}
	log.Info("attribution: a line counts only for a connection the kernel saw", "table", cfg.Firewall.Table,
		"chains", seen.ChainName+","+seen.LocalChainName, "timeout", cfg.Firewall.SeenTimeout)
	return a
}

// mailu applies what discovery found: the ports to record (sorted, no
// repeats: docker.MailuInfo.Ports), and whether the kernel can see Mailu's
// clients at all.
func (a *attribution) mailu(ctx context.Context, ports []uint16, env map[string]string) {
	if a.rec == nil {
		return
	}
	blind := kernelBlind(env)
	a.mu.Lock()
	changed := !slices.Equal(ports, a.ports)
	a.ports = ports
	was := a.mode
	a.mu.Unlock()
	if changed && len(ports) > 0 {
		if err := a.rec.SetPorts(ctx, ports); err != nil {
			a.log.Error("attribution: set ports", "ports", ports, "err", err)
			a.setProblem(err.Error(), false)
		} else {
			a.log.Info("attribution: recording connections to Mailu's ports", "ports", ports)
		}
	}
	switch {
	case blind != "" && was == "kernel":
		a.log.Warn("attribution falls back to the text rules: the kernel cannot see Mailu's clients", "why", blind)
		a.engine.SetWitness(nil)
		a.setMode("text", blind)
	case blind == "" && was == "text":
		a.log.Info("attribution back on the kernel's word")
		a.engine.SetWitness(kernelWitness{a.rec})
		a.setMode("kernel", "")
	}
}

// kernelBlind says why the kernel cannot see Mailu's real clients, from
// Mailu's environment: a PROXY protocol header or a trusted proxy's header
// carries the client, and the kernel only sees the proxy.
func kernelBlind(env map[string]string) string {
	if v := env["PROXY_PROTOCOL"]; v != "" {
		return fmt.Sprintf("Mailu takes clients from the PROXY protocol (PROXY_PROTOCOL=%s): the kernel sees the proxy", v)
	}
	if v := env["REAL_IP_FROM"]; v != "" {
		return fmt.Sprintf("Mailu trusts a proxy for the client address (REAL_IP_FROM=%s): the kernel sees the proxy", v)
	}
	return ""
}

func (a *attribution) setMode(mode, why string) {
	a.mu.Lock()
	a.mode, a.why = mode, why
	a.mu.Unlock()
}

func (a *attribution) setProblem(p string, full bool) {
	a.mu.Lock()
	a.problem, a.full = p, full
	a.mu.Unlock()
}

// check repairs the record when someone wiped it, and notes a full set.
func (a *attribution) check(ctx context.Context) {
	if a == nil || a.rec == nil {
		return
	}
	h, err := a.rec.Health(ctx)
	if err != nil {
		a.setProblem(err.Error(), false)
		return
	}
	if !h.Intact {
		a.log.Warn("attribution: kernel record damaged, repairing", "problem", h.Problem)
		if err := a.rec.Ensure(ctx); err != nil {
			a.setProblem(h.Problem+"; repair failed: "+err.Error(), false)
			return
		}
	}
	p := ""
	if h.Full {
		p = "a set of the kernel record is full (firewall.seen_size): new connections are not recorded and their lines do not count"
		a.log.Warn("attribution: " + p)
	}
	a.setProblem(p, h.Full)
}

// status reports the mode and the counts of live lines (ps) and of the
// warm-up's (warm).
func (a *attribution) status(ps, warm parse.ParserStats) control.AttributionStatus {
	if a == nil {
		return control.AttributionStatus{Mode: "text", Why: "not started"}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return control.AttributionStatus{Mode: a.mode, Why: a.why, Ports: slices.Clone(a.ports), Problem: a.problem,
		Witnessed: ps.Witnessed, Uncorroborated: ps.Uncorroborated,
		WarmupWitnessed: warm.Witnessed, WarmupUncorroborated: nonZero(warm.Uncorroborated)}
}

// nonZero drops the zero counts (nil when none is left).
func nonZero(m map[string]uint64) map[string]uint64 {
	var out map[string]uint64
	for k, n := range m {
		if n > 0 {
			if out == nil {
				out = map[string]uint64{}
			}
			out[k] = n
		}
	}
	return out
}

// recordEmpty is why a warm-up in kernel mode rebuilds nothing after a
// reboot.
const recordEmpty = "the kernel record of connections started empty (a reboot, or the first start): the lines read again at start are uncorroborated and do not count, so the windows were not rebuilt"

// emptyAtStart is recordEmpty while the engine is in kernel mode on a
// record that started empty; "" otherwise.
func (a *attribution) emptyAtStart() string {
	if a == nil || a.rec == nil || !a.rec.EmptyAtStart() {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mode != "kernel" {
		return ""
	}
	return recordEmpty
}

func (a *attribution) close() {
	if a != nil && a.rec != nil {
		a.rec.Close()
	}
}
