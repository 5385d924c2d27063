package notify

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
)

// Kind is what happened.
type Kind string

const (
	KindBan          Kind = "ban"
	KindUnban        Kind = "unban"
	KindAlarm        Kind = "alarm"
	KindAlarmCleared Kind = "alarm-cleared"
	KindDigest       Kind = "digest"
	KindDaemon       Kind = "daemon" // start, stop, reload, reload refused
	KindFolded       Kind = "folded" // a summary of messages the hourly limit held back
	KindTest         Kind = "test"
)

// Event is what the daemon hands to Notify.
type Event struct {
	Kind     Kind
	Time     time.Time
	Target   netip.Prefix // zero when none
	Jail     string
	Duration time.Duration
	Level    int // repeat offence level, 0 for a first ban
	// Reason is a short line ("10 failed logins in 1h"), Text free text
	// (an alarm's explanation and fix). Both may hold attacker text; they
	// are cut and stripped of control characters.
	Reason string
	Text   string
}

// Bounds on attacker-influenced text in one message.
const (
	maxReason = 512
	maxText   = 4096
)

type eventJSON struct {
	Kind            Kind      `json:"kind"`
	Time            time.Time `json:"time"`
	Target          string    `json:"target,omitempty"`
	Jail            string    `json:"jail,omitempty"`
	Duration        string    `json:"duration,omitempty"`
	DurationSeconds int64     `json:"duration_seconds,omitempty"`
	Level           int       `json:"level,omitempty"`
	Reason          string    `json:"reason,omitempty"`
	Text            string    `json:"text,omitempty"`
}

func (e Event) MarshalJSON() ([]byte, error) {
	j := eventJSON{Kind: e.Kind, Time: e.Time, Jail: e.Jail, Level: e.Level, Reason: e.Reason, Text: e.Text}
	if e.Target.IsValid() {
		j.Target = e.Target.String()
	}
	if e.Duration > 0 {
		j.Duration, j.DurationSeconds = e.Duration.String(), int64(e.Duration/time.Second)
	}
	return json.Marshal(j)
}

func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Event{Kind: j.Kind, Time: j.Time, Jail: j.Jail, Level: j.Level, Reason: j.Reason, Text: j.Text}
	if j.Target != "" {
		p, err := netip.ParsePrefix(j.Target)
		if err != nil {
			return err
		}
		e.Target = p
	}
	if j.Duration != "" {
		d, err := time.ParseDuration(j.Duration)
		if err != nil {
			return err
		}
		e.Duration = d
	}
	return nil
}

// clean cuts s to n bytes (on a rune boundary) and replaces control
// characters other than newline and tab, so attacker text can neither
// forge header lines nor flood a message.
func clean(s string, n int, keepNewlines bool) string {
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' && keepNewlines || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || r == unicode.ReplacementChar || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func (e Event) sanitized() Event {
	e.Reason = clean(e.Reason, maxReason, false)
	e.Text = clean(e.Text, maxText, true)
	e.Jail = clean(e.Jail, 64, false)
	return e
}

// Digest sums up the bans of one interval.
type Digest struct {
	Since               time.Time `json:"since"`
	Until               time.Time `json:"until"`
	Bans                int       `json:"bans"`
	Targets             int       `json:"targets"`
	Jails               []Count   `json:"jails"`
	Networks            []Count   `json:"networks"`
	RepeatOffenders     []string  `json:"repeat_offenders"`
	MoreRepeatOffenders int       `json:"more_repeat_offenders"`
	Lost                uint64    `json:"lost"`
}

type Count struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// Folded is what the hourly limit held back.
type Folded struct {
	Count  int            `json:"count"`
	Kinds  map[string]int `json:"kinds"`
	Titles []string       `json:"titles"`
}

// Message is one notification, the same for every channel; each channel
// renders it its own way. It is what the spool keeps (as JSON).
type Message struct {
	Kind   Kind      `json:"kind"`
	Time   time.Time `json:"time"`
	Host   string    `json:"host"`
	Title  string    `json:"title"`
	Text   string    `json:"text"`
	Event  *Event    `json:"event,omitempty"`
	Digest *Digest   `json:"digest,omitempty"`
	Folded *Folded   `json:"folded,omitempty"`
}

