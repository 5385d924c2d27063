// Package stats sums bansd's history up per hour: failed attempts, bans and
// alarms, with the jails, networks and repeat offenders that banned most.
package stats

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// MaxSpan bounds the hourly series (a year of hours); older history is
// not summed up.
const MaxSpan = 366 * 24 * time.Hour

// Summary is what GET /v1/stats answers and `bansctl stats --json` prints.
type Summary struct {
	Since     time.Time  `json:"since"`
	Until     time.Time  `json:"until"`
	Hours     []Hour     `json:"hours"`
	Totals    Totals     `json:"totals"`
	Jails     []Count    `json:"top_jails"`
	Networks  []Count    `json:"top_networks"`
	Offenders []Offender `json:"repeat_offenders"`
}

// Hour is one hour of the series; every hour of the period is there, zeros
// included, oldest first.
type Hour struct {
	Start    time.Time `json:"start"`
	Attempts uint64    `json:"attempts"`
	Bans     uint64    `json:"bans"`
	Alarms   uint64    `json:"alarms"`
}

// Totals sums the period.
type Totals struct {
	// Attempts are the events the jails saw in the logs, as
	// bansd_events_total counts them; AttemptsByKind splits them.
	Attempts       uint64            `json:"attempts"`
	AttemptsByKind map[string]uint64 `json:"attempts_by_kind"`
	// Bans are new and lengthened bans, of the jails, the operator and
	// imports; Refreshes is the part that lengthened a live ban.
	Bans      uint64 `json:"bans"`
	Refreshes uint64 `json:"refreshes"`
	Unbans    uint64 `json:"unbans"`
	Expiries  uint64 `json:"expiries"`
	Alarms    uint64 `json:"alarms"`
}

// Count is a jail's or a network's number of bans.
type Count struct {
	Name string `json:"name"`
	Bans uint64 `json:"bans"`
}

// Offender is a target banned more than once in the period, or escalated
// for offences before it.
type Offender struct {
	Target   netip.Prefix `json:"target"`
	Bans     uint64       `json:"bans"`
	MaxLevel int          `json:"max_level"`
	Last     time.Time    `json:"last"`
}

// Kind is what an event is to the sums; the daemon maps the store's
// event kinds onto these.
type Kind int

const (
	Other   Kind = iota
	Ban          // a new ban: a jail's, the operator's, an import's
	Refresh      // a live ban lengthened (a new offence)
	Unban
	Expire
	Alarm
)

// Event is one history event, as far as the sums need it.
type Event struct {
	Time   time.Time
	Kind   Kind
	Target netip.Prefix
	Jail   string
	Level  int
}

// Aggregator sums events up. Its maps hold one entry per jail, network and
// banned target of the period, so its memory is bounded by the history's
// own bound (200,000 events by default), not by the period.
type Aggregator struct {
	start   time.Time // the first hour
	hours   []Hour
	totals  Totals
	jails   map[string]uint64
	nets    map[netip.Prefix]uint64
	targets map[netip.Prefix]*Offender
	since   time.Time
	until   time.Time
}

// New sums up the period from since to until, cut to MaxSpan.
func New(since, until time.Time) *Aggregator {
	until = until.UTC()
	since = since.UTC()
	if until.Sub(since) > MaxSpan {
		since = until.Add(-MaxSpan)
	}
	start := since.Truncate(time.Hour)
	n := int(until.Truncate(time.Hour).Sub(start)/time.Hour) + 1
	a := &Aggregator{start: start, hours: make([]Hour, max(n, 1)), since: since, until: until,
		jails: map[string]uint64{}, nets: map[netip.Prefix]uint64{}, targets: map[netip.Prefix]*Offender{}}
	a.totals.AttemptsByKind = map[string]uint64{}
	for i := range a.hours {
		a.hours[i].Start = start.Add(time.Duration(i) * time.Hour)
	}
	return a
}

// Since is where the period starts (after the cut to MaxSpan).
func (a *Aggregator) Since() time.Time { return a.since }

