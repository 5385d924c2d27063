package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/bansd/bansd/prefix"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/store"
)

// The daemon is the control API's backend.
var _ control.Backend = (*daemon)(nil)

func toAPI(b store.Ban, evidence bool) control.Ban {
	out := control.Ban{
		Target: b.Target, Jail: b.Jail, Reason: b.Reason,
		Since: b.Since.UTC().Truncate(time.Second), Until: b.Until.UTC().Truncate(time.Second),
		Level: b.Level, Manual: b.Manual, Origin: origin(b),
	}
	if evidence {
		out.Evidence = b.Evidence
	}
	return out
}

func (d *daemon) Bans(jail string) []control.Ban {
	bans := d.mgr.Bans()
	out := make([]control.Ban, 0, len(bans))
	for _, b := range bans {
		if jail == "" || b.Jail == jail {
			out = append(out, toAPI(b, false))
		}
	}
	return out
}

// maxRefusalDetails bounds the per-target list in a refusal answer.
const maxRefusalDetails = 100

func (d *daemon) Ban(ctx context.Context, req control.BanRequest) (control.BanResult, error) {
	ctx, uid := withCaller(ctx)
	dur := manualBanTime
	if req.Duration != "" {
		var err error
		if dur, err = configs.ParseDuration(req.Duration); err != nil || dur <= 0 {
			return control.BanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: fmt.Sprintf("bad duration %q", req.Duration)}
		}
	}
	jail := "manual"
	if req.Jail != "" {
		if !configs.ValidName(req.Jail) {
			return control.BanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: fmt.Sprintf("bad jail name %q: letters, digits, '-' and '_', at most 64", req.Jail)}
		}
		jail = req.Jail
	}
	reason := req.Reason
	if reason == "" {
		reason = "manual ban"
	}
	if req.SkipProtected && req.Force {
		return control.BanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: "skip_protected and force exclude each other"}
	}
	now := time.Now()
	reqs := make([]ban.Request, 0, len(req.Targets))
	var (
		refused []string
		skipped []control.Skipped
	)
	for _, t := range req.Targets {
		if !t.IsValid() {
			return control.BanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: "invalid target"}
		}
		t, err := prefix.Normalize(t)
		if err != nil {
			return control.BanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: err.Error()}
		}
		if !req.Force {
			if rule, ok := d.engine.NeverBan(t, false); ok {
				if req.SkipProtected {
					skipped = append(skipped, control.Skipped{Target: t, Why: "never banned (" + rule + ")"})
					continue
				}
				if len(refused) < maxRefusalDetails {
					refused = append(refused, fmt.Sprintf("%s: never banned (%s)", t, rule))
				}
				continue
			}
		}
		reqs = append(reqs, ban.Request{Target: t, Jail: jail, Reason: reason, Duration: dur, Time: now, Manual: true, Force: req.Force})
	}
	if len(refused) > 0 {
		// All or nothing: an import with one protected line bans nothing.
		return control.BanResult{}, &control.HTTPError{Code: http.StatusConflict,
			Message: "refused: protected targets (nothing was banned; use --force to override)", Details: refused}
	}
	if req.SkipProtected {
		return d.banSkipping(ctx, reqs, skipped, uid)
	}
	n, err := d.mgr.BanMany(ctx, reqs)
	if err != nil {
		if errors.Is(err, ban.ErrRefused) {
			return control.BanResult{Banned: n}, &control.HTTPError{Code: http.StatusConflict, Message: err.Error()}
		}
		return control.BanResult{Banned: n}, err
	}
	d.shareManual(reqs)
	d.log.Info("manual ban", "targets", len(reqs), "banned", n, "duration", dur, "reason", reason, "jail", jail, "uid", uid)
	return control.BanResult{Banned: n}, nil
}

// banSkipping bans reqs one outcome each: what the ban manager refuses
// (too wide, loopback, never-ban) joins skipped instead of failing the lot.
func (d *daemon) banSkipping(ctx context.Context, reqs []ban.Request, skipped []control.Skipped, uid int) (control.BanResult, error) {
	errs, err := d.mgr.BanEach(ctx, reqs)
	if err != nil {
		return control.BanResult{}, err
	}
	var done []ban.Request
	for i, e := range errs {
		switch {
		case e == nil:
			done = append(done, reqs[i])
		case errors.Is(e, ban.ErrRefused):
			skipped = append(skipped, control.Skipped{Target: reqs[i].Target, Why: strings.TrimPrefix(e.Error(), ban.ErrRefused.Error()+": ")})
		default:
			return control.BanResult{Banned: len(done), Skipped: skipped}, fmt.Errorf("%s: %w", reqs[i].Target, e)
		}
	}
	d.shareManual(done)
	d.log.Info("manual ban from a list", "targets", len(reqs), "banned", len(done), "skipped", len(skipped), "uid", uid)
	return control.BanResult{Banned: len(done), Skipped: skipped}, nil
}

