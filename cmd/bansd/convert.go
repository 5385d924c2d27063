package main

import (
	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/sources/docker"
	"github.com/bansd/bansd/store"
	"log/slog"
	"net/netip"
	"sort"
	"strings"

	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/jail"
)

func windowsToAPI(ws []jail.WindowState) []control.WindowStatus {
	out := make([]control.WindowStatus, 0, len(ws))
	for _, w := range ws {
		ws := control.WindowStatus{Jail: w.Jail, Target: w.Key, Count: w.Count, MaxRetry: w.MaxRetry, FindTime: w.FindTime.String()}
		if w.MinAddresses > 1 {
			ws.Addresses = w.Addresses
		}
		out = append(out, ws)
	}
	return out
}

// jailStatus reports every configured jail; a jail's events are those of
// the kinds it counts.
func (d *daemon) jailStatus(cfg *configs.Config, active map[string]int) []control.JailStatus {
	st := d.engine.Stats()
	out := make([]control.JailStatus, 0, len(cfg.Jails)+1)
	for _, name := range cfg.JailNames() {
		j := cfg.Jails[name]
		js := control.JailStatus{Name: name, Enabled: j.Enabled, Decisions: st.Decisions[name], ActiveBans: active[name]}
		for _, k := range j.Events {
			js.Events += st.Events[k]
		}
		out = append(out, js)
	}
	// Manual bans, and bans of jails a reload removed.
	extra := make([]string, 0, 1)
	for name := range active {
		if _, ok := cfg.Jails[name]; !ok {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		out = append(out, control.JailStatus{Name: name, Enabled: name == "manual", ActiveBans: active[name]})
	}
	return out
}

func (d *daemon) engineEvents() map[string]uint64 {
	return d.engine.Stats().Events
}

func (d *daemon) parserStats() parse.ParserStats { return d.engine.Stats().Parser }

// warmupStatus converts a service's warm-up. blind: the kernel record
// started empty (attribution.emptyAtStart), so none of the replayed lines
// could be corroborated.
func warmupStatus(w docker.WarmupStatus, blind string) *control.WarmupStatus {
	if w.State == "" {
		return nil
	}
	from := w.Want
	if w.First.After(from) {
		from = w.First
	}
	out := &control.WarmupStatus{State: w.State, Lines: w.Lines, Skipped: w.Skipped, From: from, Until: w.Until,
		Seconds: w.Took.Seconds(), Why: w.Why}
	if blind != "" && w.Lines > 0 {
		out.State = docker.WarmupPartial
		out.Why = strings.TrimPrefix(out.Why+"; "+blind, "; ")
	}
	return out
}

// sourceStatus summarises the Docker source for status.
func (d *daemon) sourceStatus() (control.DockerStatus, []control.SourceStatus) {
	st := d.docker.Status()
	info := d.docker.Mailu()
	ds := control.DockerStatus{Project: info.Project}
	out := make([]control.SourceStatus, 0, len(st))
	reconnecting := false
	blind := d.attr.emptyAtStart()
	for _, s := range st {
		out = append(out, control.SourceStatus{
			Service: s.Service, Container: s.Container, State: s.State, Lines: s.Lines,
			LagSeconds: s.Lag.Seconds(), Reconnects: uint64(s.Reconnects), LastError: s.LastError, LastLine: s.LastLine,
			Warmup: warmupStatus(s.Warmup, blind),
		})
		if s.State == docker.StateReconnecting {
			reconnecting = true
		}
		if ds.Error == "" {
			ds.Error = s.LastError
		}
	}
	switch {
	case info.ServerVersion == "":
		// The engine never answered: the source retries with backoff.
		ds.State = "waiting for dockerd at " + d.docker.Host() + " (retrying)"
	case reconnecting:
		ds.State = "reconnecting to dockerd (retrying)"
	case info.Project == "":
		ds.State = "waiting for the Mailu project"
	default:
		ds.State = "following"
	}
	return ds, out
}

func (d *daemon) sourceStates() []sourceSample {
	st := d.docker.Status()
	out := make([]sourceSample, 0, len(st))
	for _, s := range st {
		out = append(out, sourceSample{service: s.Service, state: s.State, lag: s.Lag.Seconds(), reconnects: uint64(s.Reconnects)})
	}
	return out
}

// cursorStore keeps the Docker source's cursors in the store, converting
// between the two packages' Cursor types so neither imports the other.
type cursorStore struct{ db *store.DB }

func (s cursorStore) Cursor(key string) (docker.Cursor, bool, error) {
	c, ok, err := s.db.Cursor(key)
	return docker.Cursor(c), ok, err
}

func (s cursorStore) PutCursors(cs map[string]docker.Cursor) error {
	m := make(map[string]store.Cursor, len(cs))
	for k, c := range cs {
		m[k] = store.Cursor(c)
	}
	return s.db.PutCursors(m)
}

// requestFrom turns a jail's decision into a ban request.
func requestFrom(d jail.Decision) ban.Request {
	return ban.Request{Target: d.Target, Jail: d.Jail, Reason: d.Reason, Duration: d.Duration, Time: d.Time, Evidence: d.Evidence}
}

// banOptions gives the ban manager the settings it needs from cfg.
func banOptions(cfg *configs.Config, fw ban.Firewall, db *store.DB, neverBan func(netip.Prefix, bool) (string, bool, bool), log *slog.Logger) ban.Options {
	return ban.Options{
		Firewall: fw, Store: db, NeverBan: neverBan, Logger: log,
		Batch: cfg.Firewall.Batch, Reconcile: cfg.Firewall.Reconcile,
		Factor: cfg.Ban.Factor, BantimeMax: cfg.Ban.BantimeMax, HistoryMaxAge: cfg.Ban.HistoryMaxAge,
		EvidenceLines: cfg.Engine.EvidenceLines,
	}
}
