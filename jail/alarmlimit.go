package jail

import (
	"net/netip"
	"sort"
	"time"
)

// alarmLimiter lets one alarm per address per minute (log time) through,
// counting the rest.
type alarmLimiter struct {
	m          map[netip.Addr]alarmState
	kind, hint string
}

type alarmState struct {
	last    int64 // log time of the last delivered alarm
	seen    int64 // log time of the latest event
	pending int   // events since the last delivered alarm
}

// maxAlarmAddrs bounds the limiter; a whole /16 Docker network of fake
// clients cannot grow it further.
const maxAlarmAddrs = 4096

func newAlarmLimiter(kind, hint string) *alarmLimiter {
	return &alarmLimiter{m: map[netip.Addr]alarmState{}, kind: kind, hint: hint}
}

func (l *alarmLimiter) hit(a netip.Addr, tn int64, t time.Time, line string) (Alarm, bool) {
	s, ok := l.m[a]
	if !ok && len(l.m) >= maxAlarmAddrs {
		clear(l.m)
	}
	s.pending++
	if tn > s.seen {
		s.seen = tn
	}
	if ok && tn-s.last < int64(time.Minute) {
		l.m[a] = s
		return Alarm{}, false
	}
	al := Alarm{Kind: l.kind, Addr: a, Time: t, Count: s.pending, Hint: l.hint, Line: evidenceCopy(line)}
	s.last, s.pending = tn, 0
	l.m[a] = s
	return al, true
}

func (l *alarmLimiter) flush() []Alarm {
	var out []Alarm
	for a, s := range l.m {
		if s.pending > 0 {
			out = append(out, Alarm{Kind: l.kind, Addr: a, Time: time.Unix(0, s.seen).UTC(), Count: s.pending, Hint: l.hint})
			s.pending = 0
			l.m[a] = s
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Addr.Less(out[k].Addr) })
	return out
}