func (d *daemon) Unban(ctx context.Context, req control.UnbanRequest) (control.UnbanResult, error) {
	ctx, uid := withCaller(ctx)
	targets := req.Targets
	if req.Jail != "" || req.All {
		targets = nil
		for _, b := range d.mgr.Bans() {
			if req.All || b.Jail == req.Jail {
				targets = append(targets, b.Target)
			}
		}
	}
	for i, t := range targets {
		p, err := prefix.Normalize(t)
		if err != nil {
			return control.UnbanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: err.Error()}
		}
		targets[i] = p
	}
	n := 0
	if len(targets) > 0 {
		var err error
		if n, err = d.mgr.Unban(ctx, targets); err != nil {
			return control.UnbanResult{Unbanned: n}, err
		}
	}
	for _, t := range targets {
		d.engine.Forget(t)
	}
	d.shareUnbans(targets)
	d.log.Info("unban", "targets", len(targets), "unbanned", n, "jail", req.Jail, "all", req.All, "uid", uid)
	return control.UnbanResult{Unbanned: n}, nil
}

func (d *daemon) Why(ctx context.Context, a netip.Addr) (control.Why, error) {
	w := control.Why{Addr: a, Bans: []control.Ban{}, Windows: []control.WindowStatus{}}
	if rule, ok := d.engine.IsProtected(a); ok {
		w.Protected = rule
	}
	w.Windows = windowsToAPI(d.engine.Why(a))
	for _, b := range d.mgr.Bans() {
		if b.Target.Contains(a) {
			w.Bans = append(w.Bans, toAPI(b, true))
		}
	}
	h, err := d.db.History(netip.PrefixFrom(a, a.BitLen()))
	if err != nil {
		return w, fmt.Errorf("history: %w", err)
	}
	w.Offences, w.LastBan = h.Offences, h.LastBan
	for _, b := range w.Bans {
		// A network ban's escalation lives under the network.
		if !b.Target.IsSingleIP() {
			if hn, err := d.db.History(b.Target); err == nil && hn.Offences > w.Offences {
				w.Offences, w.LastBan = hn.Offences, hn.LastBan
			}
		}
	}
	return w, nil
}

func (d *daemon) Reload(ctx context.Context) control.ReloadResult {
	_, uid := withCaller(ctx)
	return d.reload(uid)
}

func (d *daemon) Status(ctx context.Context) control.Status {
	d.mu.Lock()
	st := control.Status{
		Version: version, PID: os.Getpid(), Started: d.started,
		Config: control.ConfigStatus{File: d.path, LoadedAt: d.loadedAt, LastReload: d.lastReload},
	}
	cfg := d.cfg
	d.mu.Unlock()
	st.Docker, st.Sources = d.sourceStatus()

	active := d.activeBans()
	st.Jails = d.jailStatus(cfg, active)

	st.Firewall = control.FirewallStatus{Table: "inet " + cfg.Firewall.Table, Priority: cfg.Firewall.Priority}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	fs, err := d.mgr.Status(fctx)
	cancel()
	if err != nil {
		st.Firewall.Error = err.Error()
	} else {
		st.Firewall = control.FirewallStatus{Table: fs.Table, Present: fs.Present, Hook: fs.Hook, Priority: fs.Priority, Error: fs.LastReconcileError}
		for _, s := range fs.Sets {
			st.Firewall.Elements += s.Elements
			st.Firewall.DroppedPackets += s.Packets
			st.Firewall.DroppedBytes += s.Bytes
		}
	}
	st.Attribution = d.attr.status(d.engine.Stats().Parser)
	st.Alarms = d.alarms.list()
	st.CrowdSec = d.crowdsecStatus()
	st.Blocklists = d.blocklistStatus()
	st.Notify = d.notify.status()
	if d.shield != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st.Shield = d.shield.status(sctx)
		cancel()
	}
	return st
}

// activeBans counts live bans per jail, with every configured jail.
func (d *daemon) activeBans() map[string]int {
	out := map[string]int{}
	for _, name := range d.config().JailNames() {
		out[name] = 0
	}
	for _, b := range d.mgr.Bans() {
		out[b.Jail]++
	}
	return out
}

func (d *daemon) kernelCounters(ctx context.Context) []setCounter {
	fs, err := d.mgr.Status(ctx)
	if err != nil {
		return nil
	}
	out := make([]setCounter, 0, len(fs.Sets))
	for _, s := range fs.Sets {
		out = append(out, setCounter{set: s.Name, packets: s.Packets, bytes: s.Bytes})
	}
	return out
}
