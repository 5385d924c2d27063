package main

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bansd/bansd/jail/parse"
)

const dashboardFile = "../../configs/grafana-dashboard.json"

// noState is a daemon with nothing to report yet: the registry's own
// metrics (histograms, Go, process) are gathered, the state's are not.
type noState struct{}

func (noState) engineEvents() map[string]uint64                  { return nil }
func (noState) parserStats() parse.ParserStats                   { return parse.ParserStats{} }
func (noState) activeBans() map[string]int                       { return nil }
func (noState) sourceStates() []sourceSample                     { return nil }
func (noState) kernelCounters(context.Context) []setCounter      { return nil }
func (noState) shieldState(context.Context) (bool, uint64, bool) { return false, 0, false }

var fqName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

// exported is every metric name the daemon's registry can export, with
// the suffixes its type adds: the names from the registry's descriptions
// (every collector, the CrowdSec link's included, series or not), the
// types from a scrape.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := newMetrics(noState{})
	m.addCrowdSec(nil) // Describe only: the collector reads the link at scrape time
	ch := make(chan *prometheus.Desc)
	go func() { m.reg.Describe(ch); close(ch) }()
	names := map[string]bool{}
	for d := range ch {
		sm := fqName.FindStringSubmatch(d.String())
		if sm == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[sm[1]] = true
	}
	fams, err := newMetrics(noState{}).reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		names[f.GetName()] = true
		var suffixes []string
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			suffixes = []string{"_bucket", "_sum", "_count"}
		case dto.MetricType_SUMMARY:
			suffixes = []string{"_sum", "_count"}
		}
		for _, s := range suffixes {
			names[f.GetName()+s] = true
		}
	}
	if !names["bansd_decisions_total"] || !names["bansd_crowdsec_pushes_total"] || !names["bansd_ban_latency_seconds_bucket"] || !names["go_goroutines"] {
		t.Fatalf("the registry's names look incomplete: %v", names)
	}
	return names
}

