package jail

import (
	"net/netip"
	"strings"
	"time"

	"github.com/bansd/bansd/prefix"
)

// AlarmAllowedClient is the kind of the alarm raised for attempts from an
// address on the run-time allow-list: not counted, never banned, so a
// person hears of them instead.
const AlarmAllowedClient = "allowed-client"

const allowedHint = "this address is on the run-time allow-list (bansctl allow): its failed attempts are not counted " +
	"and it is never banned. If it is not a client you trust, run \"bansctl allow remove\" for it."

// Allowed is one run-time allow-list entry (bansctl allow), as the engine
// needs it: a never-ban rule like ignoreip, which a forced manual ban
// overrides.
type Allowed struct {
	Target netip.Prefix
	// Until is when the entry ends (zero: never); the daemon removes
	// entries that ended, this is only shown.
	Until  time.Time
	Reason string
}

// ruleName is how never-ban verdicts and `bansctl why` name the entry.
func (a Allowed) ruleName() string {
	var b strings.Builder
	b.WriteString("allow-list ")
	b.WriteString(a.Target.String())
	if !a.Until.IsZero() {
		b.WriteString(" until ")
		b.WriteString(a.Until.UTC().Format(time.RFC3339))
	}
	if a.Reason != "" {
		b.WriteString(": ")
		b.WriteString(a.Reason)
	}
	return b.String()
}

// SetAllowed replaces the run-time allow-list. From now on the events of
// an allowed address are not counted (Forget drops what it did before).
func (e *Engine) SetAllowed(list []Allowed) {
	keep := make([]Allowed, 0, len(list))
	for _, a := range list {
		p, err := prefix.Normalize(a.Target)
		if err != nil {
			continue
		}
		a.Target = p
		keep = append(keep, a)
	}
	e.mu.Lock()
	e.allow = keep
	e.prot = buildProtect(e.cfg, e.live, keep)
	e.mu.Unlock()
}
