package seen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Health is what a check of the kernel record found.
type Health struct {
	// Intact: table, chain (hook, priority, policy), the five sets and the
	// four rules are as Ensure makes them.
	Intact bool
	// Problem says what is wrong when !Intact.
	Problem string
	// Ports is the number of ports recorded.
	Ports int
	// Sets are the record's sets, with room; empty when !Intact. Element
	// counts are not here: see Count for why.
	Sets []SetHealth
	// Full: some set is full, so new handshakes into it are not recorded
	// (and lines about them are not counted) until elements expire.
	Full bool
}

// SetHealth is one record set.
type SetHealth struct {
	Name string
	Size uint32
	// Full: the kernel refused one more element (ENFILE). It counts
	// expired elements not yet collected, as the packet path does.
	Full bool
}

// OK is Intact and not Full.
func (h Health) OK() bool { return h.Intact && !h.Full }

// probeKey is a key no handshake can write: source address 0.0.0.0 (or ::)
// and port 0 never complete a handshake, because the SYN-ACK cannot be
// delivered to them.
func probeKey(sp setSpec) []byte {
	n := 4
	if sp.v6 {
		n = 16
	}
	if sp.withPort {
		n += 4
	}
	return make([]byte, n)
}

// Health checks the structure and probes each set for room; it costs a few
// milliseconds whatever the sets hold, so it can run every reconcile. It never blocks on a full set: the probe is one transaction that
// adds and deletes an impossible key, and a full set only makes it fail.
func (r *Record) Health(ctx context.Context) (Health, error) {
	if err := ctx.Err(); err != nil {
		return Health{}, err
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	c := r.wconn
	h := Health{}
	if _, err := c.ListTableOfFamily(r.table.Name, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			h.Problem = "table inet " + r.table.Name + " is missing"
			return h, nil
		}
		return h, fmt.Errorf("seen: list table: %w", err)
	}
	ch, err := c.ListChain(r.table, ChainName)
	if errors.Is(err, unix.ENOENT) {
		h.Problem = "chain " + ChainName + " is missing"
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("seen: list chain: %w", err)
	}
	if !r.chainMatches(ch) {
		h.Problem = "chain " + ChainName + " has the wrong type, hook, priority or policy"
		return h, nil
	}
	sets, err := c.GetSets(r.table)
	if err != nil {
		return h, fmt.Errorf("seen: list sets: %w", err)
	}
	have := map[string]*nftables.Set{}
	for _, s := range sets {
		have[s.Name] = s
	}
	if s := have[PortsSet]; s == nil || !setMatches(s, r.portsSet()) {
		h.Problem = "set " + PortsSet + " is missing or differs"
		return h, nil
	}
	for _, sp := range recordSets {
		if s := have[sp.name]; s == nil || !setMatches(s, r.newSet(sp)) {
			h.Problem = "set " + sp.name + " is missing or differs"
			return h, nil
		}
	}
	for _, chain := range []*nftables.Chain{r.chain, r.local} {
		if chain == r.local {
			ch, err := c.ListChain(r.table, LocalChainName)
			if err != nil || !r.chainIs(ch, r.local) {
				h.Problem = "chain " + LocalChainName + " is missing or differs"
				return h, nil
			}
		}
		rules, err := c.GetRules(r.table, chain)
		if err != nil {
			return h, fmt.Errorf("seen: list rules: %w", err)
		}
		if p := checkRules(rules); p != "" {
			h.Problem = chain.Name + ": " + p
			return h, nil
		}
	}
	ports, err := c.GetSetElements(have[PortsSet])
	if err != nil {
		return h, fmt.Errorf("seen: list ports: %w", err)
	}
	h.Ports = len(ports)
	// Someone emptied or edited the set: the record silently stops.
	if r.ports != nil && len(ports) != len(r.ports) {
		h.Problem = fmt.Sprintf("set %s holds %d ports, want %d", PortsSet, len(ports), len(r.ports))
		return h, nil
	}
	h.Intact = true
	for _, sp := range recordSets {
		if err := ctx.Err(); err != nil {
			return h, err
		}
		s := have[sp.name]
		full, err := r.probeFull(s, sp)
		if err != nil {
			return h, err
		}
		h.Sets = append(h.Sets, SetHealth{Name: sp.name, Size: s.Size, Full: full})
		h.Full = h.Full || full
	}
	return h, nil
}

// probeFull asks the kernel whether the set has room, and changes nothing,
// not even the ruleset generation (the ban manager's periodic reconcile
// reads it as "nobody else committed"): the batch adds probeKey, then
// deletes it twice. The second delete always fails (ENOENT), so the batch
// is aborted; ENFILE on the add, reported first, means the set is full.
// Called with wmu held.
func (r *Record) probeFull(s *nftables.Set, sp setSpec) (bool, error) {
	k := []nftables.SetElement{{Key: probeKey(sp)}}
	for _, queue := range []func(*nftables.Set, []nftables.SetElement) error{
		r.wconn.SetAddElements, r.wconn.SetDeleteElements, r.wconn.SetDeleteElements,
	} {
		if err := queue(s, k); err != nil {
			r.discard()
			return false, fmt.Errorf("seen: probe %s: %w", sp.name, err)
		}
	}
	err := r.wconn.Flush()
	switch {
	case errors.Is(err, unix.ENFILE):
		return true, nil
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err == nil:
		return false, fmt.Errorf("seen: probe %s: the batch meant to abort was committed", sp.name)
	default:
		return false, fmt.Errorf("seen: probe %s: %w", sp.name, err)
	}
}

// checkRules wants exactly one rule per record set, each looking the
// destination port up in @ports, reading the conntrack direction and the
// ASSURED bit (a rule on "ct state" instead would record spoofed SYNs), and
// ending in a dynset into its set.
func checkRules(rules []*nftables.Rule) string {
	var got []string
	for _, rl := range rules {
		var dyn string
		lookup, dir, assured := false, false, false
		for _, e := range rl.Exprs {
			switch e := e.(type) {
			case *expr.Lookup:
				lookup = lookup || e.SetName == PortsSet
			case *expr.Ct:
				dir = dir || e.Key == expr.CtKeyDIRECTION
			case *expr.Bitwise:
				assured = assured || bytes.Equal(e.Mask, binaryutil.NativeEndian.PutUint32(ipsAssured))
			case *expr.Dynset:
				dyn = e.SetName
			}
		}
		if dyn == "" || !lookup || !dir || !assured {
			return fmt.Sprintf("chain %s holds a rule that is not ours", ChainName)
		}
		got = append(got, dyn)
	}
	slices.Sort(got)
	want := []string{Seen4, Seen4A, Seen6, Seen6A}
	if !slices.Equal(got, want) {
		return fmt.Sprintf("chain %s records into %v, want %v", ChainName, got, want)
	}
	return ""
}

// Count returns the number of live elements of one of the record's sets
// (Seen4, Seen4A, Seen6, Seen6A, PortsSet). It is a kernel dump, and the
// kernel restarts its hash walk for every 32 KiB part of a dump, so the
// cost grows with the square of the size: 100k elements took 6.4 s on the
// 2-CPU test machine (`nft list set` 3.8 s). For status pages and tests,
// not for every reconcile; give ctx a deadline.
func (r *Record) Count(ctx context.Context, set string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	switch set {
	case Seen4, Seen4A, Seen6, Seen6A, PortsSet:
	default:
		return 0, fmt.Errorf("seen: %q is not a set of the record", set)
	}
	return r.countElements(ctx, set)
}
