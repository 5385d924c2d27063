package ban

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/bansd/bansd/prefix"
	"github.com/bansd/bansd/store"
)

// ReplaceJail makes rs the bans of jail (a blocklist's new version): each
// request is banned as BanEach does (errs[i] says why rs[i] was not), and
// the bans of jail on the targets of lift that no request names are
// lifted. A target another jail holds now keeps that jail's ban, made at
// least as long as the list's, and is not lifted with the list; unless
// takeOver (may be nil) says that jail is another list's, whose ban may be
// taken over like a pulled one. Everything goes
// in one store transaction and, when it fits one batch, one kernel
// transaction; a bigger change is applied additions first, so a target in
// both versions is never out of the kernel. lifted counts the bans lifted.
func (m *Manager) ReplaceJail(ctx context.Context, jail string, rs []Request, lift []netip.Prefix, takeOver func(jail string) bool) (errs []error, lifted int, err error) {
	if jail == "" {
		return nil, 0, errors.New("ban: ReplaceJail needs a jail")
	}
	prepared, err := m.prepare(rs)
	if err != nil {
		return nil, 0, err
	}
	errs = make([]error, len(rs))
	bans := make([]store.Ban, 0, len(prepared))
	for i, p := range prepared {
		if p.err != nil {
			errs[i] = p.err
			continue
		}
		bans = append(bans, p.ban)
	}
	ts := make([]netip.Prefix, 0, len(lift))
	for _, t := range lift {
		if p, err := prefix.Normalize(t); err == nil {
			ts = append(ts, p)
		}
	}
	if len(bans) == 0 && len(ts) == 0 {
		return errs, 0, nil
	}
	res, err := m.submit(ctx, &job{bans: bans, unban: ts, replace: jail, takeOver: takeOver, uid: callerFrom(ctx)})
	if err != nil {
		return nil, 0, err
	}
	return errs, res.n, res.err
}

func (m *Manager) doReplace(j *job) {
	now := m.now()
	m.mu.Lock()
	_, write, refresh, uid, _ := m.pick([]*job{j}, now, false)
	// A live ban of another jail (a jail's, an operator's, another
	// list's) stays that jail's: the list only makes it last as long as
	// its own would, so that the list dropping the entry later never lifts
	// it early. A pulled ban is taken over (CrowdSec may lift its own), and
	// so is another list's when takeOver says so.
	extended := map[netip.Prefix]bool{}
	for i, b := range write {
		old, ok := m.index.get(b.Target)
		if ok && old.Until.After(now) && old.Jail != j.replace && !old.Pulled && (j.takeOver == nil || !j.takeOver(old.Jail)) {
			old.Until = b.Until
			write[i] = old
			extended[b.Target] = true
		}
	}
	named := make(map[netip.Prefix]bool, len(j.bans))
	for _, b := range j.bans {
		named[b.Target] = true
	}
	// An entry that stays in the list has its ban extended without an
	// event: the history (and the notifications) hear of changes only.
	var news []store.Ban
	for _, b := range write {
		if cur, _ := m.index.get(b.Target); !refresh[b.Target] || (cur.Jail != j.replace && !extended[b.Target]) {
			news = append(news, b)
		}
	}
	var del []netip.Prefix
	var unbanEvs []store.Event
	for _, t := range j.unban {
		if b, ok := m.index.get(t); ok && b.Jail == j.replace && !named[t] {
			del = append(del, t)
			unbanEvs = append(unbanEvs, store.Event{Time: now, Kind: store.EventUnban, Target: t, Jail: b.Jail, Level: b.Level, UID: j.uid})
		}
	}
	m.mu.Unlock()
	if len(write) == 0 && len(del) == 0 {
		j.done <- result{}
		return
	}
	// An extended ban is written whole, with its evidence from the store:
	// the index does not keep it.
	var ext []*store.Ban
	for i := range write {
		if extended[write[i].Target] {
			ext = append(ext, &write[i])
		}
	}
	if err := m.db.WithEvidence(ext); err != nil {
		j.done <- result{err: fmt.Errorf("ban: replace %s: read the evidence of the bans extended: %w", j.replace, err)}
		return
	}
	evs := append(banEvents(news, refresh, uid, now), unbanEvs...)
	if err := m.db.ReplaceBans(write, del, evs...); err != nil {
		j.done <- result{err: fmt.Errorf("ban: replace %s in store: %w", j.replace, err)}
		return
	}
	m.logEvents(evs)
	m.replaceIndex(del, write)
	// In the store: if the kernel part fails, the next reconcile restores
	// the additions and removes the removals.
	var err error
	if len(write)+len(del) <= m.batch {
		err = m.flushRepaired(write, del)
	} else if err = m.apply(write); err == nil {
		for chunk := range slices.Chunk(del, m.batch) {
			if err = m.flushRepaired(nil, chunk); err != nil {
				break
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("ban: replace %s in kernel: %w", j.replace, err)
	}
	j.done <- result{n: len(del), err: err}
}
