package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
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
		Since: b.Since.UTC().Truncate(time.Second),
		Level: b.Level, Manual: b.Manual, Origin: origin(b), Permanent: b.Permanent(),
	}
	if !out.Permanent {
		out.Until = b.Until.UTC().Truncate(time.Second)
	}
	if evidence {
		out.Evidence = b.Evidence
	}
	return out
}

func (d *daemon) Bans(jail string) []control.Ban {
	var keep func(store.Ban) bool
	if jail != "" {
		keep = func(b store.Ban) bool { return b.Jail == jail }
	}
	bans := d.mgr.BansWhere(keep)
	out := make([]control.Ban, 0, len(bans))
	for _, b := range bans {
		out = append(out, toAPI(b, false))
	}
	return out
}

// maxRefusalDetails bounds the per-target list in a refusal answer.
const maxRefusalDetails = 100

// permanent is the --for value of a ban without an end.
const permanent = "permanent"

// needsYes: a manual ban wider than /16 (IPv4) or /32 (IPv6) cuts off
// whole providers; the operator confirms it (--yes).
func needsYes(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() < 16
	}
	return p.Bits() < 32
}

func (d *daemon) Ban(ctx context.Context, req control.BanRequest) (control.BanResult, error) {
	ctx, uid := withCaller(ctx)
	dur := d.config().Ban.ManualBantime
	forever := req.Duration == permanent
	if req.Duration != "" && !forever {
		var err error
		if dur, err = configs.ParseDuration(req.Duration); err != nil || dur <= 0 || dur > configs.MaxBantime {
			return control.BanResult{}, &control.HTTPError{Code: http.StatusBadRequest,
				Message: fmt.Sprintf("bad duration %q: want a positive duration up to 10 years (\"1h\", \"1d\", \"1w\") or %q", req.Duration, permanent)}
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
	now := time.Now()
	reqs := make([]ban.Request, 0, len(req.Targets))
	if req.SkipProtected && req.Force {
		return control.BanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: "skip_protected and force exclude each other"}
	}
	var (
		refused, wide []string
		skipped       []control.Skipped
	)
	for _, t := range req.Targets {
		if !t.IsValid() {
			return control.BanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: "invalid target"}
		}
		t, err := prefix.Normalize(t)
		if err != nil {
			return control.BanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: err.Error()}
		}
		// The manager's own verdict, asked for every target first: an
		// import with one protected line bans nothing. Skipping them, the
		// ban itself refuses each (banSkipping), with no pass before.
		if !req.SkipProtected {
			if _, err := d.mgr.Check(t, req.Force); err != nil {
				if len(refused) < maxRefusalDetails {
					refused = append(refused, refusal(err))
				}
				continue
			}
		}
		if needsYes(t) && !req.Yes {
			if req.SkipProtected {
				skipped = append(skipped, control.Skipped{Target: t, Why: "wider than /16 (IPv4) or /32 (IPv6): confirm with --yes"})
				continue
			}
			if len(wide) < maxRefusalDetails {
				wide = append(wide, t.String())
			}
		}
		reqs = append(reqs, ban.Request{Target: t, Jail: jail, Reason: reason, Duration: dur, Permanent: forever, Time: now, Manual: true, Force: req.Force})
	}
	if len(refused) > 0 {
		return control.BanResult{}, &control.HTTPError{Code: http.StatusConflict,
			Message: "refused: protected targets (nothing was banned)", Details: refused}
	}
	if len(wide) > 0 {
		return control.BanResult{}, &control.HTTPError{Code: http.StatusConflict,
			Message: "refused: wider than /16 (IPv4) or /32 (IPv6); confirm with --yes (API: \"yes\": true); nothing was banned", Details: wide}
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
	how := dur.String()
	if forever {
		how = permanent
	}
	d.log.Info("manual ban", "targets", len(reqs), "banned", n, "duration", how, "reason", reason, "jail", jail, "uid", uid)
	return control.BanResult{Banned: n}, nil
}

// refusal is a refused ban's reason without the ErrRefused prefix.
func refusal(err error) string { return strings.TrimPrefix(err.Error(), ban.ErrRefused.Error()+": ") }

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
			skipped = append(skipped, control.Skipped{Target: reqs[i].Target, Why: refusal(e)})
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
		for _, b := range d.mgr.BansWhere(func(b store.Ban) bool { return req.All || b.Jail == req.Jail }) {
			targets = append(targets, b.Target)
		}
	}
	for i, t := range targets {
		p, err := prefix.Normalize(t)
		if err != nil {
			return control.UnbanResult{}, &control.HTTPError{Code: http.StatusBadRequest, Message: err.Error()}
		}
		targets[i] = p
	}
	var res control.UnbanResult
	// A named target inside a banned network stays dropped after its own
	// unban: the answer names those bans, and lifts them when asked to.
	var lift []netip.Prefix
	if len(req.Targets) > 0 {
		seen := map[netip.Prefix]bool{}
		for _, t := range targets {
			for _, c := range d.mgr.Covering(t) {
				if !seen[c.Target] {
					seen[c.Target] = true
					res.Covering = append(res.Covering, toAPI(c, false))
					lift = append(lift, c.Target)
				}
			}
		}
		res.CoveringLifted = req.Covering && len(lift) > 0
	}
	all := targets
	if res.CoveringLifted {
		all = append(slices.Clone(targets), lift...)
	}
	if len(all) > 0 {
		var err error
		if res.Unbanned, err = d.mgr.Unban(ctx, all); err != nil {
			return res, err
		}
	}
	for _, t := range all {
		d.engine.Forget(t)
	}
	d.shareUnbans(all)
	d.log.Info("unban", "targets", len(targets), "unbanned", res.Unbanned, "covering", len(res.Covering), "covering_lifted", res.CoveringLifted,
		"jail", req.Jail, "all", req.All, "uid", uid)
	return res, nil
}

func (d *daemon) Why(ctx context.Context, a netip.Addr) (control.Why, error) {
	w := control.Why{Addr: a, Bans: []control.Ban{}, Windows: []control.WindowStatus{}}
	if rule, ok := d.engine.IsProtected(a); ok {
		w.Protected = rule
	}
	w.Windows = windowsToAPI(d.engine.Why(a))
	bans := d.mgr.BansWhere(func(b store.Ban) bool { return b.Target.Contains(a) })
	withEv := make([]*store.Ban, len(bans))
	for i := range bans {
		withEv[i] = &bans[i]
	}
	if err := d.db.WithEvidence(withEv); err != nil {
		return w, fmt.Errorf("evidence of the bans of %s: %w", a, err)
	}
	for _, b := range bans {
		w.Bans = append(w.Bans, toAPI(b, true))
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

	active, permanent := d.banCounts()
	st.Jails = d.jailStatus(cfg, active)
	st.PermanentBans = permanent

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
	st.Attribution = d.attr.status(d.engine.Stats().Parser, d.engine.WarmStats().Parser)
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
	out, _ := d.banCounts()
	return out
}

// banCounts counts the live bans per jail (every configured jail named)
// and the permanent ones, in one pass over the bans.
func (d *daemon) banCounts() (perJail map[string]int, permanent int) {
	perJail = map[string]int{}
	for _, name := range d.config().JailNames() {
		perJail[name] = 0
	}
	d.mgr.EachBan(func(b store.Ban) {
		perJail[b.Jail]++
		if b.Permanent() {
			permanent++
		}
	})
	return perJail, permanent
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
