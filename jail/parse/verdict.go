package parse

// What Parse made of each line, and the per-service counters of it: the
// diagnostic side of the parser (bansctl replay's report, bansctl test).
// The verdict is the parser's own decision, recorded where it is taken, so
// a report never re-parses a line to explain it.

// Class is what Parse made of a line.
type Class uint8

const (
	// ClassUnparsable: no format bansd reads for the line's service (or an
	// unknown service).
	ClassUnparsable Class = iota
	// ClassIgnored: a line of a program bansd reads that carries no signal.
	ClassIgnored
	// ClassMatched: the line produced an Event.
	ClassMatched
	// ClassForged: the line would have produced an Event but the text rules
	// judged it written by an attacker (Forge* reasons).
	ClassForged
	// ClassUncorroborated: the line would have produced an Event but the
	// kernel has no record of its connection (Unseen* reasons; kernel mode).
	ClassUncorroborated
	classCount
)

var classNames = [classCount]string{
	ClassUnparsable:     "unparsable",
	ClassIgnored:        "ignored",
	ClassMatched:        "matched",
	ClassForged:         "forged",
	ClassUncorroborated: "uncorroborated",
}

func (c Class) String() string {
	if c < classCount {
		return classNames[c]
	}
	return "unknown"
}

// Reasons a line is ignored or unparsable (Verdict.Reason).
const (
	IgnoreHTTPAccess     = "nginx HTTP access log line"
	IgnoreNginxConnected = "nginx \"connected\" line (opens a connection, counts nothing)"
	IgnoreNginxStart     = "nginx start line (connection numbers start again)"
	IgnoreNginxNotInfo   = "nginx line not at level info"
	IgnoreNginxOther     = "nginx line that is no attempt (e.g. STARTTLS required first) nor login success"
	IgnoreNginxSuccess   = "nginx login success not on the client's own connection"
	IgnoreDovecotOther   = "Dovecot line that is no failed or aborted login"
	IgnoreAdminOther     = "admin line that is no login, limiter or token message"
	IgnoreAdminAccess    = "admin (gunicorn) HTTP access log line"
	IgnorePostfixOther   = "Postfix smtpd line that is no relay or recipient reject nor client= line"
	IgnorePostfixProgram = "Postfix line of a program other than smtpd"
	IgnoreRspamdOther    = "rspamd line that is no task log line of unauthenticated mail"

	UnparsableFront   = "no nginx or Dovecot line (a continuation of a split line, or another program)"
	UnparsableAdmin   = "no admin line ([YYYY-MM-DD HH:MM:SS,mmm] LEVEL in MODULE: ...)"
	UnparsablePostfix = "no Postfix line"
	UnparsableRspamd  = "no rspamd line"
	UnparsableService = "unknown service: bansd reads front, admin, smtp and antispam"
)

type ignoreReason uint8

const (
	ignoreNone ignoreReason = iota
	ignoreHTTPAccess
	ignoreNginxConnected
	ignoreNginxStart
	ignoreNginxNotInfo
	ignoreNginxOther
	ignoreNginxSuccess
	ignoreDovecotOther
	ignoreAdminOther
	ignoreAdminAccess
	ignorePostfixOther
	ignorePostfixProgram
	ignoreRspamdOther
	unparsableFront
	unparsableAdmin
	unparsablePostfix
	unparsableRspamd
	unparsableService
	ignoreReasonCount
)

var ignoreNames = [ignoreReasonCount]string{
	ignoreHTTPAccess:     IgnoreHTTPAccess,
	ignoreNginxConnected: IgnoreNginxConnected,
	ignoreNginxStart:     IgnoreNginxStart,
	ignoreNginxNotInfo:   IgnoreNginxNotInfo,
	ignoreNginxOther:     IgnoreNginxOther,
	ignoreNginxSuccess:   IgnoreNginxSuccess,
	ignoreDovecotOther:   IgnoreDovecotOther,
	ignoreAdminOther:     IgnoreAdminOther,
	ignoreAdminAccess:    IgnoreAdminAccess,
	ignorePostfixOther:   IgnorePostfixOther,
	ignorePostfixProgram: IgnorePostfixProgram,
	ignoreRspamdOther:    IgnoreRspamdOther,
	unparsableFront:      UnparsableFront,
	unparsableAdmin:      UnparsableAdmin,
	unparsablePostfix:    UnparsablePostfix,
	unparsableRspamd:     UnparsableRspamd,
	unparsableService:    UnparsableService,
}

