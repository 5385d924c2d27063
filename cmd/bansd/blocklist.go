package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/blocklist"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/control"
	"github.com/bansd/bansd/store"
)

// blocklistRetry bounds the wait before a failed fetch is tried again.
const blocklistRetry = 5 * time.Minute

// blocklists enforces the configured [blocklists.NAME], each as the bans
// of jail blocklist:NAME, refreshed in the background. applyMu orders
// the lists' replacements, so that a target two lists hold is never
// lifted by the one that dropped it; mu guards the lists' state, and is
// never held while the ban manager works (status stays quick).
type blocklists struct {
	mgr *ban.Manager
	db  *store.DB
	log *slog.Logger
	hc  *http.Client

	applyMu sync.Mutex
	mu      sync.Mutex
	lists   map[string]*listState
}

// listState is one list: the version enforced now and how its fetches went.
type listState struct {
	cfg configs.Blocklist
	// targets is the version enforced now (the last good one), sorted.
	targets []netip.Prefix
	val     blocklist.Validators
	version time.Time

	skipped                  int
	lastRefresh, nextRefresh time.Time
	lastError                string
	lastErrorAt              time.Time
	fetches, notModified     uint64
	failures                 uint64
	added, removed           int
}

// startBlocklists starts, in the background once the ban manager has
// restored the kernel: the lists the store kept are enforced (before any
// fetch), the bans of lists no longer configured lifted, and one
// refresher per list started. stop ends them and waits. hc is the HTTP
// client (nil: the default one).
func (d *daemon) startBlocklists(ctx context.Context, cfg *configs.Config, hc *http.Client) (stop func(), err error) {
	b := &blocklists{mgr: d.mgr, db: d.db, log: d.log.With("part", "blocklist"), hc: hc, lists: map[string]*listState{}}
	stored, err := d.db.Blocklists()
	if err != nil {
		return nil, fmt.Errorf("blocklists: %w", err)
	}
	for _, name := range cfg.BlocklistNames() {
		b.lists[name] = &listState{cfg: cfg.Blocklists[name]}
	}
	d.blocklists.Store(b)
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-b.mgr.Ready():
		case <-runCtx.Done():
			return
		}
		b.restore(runCtx, stored)
		for _, l := range b.lists {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.refresher(runCtx, l)
			}()
		}
	}()
	return func() { cancel(); wg.Wait() }, nil
}

// restore enforces the stored version of each configured list and lifts
// the bans of the lists no longer configured.
func (b *blocklists) restore(ctx context.Context, stored []store.Blocklist) {
	// The bans of each list no longer configured, in one pass.
	gone := map[string][]netip.Prefix{}
	b.mgr.EachBan(func(bn store.Ban) {
		if name, ok := listOfJail(bn.Jail); ok && b.lists[name] == nil {
			gone[name] = append(gone[name], bn.Target)
		}
	})
	for _, s := range stored {
		if _, ok := gone[s.Name]; !ok && b.lists[s.Name] == nil {
			gone[s.Name] = nil // its stored version goes, with no bans left
		}
	}
	for name, lift := range gone {
		b.forget(ctx, name, lift)
	}
	for _, s := range stored {
		l, ok := b.lists[s.Name]
		if !ok {
			continue
		}
		b.mu.Lock()
		if s.Source == l.cfg.Source() {
			l.val = blocklist.Validators{ETag: s.ETag, LastModified: s.LastModified}
		}
		l.version = s.Fetched
		l.lastRefresh = s.Refreshed
		if l.lastRefresh.IsZero() {
			l.lastRefresh = s.Fetched
		}
		since := l.lastRefresh
		b.mu.Unlock()
		if time.Since(since) >= l.cfg.BanTime {
			b.log.Warn("the stored version's bantime ran out since its last good refresh: not enforced until a fetch succeeds", "list", s.Name, "refreshed", since)
			continue
		}
		b.log.Info("enforcing the stored version before the first fetch", "list", s.Name, "entries", len(s.Targets), "fetched", s.Fetched)
		if err := b.replace(ctx, l, s.Targets, since); err != nil {
			b.log.Error("stored version not enforced", "list", s.Name, "err", err)
		}
	}
}

// isListJail: the bans of another list may be taken over by a list that
// holds the same target (a jail's stay that jail's).
func isListJail(jail string) bool {
	_, ok := listOfJail(jail)
	return ok
}

// listOfJail is the list name of a blocklist jail.
func listOfJail(jail string) (string, bool) {
	name, ok := strings.CutPrefix(jail, configs.BlocklistJailPrefix)
	return name, ok && name != ""
}

// forget lifts lift, the bans of a list no longer configured, and drops
// its stored version.
func (b *blocklists) forget(ctx context.Context, name string, lift []netip.Prefix) {
	jail := configs.BlocklistJailPrefix + name
	_, n, err := b.mgr.ReplaceJail(ctx, jail, nil, lift, isListJail)
	if err != nil {
		b.log.Error("lifting the bans of a list no longer configured", "list", name, "err", err)
		return
	}
	if err := b.db.DeleteBlocklist(name); err != nil {
		b.log.Error("forget list", "list", name, "err", err)
	}
	b.log.Info("list no longer configured: its bans are lifted", "list", name, "lifted", n)
}

