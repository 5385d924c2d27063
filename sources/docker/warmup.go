package docker

import (
	"fmt"
	"time"

	"github.com/bansd/bansd/sources"
)

// warmer delivers one container's warm-up: the messages the stored cursor
// says were processed before this start, as Warm lines, so that the engine
// rebuilds the windows an uninterrupted daemon would hold. It reads from
// the cursor's second minus Warmup; the boundary is the cursor's own rule
// (resume): every message stamped before its second, then the first Count
// messages stamped from its second on. No message is replayed that the
// cursor does not cover, and none the cursor covers is left out, so no
// line counts twice or not at all (follower.attach draws the line).
type warmer struct {
	f       *follower
	id      string
	created string // the container's creation (inspect)
	began   time.Time
	asm     assembler
	st      WarmupStatus
	done    bool
}

func (f *follower) newWarmer(id string, since int64, began time.Time, created string) *warmer {
	until := time.Unix(since, 0).UTC()
	w := &warmer{f: f, id: id, created: created, began: began, asm: assembler{max: f.d.opt.MaxLine},
		st: WarmupStatus{State: WarmupRunning, Want: until.Add(-f.d.opt.Warmup).Truncate(time.Second), Until: until}}
	w.publish()
	return w
}

// checkStart notes a log that begins after the wanted start in a container
// that existed then: Docker rotated those lines away (or none were
// written).
func (w *warmer) checkStart(first time.Time) {
	c, err := time.Parse(time.RFC3339Nano, w.created)
	if err != nil || !c.Before(w.st.Want) {
		// The log begins with the container: nothing older exists.
		return
	}
	if first.Unix() > w.st.Want.Unix() {
		w.partial(fmt.Sprintf("Docker's log begins at %s, after the wanted start %s (rotated away, or nothing was written)",
			first.Format(time.RFC3339), w.st.Want.Format(time.RFC3339)))
	}
}

// add replays one message.
func (w *warmer) add(m message) {
	if w.st.First.IsZero() {
		w.st.First = m.time
		w.checkStart(m.time)
		w.publish()
	}
	w.asm.add(m, func(a assembled) {
		if max := w.f.d.opt.WarmupMaxLines; max > 0 && w.st.Lines >= max {
			if w.st.Skipped == 0 {
				w.partial(fmt.Sprintf("more than docker.warmup_max_lines (%d): the lines from %s to the cursor were not counted",
					max, a.time.UTC().Format(time.RFC3339)))
			}
			w.st.Skipped++
			return
		}
		w.st.Lines++
		w.f.batch.addWarm(sources.Line{Service: w.f.svc.name, Container: w.id, Time: a.time, Text: a.text, Warm: true})
	})
}

func (w *warmer) partial(why string) {
	if w.st.Why != "" {
		why = w.st.Why + "; " + why
	}
	w.st.State, w.st.Why = WarmupPartial, why
}

// end closes the warm-up at the first live message (or the end of a
// stopped container's log). A line still open here had its end after the
// cursor; it is read live.
func (w *warmer) end() {
	if w.done {
		return
	}
	w.done = true
	if w.st.State == WarmupRunning {
		w.st.State = WarmupComplete
	}
	w.st.Took = w.f.d.now().Sub(w.began)
	w.publish()
	log := w.f.d.log.Info
	if w.st.State == WarmupPartial {
		log = w.f.d.log.Warn
	}
	log("warm-up done: windows rebuilt from the log", "service", w.f.svc.name, "container", short(w.id),
		"state", w.st.State, "lines", w.st.Lines, "from", w.st.Want, "until", w.st.Until, "took", w.st.Took, "why", w.st.Why)
}

func (w *warmer) publish() {
	st := w.st
	w.f.svc.set(func(s *service) { s.warmup = st })
}
