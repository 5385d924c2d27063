package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bansd/bansd/crowdsec"
)

var (
	csPushes = prometheus.NewDesc("bansd_crowdsec_pushes_total",
		"Local bans pushed to CrowdSec LAPI, by result (pushed, recovered, rejected, expired, dropped).", []string{"result"}, nil)
	csUnbans = prometheus.NewDesc("bansd_crowdsec_unbans_total",
		"Withdrawals of pushed bans, by result (done, failed).", []string{"result"}, nil)
	csPulls = prometheus.NewDesc("bansd_crowdsec_pulls_total",
		"Pulls of the LAPI decision stream, by result (ok, error).", []string{"result"}, nil)
	csPulled = prometheus.NewDesc("bansd_crowdsec_pulled_decisions_total",
		"Pulled decisions, by outcome (new, deleted, applied, lifted, own, refused, filtered, other-type, invalid, expired, capped).", []string{"outcome"}, nil)
	csPending = prometheus.NewDesc("bansd_crowdsec_pending",
		"Queue entries waiting for LAPI, by kind (push, unban).", []string{"kind"}, nil)
	csLastPush = prometheus.NewDesc("bansd_crowdsec_last_push_timestamp_seconds", "When LAPI last took a push (0: never).", nil, nil)
	csLastPull = prometheus.NewDesc("bansd_crowdsec_last_pull_timestamp_seconds", "When the last pull succeeded (0: never).", nil, nil)
)

// addCrowdSec adds the link's metrics (bansd_crowdsec_*), once the link is on.
func (m *metrics) addCrowdSec(s *crowdsec.Syncer) { m.reg.MustRegister(crowdsecCollector{s}) }

// crowdsecCollector reads the link's counters at scrape time.
type crowdsecCollector struct{ s *crowdsec.Syncer }

func (crowdsecCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{csPushes, csUnbans, csPulls, csPulled, csPending, csLastPush, csLastPull} {
		ch <- d
	}
}

func (c crowdsecCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	counter := func(d *prometheus.Desc, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	counter(csPushes, st.Pushed, "pushed")
	counter(csPushes, st.PushRecovered, "recovered")
	counter(csPushes, st.PushRejected, "rejected")
	counter(csPushes, st.PushExpired, "expired")
	counter(csPushes, st.QueueDropped, "dropped")
	counter(csUnbans, st.Unbans, "done")
	counter(csUnbans, st.UnbanFailed, "failed")
	counter(csPulls, st.Pulls-min(st.Pulls, st.PullErrors), "ok")
	counter(csPulls, st.PullErrors, "error")
	for _, o := range []struct {
		name string
		v    uint64
	}{{"new", st.PulledNew}, {"deleted", st.PulledDeleted}, {"applied", st.Applied}, {"lifted", st.Lifted},
		{"own", st.OwnSkipped}, {"refused", st.Refused}, {"filtered", st.FilteredOut}, {"other-type", st.OtherType},
		{"invalid", st.Invalid}, {"expired", st.Expired}, {"capped", st.Capped}} {
		counter(csPulled, o.v, o.name)
	}
	ch <- prometheus.MustNewConstMetric(csPending, prometheus.GaugeValue, float64(st.PendingPushes), "push")
	ch <- prometheus.MustNewConstMetric(csPending, prometheus.GaugeValue, float64(st.PendingUnbans), "unban")
	ts := func(d *prometheus.Desc, t interface{ Unix() int64 }, zero bool) {
		v := 0.0
		if !zero {
			v = float64(t.Unix())
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	ts(csLastPush, st.LastPush, st.LastPush.IsZero())
	ts(csLastPull, st.LastPull, st.LastPull.IsZero())
}