var (
	promString   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promToken    = regexp.MustCompile(`\d[\w.]*|\$\{?\w+\}?|[A-Za-z_:][\w:]*`)
	promKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
		"and", "or", "unless", "atan2", "inf", "nan", "Inf", "NaN", "start", "end"}
	labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*\w+\s*\)\s*$`)
)

// promMetrics are the metric names a PromQL expression reads: the
// identifiers left once strings, label matchers, ranges, grouping labels,
// numbers, Grafana variables, keywords and function calls are set aside.
func promMetrics(expr string) []string {
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		expr = m[1]
	}
	expr = promString.ReplaceAllString(expr, `""`)
	expr = promMatchers.ReplaceAllString(expr, " ")
	expr = promRange.ReplaceAllString(expr, " ")
	expr = promGrouping.ReplaceAllString(expr, " ")
	var out []string
	for _, loc := range promToken.FindAllStringIndex(expr, -1) {
		tok := expr[loc[0]:loc[1]]
		if tok[0] >= '0' && tok[0] <= '9' || tok[0] == '$' || slices.Contains(promKeywords, tok) {
			continue
		}
		if rest := strings.TrimLeft(expr[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		out = append(out, tok)
	}
	return out
}

// dashboardQueries are the PromQL expressions of a dashboard: every
// panel target's expr, at any depth (rows hold panels), and every query
// variable's query.
func dashboardQueries(v any) []string {
	var out []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(x, k)
			}
		case []any:
			for _, x := range v {
				walk(x, key)
			}
		case string:
			if key == "expr" || key == "query" && strings.HasPrefix(v, "label_values(") {
				out = append(out, v)
			}
		}
	}
	walk(v, "")
	slices.Sort(out)
	return out
}

// unknownMetrics lists what the dashboard reads that bansd does not export.
func unknownMetrics(dashboard []byte, known map[string]bool) ([]string, int, error) {
	var d any
	if err := json.Unmarshal(dashboard, &d); err != nil {
		return nil, 0, err
	}
	var bad []string
	qs := dashboardQueries(d)
	for _, q := range qs {
		ms := promMetrics(q)
		if len(ms) == 0 {
			bad = append(bad, "(no metric in "+q+")")
		}
		for _, m := range ms {
			if !known[m] {
				bad = append(bad, m)
			}
		}
	}
	return bad, len(qs), nil
}

func TestPromMetrics(t *testing.T) {
	for _, c := range []struct{ expr, want string }{
		{`sum by (jail) (increase(bansd_decisions_total{instance=~"$instance",jail=~"$jail"}[$__rate_interval]))`, "bansd_decisions_total"},
		{`histogram_quantile(0.99, sum by (le) (rate(bansd_ban_latency_seconds_bucket[5m])))`, "bansd_ban_latency_seconds_bucket"},
		{`sum(rate(bansd_lines_total{service="front}"}[1h])) by (service) / on (instance) group_left bansd_attribution_kernel`, "bansd_lines_total bansd_attribution_kernel"},
		{`time() - max(bansd_crowdsec_last_pull_timestamp_seconds offset 1h > 0)`, "bansd_crowdsec_last_pull_timestamp_seconds"},
		{`1e3 * bansd_bans_active{reason="not_a_metric"} and bool go_goroutines`, "bansd_bans_active go_goroutines"},
		{`label_values(bansd_bans_active{instance=~"$instance"}, jail)`, "bansd_bans_active"},
		{`rate (process_cpu_seconds_total[${__rate_interval}])`, "process_cpu_seconds_total"},
		{`vector(1)`, ""},
	} {
		if got := strings.Join(promMetrics(c.expr), " "); got != c.want {
			t.Errorf("promMetrics(%s) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// TestDashboardMetrics: every metric configs/grafana-dashboard.json reads
// is one bansd exports, and the panels the operator needs are there.
func TestDashboardMetrics(t *testing.T) {
	known := exported(t)
	real, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	// The check itself, on the real dashboard and on copies with a bad
	// panel or variable: it must name what bansd does not export.
	var d map[string]any
	if err := json.Unmarshal(real, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	with := func(f func(d map[string]any)) []byte {
		var c map[string]any
		json.Unmarshal(real, &c)
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	panel := func(expr string) func(map[string]any) {
		return func(d map[string]any) {
			rows := d["panels"].([]any)
			d["panels"] = append(rows, map[string]any{"type": "row", "panels": []any{
				map[string]any{"type": "timeseries", "targets": []any{map[string]any{"expr": expr}}}}})
		}
	}
	tests := []struct {
		name      string
		dashboard []byte
		unknown   []string
	}{
		{"the dashboard", real, nil},
		{"a panel on an unknown metric", with(panel(`sum by (jail) (rate(bansd_bans_total{jail=~"$jail"}[5m]))`)), []string{"bansd_bans_total"}},
		{"buckets of a counter", with(panel(`histogram_quantile(0.9, rate(bansd_decisions_total_bucket[5m]))`)), []string{"bansd_decisions_total_bucket"}},
		{"a call without parentheses reads as a metric", with(panel(`rate bansd_lines_total[5m]`)), []string{"rate"}},
		{"an expression without a metric", with(panel(`vector(1)`)), []string{"(no metric in vector(1))"}},
		{"an unknown variable's metric", with(func(d map[string]any) {
			tl := d["templating"].(map[string]any)
			tl["list"] = append(tl["list"].([]any), map[string]any{"name": "x", "type": "query",
				"query": map[string]any{"query": "label_values(bansd_jail_info, jail)"}})
		}), []string{"bansd_jail_info"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad, n, err := unknownMetrics(tt.dashboard, known)
			if err != nil {
				t.Fatal(err)
			}
			if n < 30 {
				t.Errorf("only %d queries found", n)
			}
			if !slices.Equal(bad, tt.unknown) {
				t.Errorf("unknown metrics %q, want %q", bad, tt.unknown)
			}
		})
	}

	// What the operator needs, each read by some panel.
	used := map[string]bool{}
	for _, q := range dashboardQueries(d) {
		for _, m := range promMetrics(q) {
			used[m] = true
		}
	}
	for _, m := range []string{"bansd_events_total", "bansd_decisions_total", "bansd_bans_active", "bansd_ban_latency_seconds_bucket",
		"bansd_dropped_packets_total", "bansd_source_lag_seconds", "bansd_alarms_total", "bansd_lines_uncorroborated_total",
		"bansd_crowdsec_pushes_total", "bansd_nft_flush_seconds_bucket"} {
		if !used[m] {
			t.Errorf("no panel reads %s", m)
		}
	}
	if in, ok := d["__inputs"].([]any); !ok || len(in) != 1 || !strings.Contains(string(real), `"uid": "${DS_PROMETHEUS}"`) {
		t.Errorf("the dashboard does not ask for its Prometheus data source at import")
	}
}