// Verdict is what Parse made of the last line: its class and, unless it
// matched, the reason.
type Verdict struct {
	Class  Class
	reason uint8
}

// Reason is the verdict's reason in words: a Forge* or Unseen* constant, an
// Ignore* or Unparsable* one; empty for a matched line.
func (v Verdict) Reason() string {
	switch v.Class {
	case ClassForged:
		return forgeNames[v.reason]
	case ClassUncorroborated:
		return unseenNames[v.reason]
	case ClassIgnored, ClassUnparsable:
		return ignoreNames[v.reason]
	}
	return ""
}

// Services the parser reads, as indexes of its per-service counters.
const (
	svcFront = iota
	svcAdmin
	svcSMTP
	svcAntispam
	svcOther
	svcCount
)

var svcNames = [svcCount]string{"front", "admin", "smtp", "antispam", "other"}

// ServiceOther is the ParserStats.Services key of lines of services bansd
// does not read.
const ServiceOther = "other"

func serviceIndex(s string) int {
	switch s {
	case "front":
		return svcFront
	case "admin":
		return svcAdmin
	case "smtp":
		return svcSMTP
	case "antispam":
		return svcAntispam
	}
	return svcOther
}

// serviceCounters are one service's counters, by class and reason.
type serviceCounters struct {
	lines   uint64
	matched [KindCount]uint64
	forged  [forgeReasonCount]uint64
	unseen  [unseenReasonCount]uint64
	ignored [ignoreReasonCount]uint64 // ignored and unparsable (unparsable* reasons)
}

// ServiceStats are the counters of one service's lines.
type ServiceStats struct {
	Lines uint64 `json:"lines"`
	// Matched counts the lines that produced an Event, by Kind name.
	Matched map[string]uint64 `json:"matched"`
	// Ignored and Unparsable count the lines that carry no signal, by
	// reason (Ignore* and Unparsable* constants).
	Ignored    map[string]uint64 `json:"ignored"`
	Unparsable map[string]uint64 `json:"unparsable"`
	// Forged and Uncorroborated count the lines set aside, by reason.
	Forged         map[string]uint64 `json:"forged"`
	Uncorroborated map[string]uint64 `json:"uncorroborated"`
}

// Total sums a count map.
func Total(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func (c *serviceCounters) stats() ServiceStats {
	s := ServiceStats{Lines: c.lines, Matched: map[string]uint64{}, Ignored: map[string]uint64{},
		Unparsable: map[string]uint64{}, Forged: map[string]uint64{}, Uncorroborated: map[string]uint64{}}
	for k, n := range c.matched {
		if n > 0 {
			s.Matched[Kind(k).String()] = n
		}
	}
	for r, n := range c.forged {
		if n > 0 {
			s.Forged[forgeNames[r]] = n
		}
	}
	for r, n := range c.unseen {
		if n > 0 {
			s.Uncorroborated[unseenNames[r]] = n
		}
	}
	for r, n := range c.ignored {
		if n == 0 {
			continue
		}
		if ignoreReason(r) >= unparsableFront {
			s.Unparsable[ignoreNames[r]] = n
		} else {
			s.Ignored[ignoreNames[r]] = n
		}
	}
	return s
}

// ignore records that the line being parsed is of a known program but
// carries no signal, unless a rule already set it aside. A later call
// (a more precise reason) replaces an earlier one.
func (p *Parser) ignore(r ignoreReason) {
	if p.verdict.Class <= ClassIgnored {
		p.verdict = Verdict{Class: ClassIgnored, reason: uint8(r)}
	}
}

// unparsedReason is the unparsable reason of a service's lines.
var unparsedReason = [svcCount]ignoreReason{
	svcFront: unparsableFront, svcAdmin: unparsableAdmin, svcSMTP: unparsablePostfix,
	svcAntispam: unparsableRspamd, svcOther: unparsableService,
}

// Last is the verdict of the last line given to Parse.
func (p *Parser) Last() Verdict { return p.verdict }

// count adds the verdict of the line just parsed to its service's
// counters.
func (p *Parser) count(svc int, ev *Event) {
	c := &p.cnt().svc[svc]
	c.lines++
	v := &p.verdict
	switch v.Class {
	case ClassMatched:
		c.matched[ev.Kind]++
	case ClassForged:
		c.forged[v.reason]++
	case ClassUncorroborated:
		c.unseen[v.reason]++
	case ClassIgnored:
		c.ignored[v.reason]++
	default:
		if v.reason == uint8(ignoreNone) {
			v.reason = uint8(unparsedReason[svc])
		}
		c.ignored[v.reason]++
	}
}