// eventMessage words one event.
func eventMessage(host string, e Event) Message {
	e = e.sanitized()
	m := Message{Kind: e.Kind, Time: e.Time, Host: host, Event: &e}
	target := ""
	if e.Target.IsValid() {
		target = " " + e.Target.String()
	}
	var b strings.Builder
	switch e.Kind {
	case KindBan:
		m.Title = fmt.Sprintf("bansd on %s banned%s (%s)", host, target, e.Jail)
		fmt.Fprintf(&b, "Banned%s for %s by jail %s", target, e.Duration, e.Jail)
		if e.Level > 0 {
			fmt.Fprintf(&b, " (repeat offence, level %d)", e.Level)
		}
		b.WriteString(".\n")
	case KindUnban:
		m.Title = fmt.Sprintf("bansd on %s unbanned%s", host, target)
		fmt.Fprintf(&b, "Unbanned%s.\n", target)
	case KindAlarm:
		m.Title = fmt.Sprintf("bansd ALARM on %s: %s%s", host, e.Reason, target)
	case KindAlarmCleared:
		m.Title = fmt.Sprintf("bansd on %s: alarm cleared: %s%s", host, e.Reason, target)
	case KindTest:
		m.Title = fmt.Sprintf("bansd test message from %s", host)
		b.WriteString("This is a test message from bansd: this channel works.\n")
	default:
		m.Title = fmt.Sprintf("bansd on %s: %s %s", host, e.Kind, e.Reason)
	}
	if e.Reason != "" && e.Kind != KindAlarm && e.Kind != KindAlarmCleared {
		fmt.Fprintf(&b, "Reason: %s\n", e.Reason)
	}
	if e.Kind == KindAlarm || e.Kind == KindAlarmCleared {
		fmt.Fprintf(&b, "%s%s\n", e.Reason, target)
	}
	if e.Text != "" {
		b.WriteString("\n" + e.Text + "\n")
	}
	fmt.Fprintf(&b, "\nTime: %s\nHost: %s\n", e.Time.UTC().Format(time.RFC3339), host)
	m.Text = b.String()
	m.Title = clean(m.Title, 200, false)
	return m
}

func digestMessage(host string, d Digest) Message {
	m := Message{Kind: KindDigest, Time: d.Until, Host: host, Digest: &d}
	m.Title = fmt.Sprintf("bansd on %s: %d bans since %s", host, d.Bans, d.Since.UTC().Format("2006-01-02 15:04 MST"))
	var b strings.Builder
	fmt.Fprintf(&b, "%d bans of %d targets between %s and %s.\n", d.Bans, d.Targets,
		d.Since.UTC().Format(time.RFC3339), d.Until.UTC().Format(time.RFC3339))
	if len(d.Jails) > 0 {
		b.WriteString("\nTop jails:\n")
		for _, c := range d.Jails {
			fmt.Fprintf(&b, "  %-24s %d\n", c.Name, c.Count)
		}
	}
	if len(d.Networks) > 0 {
		b.WriteString("\nTop networks:\n")
		for _, c := range d.Networks {
			fmt.Fprintf(&b, "  %-24s %d\n", c.Name, c.Count)
		}
	}
	if len(d.RepeatOffenders) > 0 {
		b.WriteString("\nNew repeat offenders:\n")
		for _, r := range d.RepeatOffenders {
			fmt.Fprintf(&b, "  %s\n", r)
		}
		if d.MoreRepeatOffenders > 0 {
			fmt.Fprintf(&b, "  ... and %d more\n", d.MoreRepeatOffenders)
		}
	}
	if d.Lost > 0 {
		fmt.Fprintf(&b, "\n%d events were lost at a full queue (bansd was busier than its notifier).\n", d.Lost)
	}
	m.Text = b.String()
	return m
}

func foldedMessage(host string, now time.Time, f Folded) Message {
	m := Message{Kind: KindFolded, Time: now, Host: host, Folded: &f}
	m.Title = fmt.Sprintf("bansd on %s: %d more messages folded (hourly limit)", host, f.Count)
	var b strings.Builder
	fmt.Fprintf(&b, "The hourly message limit folded %d messages into this one:\n", f.Count)
	for _, k := range sortedKeys(f.Kinds) {
		fmt.Fprintf(&b, "  %-16s %d\n", k, f.Kinds[k])
	}
	if len(f.Titles) > 0 {
		b.WriteString("\nThe first of them:\n")
		for _, t := range f.Titles {
			fmt.Fprintf(&b, "  %s\n", t)
		}
	}
	m.Text = b.String()
	return m
}
