// Package escalate is how long a repeat offender's ban lasts. It is apart
// from package ban so that bansctl replay reports the daemon's durations
// without linking the store.
package escalate

import (
	"math"
	"time"
)

// Duration is base × factor^offences (factor below 1 counts as 1), capped
// at limit, and never below base.
func Duration(base time.Duration, offences int, factor float64, limit time.Duration) time.Duration {
	f := max(factor, 1)
	d := float64(base) * math.Pow(f, float64(offences))
	if d >= float64(limit) || math.IsInf(d, 0) || math.IsNaN(d) {
		return max(limit, base)
	}
	return time.Duration(d)
}
