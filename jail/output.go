package jail

import (
	"net/netip"
	"time"

	"github.com/bansd/bansd/jail/parse"
)

// Decision asks the ban manager to ban Target.
type Decision struct {
	Target netip.Prefix
	Jail   string
	// Duration is the jail's base ban time; the ban manager escalates it.
	Duration time.Duration
	// Corroborated: every attempt counted was on a connection the kernel
	// saw (kernel mode); false when text rules alone judged the lines.
	Corroborated bool
	Reason       string
	// Time is the log time of the event that crossed the threshold.
	Time time.Time
	// Events is how many counted attempts the window held.
	Events int
	// Evidence holds the last lines that led to the decision (bounded).
	Evidence []string
}

// AlarmGatewayClient is the kind of the engine's alarms.
const AlarmGatewayClient = "gateway-client"

// Alarm reports that a "client" address is one that must never be banned
// (a Docker gateway, inside Mailu's SUBNET): the real client address is
// being lost, typically to Docker's userland proxy, and Postfix may relay
// for it.
type Alarm struct {
	Kind  string // AlarmGatewayClient for the engine's own
	Addr  netip.Addr
	Time  time.Time
	Count int
	Hint  string
	Line  string
}

// pending holds what one Process call has to deliver once unlocked.
// Output is what one line produced.
type Output struct {
	// Matched says the line carried a signal.
	Matched bool
	// Decisions are the bans the line's event triggered.
	Decisions []Decision
	// Alarms are raised at most once a minute (log time) per address;
	// Alarm.Count says how many events one stands for.
	Alarms []Alarm
	// Verdict is the parser's: the line's class and reason.
	Verdict parse.Verdict
	// NotCounted says why a matched event was counted by no jail (a Skip*
	// constant); empty when a jail counted it or the line did not match.
	NotCounted string
}
