package parse

import (
	"math"
	"time"
)

// Mailu's programs write their own timestamps in the container's local time
// without a zone; they are read as UTC here. Docker's timestamp (UTC) is the
// one events use whenever it exists.

// num parses exactly len(s) ASCII digits.
func num(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

// clock parses "HH:MM:SS".
func clock(s string) (h, m, sec int, ok bool) {
	if len(s) != 8 || s[2] != ':' || s[5] != ':' {
		return 0, 0, 0, false
	}
	h, ok1 := num(s[0:2])
	m, ok2 := num(s[3:5])
	sec, ok3 := num(s[6:8])
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || sec > 60 {
		return 0, 0, 0, false
	}
	return h, m, sec, true
}

// date parses "YYYY?MM?DD" with sep as '?'.
func date(s string, sep byte) (y, mo, d int, ok bool) {
	if len(s) != 10 || s[4] != sep || s[7] != sep {
		return 0, 0, 0, false
	}
	y, ok1 := num(s[0:4])
	mo, ok2 := num(s[5:7])
	d, ok3 := num(s[8:10])
	if !ok1 || !ok2 || !ok3 || mo < 1 || mo > 12 || d < 1 || d > 31 {
		return 0, 0, 0, false
	}
	return y, mo, d, true
}

// parseDateTime parses "YYYY<sep>MM<sep>DD HH:MM:SS" (19 bytes): nginx uses
// '/', rspamd '-'.
func parseDateTime(s string, sep byte) (time.Time, bool) {
	if len(s) < 19 || s[10] != ' ' {
		return time.Time{}, false
	}
	y, mo, d, ok := date(s[:10], sep)
	if !ok {
		return time.Time{}, false
	}
	h, m, sec, ok := clock(s[11:19])
	if !ok {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, m, sec, 0, time.UTC), true
}

// parseAdminTime parses Flask's "YYYY-MM-DD HH:MM:SS,mmm" (23 bytes).
func parseAdminTime(s string) (time.Time, bool) {
	if len(s) < 23 || s[19] != ',' {
		return time.Time{}, false
	}
	t, ok := parseDateTime(s[:19], '-')
	if !ok {
		return time.Time{}, false
	}
	ms, ok := num(s[20:23])
	if !ok {
		return time.Time{}, false
	}
	return t.Add(time.Duration(ms) * time.Millisecond), true
}

var monthNames = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseSyslogTime parses the year-less "Mon DD HH:MM:SS" (15 bytes) of
// Dovecot and Postfix (the day may be space-padded) and gives it the year
// that puts it nearest to ref, so December lines read in January (and the
// reverse) land in the right year.
func parseSyslogTime(s string, ref time.Time) (time.Time, bool) {
	if len(s) < 15 || s[3] != ' ' || s[6] != ' ' {
		return time.Time{}, false
	}
	mo := 0
	for i, n := range monthNames {
		if s[:3] == n {
			mo = i + 1
			break
		}
	}
	if mo == 0 {
		return time.Time{}, false
	}
	ds := s[4:6]
	if ds[0] == ' ' {
		ds = ds[1:]
	}
	d, ok := num(ds)
	if !ok || d < 1 || d > 31 {
		return time.Time{}, false
	}
	h, m, sec, ok := clock(s[7:15])
	if !ok {
		return time.Time{}, false
	}
	ref = ref.UTC()
	y := ref.Year()
	t := time.Date(y, time.Month(mo), d, h, m, sec, 0, time.UTC)
	// Half a year either way decides: a line is never that far from its
	// reference, while Dec 31 vs Jan 1 is.
	const half = 183 * 24 * time.Hour
	if dist := t.Sub(ref); dist > half {
		t = time.Date(y-1, time.Month(mo), d, h, m, sec, 0, time.UTC)
	} else if dist < -half {
		t = time.Date(y+1, time.Month(mo), d, h, m, sec, 0, time.UTC)
	}
	return t, true
}

// Time-zone offsets are whole multiples of 15 minutes within ±14 h.
const (
	zoneStep    = 15 * time.Minute
	zoneMax     = 14 * time.Hour
	maxTimeSkew = 2 * time.Second
)

// timeAgrees reports whether a line's own timestamp (local time read as
// UTC, resolution 1 s) matches Docker's timestamp for it within 2 s, once the
// container's unknown but whole time-zone offset is taken out. A line an
// attacker wrote in advance, or replayed, fails this.
func timeAgrees(own, docker time.Time) bool {
	d := own.Sub(docker)
	if d > zoneMax+zoneStep || d < -zoneMax-zoneStep {
		return false
	}
	q := time.Duration(math.Round(float64(d) / float64(zoneStep)))
	r := d - q*zoneStep
	// own has whole seconds: Docker may be up to 1 s later for that alone.
	return r <= maxTimeSkew && r >= -maxTimeSkew-time.Second
}