// refresher fetches l now and then every refresh (sooner after a failure).
func (b *blocklists) refresher(ctx context.Context, l *listState) {
	for {
		wait := b.refresh(ctx, l)
		b.mu.Lock()
		l.nextRefresh = time.Now().Add(wait)
		b.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// refresh fetches l once and enforces the result: the new version, or
// the previous one again (a 304, or a failure), so its bans run on. It
// returns the wait before the next fetch.
func (b *blocklists) refresh(ctx context.Context, l *listState) time.Duration {
	c := l.cfg
	f := &blocklist.Fetcher{Client: b.hc, MaxBytes: c.MaxSize, MaxEntries: c.MaxEntries, Timeout: c.Timeout, UserAgent: "bansd/" + version}
	b.mu.Lock()
	val := l.val
	b.mu.Unlock()
	var (
		res blocklist.Result
		err error
	)
	if c.URL != "" {
		res, err = f.FetchURL(ctx, c.URL, val)
	} else {
		res, err = f.FetchFile(c.File)
	}
	if ctx.Err() != nil {
		return 0
	}
	now := time.Now()
	b.mu.Lock()
	l.fetches++
	prev, lastGood := l.targets, l.lastRefresh
	b.mu.Unlock()
	if err != nil {
		b.mu.Lock()
		l.failures++
		l.lastError, l.lastErrorAt = err.Error(), now
		b.mu.Unlock()
		// The previous version runs bantime from its last good refresh,
		// not from each failure: a list whose source died ends.
		if len(prev) > 0 && now.Sub(lastGood) < c.BanTime {
			b.log.Warn("fetch failed; the previous version stays enforced", "list", c.Name, "source", blocklist.Describe(c.Source()), "entries", len(prev), "until", lastGood.Add(c.BanTime), "err", err)
			if err := b.replace(ctx, l, prev, lastGood); err != nil {
				b.log.Error("previous version not enforced", "list", c.Name, "err", err)
			}
		} else {
			b.log.Warn("fetch failed", "list", c.Name, "source", blocklist.Describe(c.Source()), "err", err)
		}
		return min(c.Refresh, blocklistRetry)
	}
	next := prev
	if !res.NotModified {
		next = res.Parsed.Targets()
	}
	if err := b.replace(ctx, l, next, now); err != nil {
		b.mu.Lock()
		l.failures++
		l.lastError, l.lastErrorAt = err.Error(), now
		b.mu.Unlock()
		b.log.Error("list not enforced", "list", c.Name, "err", err)
		return min(c.Refresh, blocklistRetry)
	}
	b.mu.Lock()
	l.lastRefresh = now
	if res.NotModified {
		l.notModified++
	} else {
		l.val, l.version = res.Validators, now
	}
	rec := store.Blocklist{Name: c.Name, Source: c.Source(), ETag: l.val.ETag, LastModified: l.val.LastModified, Fetched: l.version, Refreshed: now, Targets: l.targets}
	added, removed, skipped := l.added, l.removed, l.skipped
	b.mu.Unlock()
	// A 304 is stored too: the bans' bantime runs from it, also after a
	// restart.
	if err := b.db.PutBlocklist(rec); err != nil {
		b.log.Error("keeping the list in the store", "list", c.Name, "err", err)
	}
	if res.NotModified {
		b.log.Debug("list not modified", "list", c.Name)
		return c.Refresh
	}
	level := slog.LevelDebug
	if added > 0 || removed > 0 {
		level = slog.LevelInfo
	}
	b.log.Log(ctx, level, "list refreshed", "list", c.Name, "source", blocklist.Describe(c.Source()), "entries", len(next), "added", added, "removed", removed, "skipped", skipped, "bytes", res.Bytes)
	return c.Refresh
}

// replace makes targets the bans of l's jail, each for bantime from since
// (the version's last good refresh), lifting those of the previous
// version that no other list holds.
func (b *blocklists) replace(ctx context.Context, l *listState, targets []netip.Prefix, since time.Time) error {
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	c := l.cfg
	b.mu.Lock()
	others := map[netip.Prefix]bool{}
	for _, o := range b.lists {
		if o != l {
			for _, t := range o.targets {
				others[t] = true
			}
		}
	}
	// Every previous target not held by another list: ReplaceJail keeps
	// the ones the new version names and lifts only this list's bans.
	var lift []netip.Prefix
	for _, t := range l.targets {
		if !others[t] {
			lift = append(lift, t)
		}
	}
	old := l.targets
	b.mu.Unlock()
	reason := "blocklist " + c.Name + " (" + blocklist.Describe(c.Source()) + ")"
	reqs := make([]ban.Request, len(targets))
	for i, t := range targets {
		reqs[i] = ban.Request{Target: t, Jail: c.Jail(), Reason: reason, Duration: c.BanTime, Time: since, Manual: true}
	}
	errs, lifted, err := b.mgr.ReplaceJail(ctx, c.Jail(), reqs, lift, isListJail)
	if err != nil {
		b.mu.Lock()
		// The store may hold either version: lift both next time.
		l.targets = union(old, targets)
		b.mu.Unlock()
		return err
	}
	skipped := 0
	for i, e := range errs {
		switch {
		case e == nil:
		case errors.Is(e, ban.ErrRefused):
			skipped++
			if skipped <= 5 {
				b.log.Debug("entry skipped", "list", c.Name, "target", targets[i], "why", e)
			}
		default:
			b.log.Warn("entry not banned", "list", c.Name, "target", targets[i], "err", e)
		}
	}
	b.mu.Lock()
	if skipped != l.skipped {
		b.log.Info("entries skipped: a never-ban rule protects them, or they are too wide", "list", c.Name, "skipped", skipped)
	}
	l.targets, l.skipped, l.removed = targets, skipped, lifted
	l.added = countNew(old, targets)
	b.mu.Unlock()
	return nil
}

// countNew counts the targets of next not in prev (both sorted).
func countNew(prev, next []netip.Prefix) int {
	in := make(map[netip.Prefix]bool, len(prev))
	for _, t := range prev {
		in[t] = true
	}
	n := 0
	for _, t := range next {
		if !in[t] {
			n++
		}
	}
	return n
}

func union(a, b []netip.Prefix) []netip.Prefix {
	out := slices.Concat(a, b)
	slices.SortFunc(out, netip.Prefix.Compare)
	return slices.Compact(out)
}

func (d *daemon) blocklistStatus() []control.BlocklistStatus {
	b := d.blocklists.Load()
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]control.BlocklistStatus, 0, len(b.lists))
	for _, l := range b.lists {
		out = append(out, control.BlocklistStatus{
			Name: l.cfg.Name, Source: blocklist.Describe(l.cfg.Source()), Entries: len(l.targets), Skipped: l.skipped,
			Version: l.version, LastRefresh: l.lastRefresh, NextRefresh: l.nextRefresh,
			LastError: l.lastError, LastErrorAt: l.lastErrorAt,
			Fetches: l.fetches, NotModified: l.notModified, Failures: l.failures, Added: l.added, Removed: l.removed,
		})
	}
	slices.SortFunc(out, func(x, y control.BlocklistStatus) int { return strings.Compare(x.Name, y.Name) })
	return out
}

