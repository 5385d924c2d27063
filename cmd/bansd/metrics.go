package main

import (
	"context"
	"github.com/bansd/bansd/jail/parse"
	"github.com/bansd/bansd/sources/docker"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are bansd's Prometheus metrics, in a registry of their own.
// Counters the pipeline bumps live here; gauges that mirror state (bans,
// sources, kernel counters) are read at scrape time through gauges.
type metrics struct {
	reg        *prometheus.Registry
	lines      *prometheus.CounterVec
	decisions  *prometheus.CounterVec
	alarms     *prometheus.CounterVec
	banLatency prometheus.Histogram
	nftFlush   prometheus.Histogram
}

// scrapeState is what the scrape-time collector reads from the daemon.
type scrapeState interface {
	engineEvents() map[string]uint64
	// parserStats: lines corroborated by the kernel, and not, by reason.
	parserStats() parse.ParserStats
	activeBans() map[string]int
	sourceStates() []sourceSample
	kernelCounters(ctx context.Context) []setCounter
	// shieldState: the relay shield is up, and the SYNs it refused.
	shieldState(ctx context.Context) (up bool, refused uint64, ok bool)
}

type sourceSample struct {
	service    string
	state      string
	lag        float64
	reconnects uint64
}

type setCounter struct {
	set            string
	packets, bytes uint64
}

// sourceStates are the values of bansd_source_state's state label; the
// current one is 1, the others 0, so alerts can match on any of them.
var sourceStates = []string{docker.StateWaiting, docker.StateAttached, docker.StateStopped, docker.StateReconnecting}

func newMetrics(st scrapeState) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bansd_lines_total", Help: "Log lines read, by Mailu service.",
		}, []string{"service"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bansd_decisions_total", Help: "Ban decisions taken, by jail.",
		}, []string{"jail"}),
		alarms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bansd_alarms_total", Help: "Alarms raised (a protected address seen as a client), by kind.",
		}, []string{"kind"}),
		banLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bansd_ban_latency_seconds",
			Help:    "From the log time of the deciding event to the element being in the kernel.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		nftFlush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bansd_nft_flush_seconds",
			Help:    "Duration of one nftables transaction (ban batch).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	m.reg.MustRegister(m.lines, m.decisions, m.alarms, m.banLatency, m.nftFlush,
		&stateCollector{st: st},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	descEvents     = prometheus.NewDesc("bansd_events_total", "Events recognised in log lines, by kind.", []string{"kind"}, nil)
	descBansActive = prometheus.NewDesc("bansd_bans_active", "Active bans, by jail.", []string{"jail"}, nil)
	descSrcState   = prometheus.NewDesc("bansd_source_state", "1 for the state each followed service is in.", []string{"service", "state"}, nil)
	descSrcLag     = prometheus.NewDesc("bansd_source_lag_seconds", "Age of the last line read from each service when it was read.", []string{"service"}, nil)
	descSrcReconn  = prometheus.NewDesc("bansd_source_reconnects_total", "Reconnections to each service's log stream.", []string{"service"}, nil)
	descDropPkts   = prometheus.NewDesc("bansd_dropped_packets_total", "Packets dropped by each ban set (kernel counters).", []string{"set"}, nil)
	descDropBytes  = prometheus.NewDesc("bansd_dropped_bytes_total", "Bytes dropped by each ban set (kernel counters).", []string{"set"}, nil)
	descWitnessed  = prometheus.NewDesc("bansd_lines_corroborated_total", "Events the kernel corroborated (a completed handshake from that address and port).", nil, nil)
	descUnseen     = prometheus.NewDesc("bansd_lines_uncorroborated_total", "Lines not counted because the kernel did not corroborate them, by reason.", []string{"reason"}, nil)
	descForged     = prometheus.NewDesc("bansd_lines_forged_total", "Lines the text rules judged written by an attacker, by reason.", []string{"reason"}, nil)
	descShieldUp   = prometheus.NewDesc("bansd_relay_shield_up", "1 while the relay shield refuses IPv6 connections to Mailu's published ports.", nil, nil)
	descShieldRef  = prometheus.NewDesc("bansd_relay_shield_refused_total", "IPv6 connections the relay shield answered with a TCP reset (kernel counter).", nil, nil)
	descKernelMode = prometheus.NewDesc("bansd_attribution_kernel", "1 while lines count only on the kernel's word, 0 in text mode.", nil, nil)
)

// stateCollector reads state at scrape time so the numbers are never stale.
type stateCollector struct{ st scrapeState }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descBansActive, descSrcState, descSrcLag, descSrcReconn, descDropPkts, descDropBytes, descWitnessed, descUnseen, descForged, descKernelMode, descShieldUp, descShieldRef} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ps := c.st.parserStats()
	kernel := 0.0
	if ps.KernelMode {
		kernel = 1
	}
	ch <- prometheus.MustNewConstMetric(descKernelMode, prometheus.GaugeValue, kernel)
	ch <- prometheus.MustNewConstMetric(descWitnessed, prometheus.CounterValue, float64(ps.Witnessed))
	for _, r := range []string{parse.UnseenConnection, parse.UnseenAlias, parse.UnseenSpent, parse.UnseenUnopened, parse.UnseenError} {
		ch <- prometheus.MustNewConstMetric(descUnseen, prometheus.CounterValue, float64(ps.Uncorroborated[r]), r)
	}
	for r, n := range ps.Forged {
		ch <- prometheus.MustNewConstMetric(descForged, prometheus.CounterValue, float64(n), r)
	}
	for kind, n := range c.st.engineEvents() {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(n), kind)
	}
	for jail, n := range c.st.activeBans() {
		ch <- prometheus.MustNewConstMetric(descBansActive, prometheus.GaugeValue, float64(n), jail)
	}
	for _, s := range c.st.sourceStates() {
		known := false
		for _, state := range sourceStates {
			v := 0.0
			if state == s.state {
				v, known = 1, true
			}
			ch <- prometheus.MustNewConstMetric(descSrcState, prometheus.GaugeValue, v, s.service, state)
		}
		if !known && s.state != "" {
			ch <- prometheus.MustNewConstMetric(descSrcState, prometheus.GaugeValue, 1, s.service, s.state)
		}
		ch <- prometheus.MustNewConstMetric(descSrcLag, prometheus.GaugeValue, s.lag, s.service)
		ch <- prometheus.MustNewConstMetric(descSrcReconn, prometheus.CounterValue, float64(s.reconnects), s.service)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if up, refused, ok := c.st.shieldState(ctx); ok {
		v := 0.0
		if up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descShieldUp, prometheus.GaugeValue, v)
		ch <- prometheus.MustNewConstMetric(descShieldRef, prometheus.CounterValue, float64(refused))
	}
	for _, sc := range c.st.kernelCounters(ctx) {
		ch <- prometheus.MustNewConstMetric(descDropPkts, prometheus.CounterValue, float64(sc.packets), sc.set)
		ch <- prometheus.MustNewConstMetric(descDropBytes, prometheus.CounterValue, float64(sc.bytes), sc.set)
	}
}