func (a *Aggregator) hour(t time.Time) *Hour {
	if t.Before(a.since) || t.After(a.until) {
		return nil
	}
	i := int(t.UTC().Sub(a.start) / time.Hour)
	if i < 0 || i >= len(a.hours) {
		return nil
	}
	return &a.hours[i]
}

// Add adds one history event; events outside the period are ignored.
func (a *Aggregator) Add(e Event) {
	h := a.hour(e.Time)
	if h == nil {
		return
	}
	switch e.Kind {
	case Alarm:
		h.Alarms++
		a.totals.Alarms++
	case Unban:
		a.totals.Unbans++
	case Expire:
		a.totals.Expiries++
	case Ban, Refresh:
		if e.Kind == Refresh {
			a.totals.Refreshes++
		}
		h.Bans++
		a.totals.Bans++
		a.jails[e.Jail]++
		if !e.Target.IsValid() {
			return
		}
		a.nets[Network(e.Target)]++
		o := a.targets[e.Target]
		if o == nil {
			o = &Offender{Target: e.Target}
			a.targets[e.Target] = o
		}
		o.Bans++
		o.MaxLevel = max(o.MaxLevel, e.Level)
		if e.Time.After(o.Last) {
			o.Last = e.Time.UTC()
		}
	}
}

// Attempts adds one hour's attempts by event kind (failed logins, relay
// denials...): the store keeps them per hour.
func (a *Aggregator) Attempts(hour time.Time, counts map[string]uint64) {
	// An hour record holds the whole hour: it counts if the hour overlaps
	// the period, and goes in the series' slot of that hour.
	if hour.Add(time.Hour).Before(a.since) || hour.After(a.until) {
		return
	}
	i := int(hour.UTC().Truncate(time.Hour).Sub(a.start) / time.Hour)
	if i < 0 || i >= len(a.hours) {
		return
	}
	for k, n := range counts {
		a.hours[i].Attempts += n
		a.totals.Attempts += n
		a.totals.AttemptsByKind[k] += n
	}
}

// Network is the network a target's bans are summed under: its /24 (IPv4)
// or /64 (IPv6), or the target itself when it is wider.
func Network(p netip.Prefix) netip.Prefix {
	bits := 64
	if p.Addr().Is4() {
		bits = 24
	}
	if p.Bits() <= bits {
		return p.Masked()
	}
	n, _ := p.Addr().Prefix(bits)
	return n
}

// Summary returns the sums with the top n jails, networks and repeat
// offenders.
func (a *Aggregator) Summary(n int) Summary {
	s := Summary{Since: a.since, Until: a.until, Hours: a.hours, Totals: a.totals,
		Jails: []Count{}, Networks: []Count{}, Offenders: []Offender{}}
	for name, c := range a.jails {
		s.Jails = append(s.Jails, Count{Name: name, Bans: c})
	}
	for p, c := range a.nets {
		s.Networks = append(s.Networks, Count{Name: p.String(), Bans: c})
	}
	for _, c := range [][]Count{s.Jails, s.Networks} {
		slices.SortFunc(c, func(x, y Count) int {
			return cmp.Or(cmp.Compare(y.Bans, x.Bans), cmp.Compare(x.Name, y.Name))
		})
	}
	s.Jails, s.Networks = s.Jails[:min(n, len(s.Jails))], s.Networks[:min(n, len(s.Networks))]
	for _, o := range a.targets {
		if o.Bans > 1 || o.MaxLevel > 0 {
			s.Offenders = append(s.Offenders, *o)
		}
	}
	slices.SortFunc(s.Offenders, func(x, y Offender) int {
		return cmp.Or(cmp.Compare(y.Bans, x.Bans), cmp.Compare(y.MaxLevel, x.MaxLevel), y.Last.Compare(x.Last),
			x.Target.Compare(y.Target))
	})
	s.Offenders = s.Offenders[:min(n, len(s.Offenders))]
	return s
}