var (
	blocklistEntries = prometheus.NewDesc("bansd_blocklist_entries",
		"Entries of the version of each blocklist enforced now.", []string{"list"}, nil)
	blocklistSkipped = prometheus.NewDesc("bansd_blocklist_skipped_entries",
		"Entries of each blocklist skipped (never-ban, too wide).", []string{"list"}, nil)
	blocklistFetches = prometheus.NewDesc("bansd_blocklist_fetches_total",
		"Fetches of each blocklist, by outcome (ok, not-modified, error).", []string{"list", "outcome"}, nil)
	blocklistLastRefresh = prometheus.NewDesc("bansd_blocklist_last_refresh_timestamp_seconds",
		"When each blocklist was last fetched successfully (0: never).", []string{"list"}, nil)
	blocklistFailing = prometheus.NewDesc("bansd_blocklist_failing",
		"1 while the last fetch of a blocklist failed (the previous version is enforced).", []string{"list"}, nil)
)

type blocklistCollector struct{ d *daemon }

func (blocklistCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{blocklistEntries, blocklistSkipped, blocklistFetches, blocklistLastRefresh, blocklistFailing} {
		ch <- d
	}
}

func (c blocklistCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.d.blocklistStatus() {
		ch <- prometheus.MustNewConstMetric(blocklistEntries, prometheus.GaugeValue, float64(s.Entries), s.Name)
		ch <- prometheus.MustNewConstMetric(blocklistSkipped, prometheus.GaugeValue, float64(s.Skipped), s.Name)
		ok := s.Fetches - s.Failures - s.NotModified
		ch <- prometheus.MustNewConstMetric(blocklistFetches, prometheus.CounterValue, float64(ok), s.Name, "ok")
		ch <- prometheus.MustNewConstMetric(blocklistFetches, prometheus.CounterValue, float64(s.NotModified), s.Name, "not-modified")
		ch <- prometheus.MustNewConstMetric(blocklistFetches, prometheus.CounterValue, float64(s.Failures), s.Name, "error")
		last := 0.0
		if !s.LastRefresh.IsZero() {
			last = float64(s.LastRefresh.Unix())
		}
		ch <- prometheus.MustNewConstMetric(blocklistLastRefresh, prometheus.GaugeValue, last, s.Name)
		failing := 0.0
		if s.LastErrorAt.After(s.LastRefresh) {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(blocklistFailing, prometheus.GaugeValue, failing, s.Name)
	}
}
