package escalate

import (
	"math"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		base     time.Duration
		offences int
		factor   float64
		limit    time.Duration
		want     time.Duration
	}{
		{time.Hour, 0, 2, 24 * time.Hour, time.Hour},
		{time.Hour, 3, 2, 24 * time.Hour, 8 * time.Hour},
		{time.Hour, 5, 2, 24 * time.Hour, 24 * time.Hour},
		{time.Hour, 3, 0.5, 24 * time.Hour, time.Hour},
		{time.Hour, 1 << 30, 100, 24 * time.Hour, 24 * time.Hour},
		{48 * time.Hour, 0, 2, 24 * time.Hour, 48 * time.Hour},
		{time.Hour, 2, math.NaN(), 24 * time.Hour, 24 * time.Hour}, // never from a checked config: capped
	} {
		if got := Duration(tc.base, tc.offences, tc.factor, tc.limit); got != tc.want {
			t.Errorf("Duration(%v, %d, %v, %v) = %v, want %v", tc.base, tc.offences, tc.factor, tc.limit, got, tc.want)
		}
	}
}
