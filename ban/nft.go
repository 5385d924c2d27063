package ban

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bansd/bansd/internal/nfhook"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// chainName is the ban manager's base chain. The table holds others that
// are not the manager's (seen, seen_local, shield): it never touches them.
const chainName = "prerouting"

// maxBatch caps elements per transaction whatever the configuration says:
// with the distributions' default wmem_max a transaction above ~416 KiB
// (about 10k timeout elements) fails with EMSGSIZE, and batches of 2-5k
// already run at near-peak rate (BenchmarkBanMany100k in bench_test.go measures it).
const maxBatch = 5000

// Timeouts travel in milliseconds, and an element without one in a timeout
// set is permanent, so every element that is not meant to be (Permanent)
// gets at least a second. The upper bound keeps a typo from outliving the
// machine.
const (
	minTimeout = time.Second
	maxTimeout = 10 * 365 * 24 * time.Hour
)

// Element is one ban as the kernel holds it.
type Element struct {
	Target netip.Prefix
	// Timeout is the time the kernel keeps the element.
	Timeout time.Duration
	// Permanent: no timeout at all (Timeout is ignored); the element stays
	// until it is removed.
	Permanent bool
}

// SetClass identifies one hash set: a family and the prefix length of its
// keys. Each class has its own set, named counter and masked rule.
type SetClass struct {
	V6   bool
	Bits int
}

// ClassOf returns the set class of a (valid, unmapped) prefix.
func ClassOf(p netip.Prefix) SetClass { return SetClass{V6: p.Addr().Is6(), Bits: p.Bits()} }

// Name is the set's name, e.g. "v4_24".
func (c SetClass) Name() string {
	if c.V6 {
		return "v6_" + strconv.Itoa(c.Bits)
	}
	return "v4_" + strconv.Itoa(c.Bits)
}

// Counter is the name of the counter object the class's rule feeds.
func (c SetClass) Counter() string { return "drop_" + c.Name() }

func (c SetClass) addrLen() int {
	if c.V6 {
		return 16
	}
	return 4
}

func parseClass(name string) (SetClass, bool) {
	fam, bits, ok := strings.Cut(name, "_")
	if !ok {
		return SetClass{}, false
	}
	n, err := strconv.Atoi(bits)
	if err != nil {
		return SetClass{}, false
	}
	c := SetClass{V6: fam == "v6", Bits: n}
	if (fam != "v4" && fam != "v6") || n < 1 || n > c.addrLen()*8 || c.Name() != name {
		return SetClass{}, false
	}
	return c, true
}

// DefaultClasses are the sets the default jails need, created up front so
// that the first ban of each kind is a plain element add.
func DefaultClasses() []SetClass {
	return []SetClass{{false, 32}, {false, 24}, {true, 128}, {true, 64}, {true, 48}}
}

// Health is what a structural check of the table found.
type Health struct {
	OK bool
	// Problem says what is wrong when !OK.
	Problem string
}

// Firewall is the kernel side of the ban manager. Ensure, Add and Remove
// are called from one goroutine (the manager's actor); Check, List and
// Status only read, and may run beside them.
type Firewall interface {
	// Ensure creates whatever is missing of the table, the chain, the sets
	// of classes, their counters and rules, keeping existing elements.
	Ensure(classes []SetClass) error
	// Check reports whether the table, chain, sets and rules are intact.
	Check() (Health, error)
	// Add puts elements in their sets in one transaction, creating the
	// set of a new class in it too. Elements must be valid (Validate).
	// An element already present gets the new timeout.
	Add(elems []Element) error
	// Remove deletes elements in one transaction; missing ones are fine.
	Remove(targets []netip.Prefix) error
	// Swap removes and adds elements in one transaction (Remove then Add,
	// with nothing enforced in between).
	Swap(remove []netip.Prefix, add []Element) error
	// List returns every element of our sets with its remaining time. It
	// walks the sets in parts, so changes during it can make it miss an
	// element or show one twice.
	List() ([]Element, error)
	// Lookup returns those of targets that are in their sets, each with
	// its remaining time: one exact lookup each, not a walk.
	Lookup(targets []netip.Prefix) ([]Element, error)
	// Status reads the table's shape and the counters.
	Status() (TableStatus, error)
	// Generation is the namespace's ruleset generation: every committed
	// transaction bumps it by one (anyone's, on any table, an element
	// deleted as much as a table flushed); elements timing out do not.
	Generation() (uint32, error)
}

// TableShape is the table and its chain as the kernel holds them.
type TableShape struct {
	Table    string
	Present  bool
	Chain    string
	Hook     string
	Priority int
	Policy   string
	Rules    int
}

// TableStatus is the kernel side of FirewallStatus.
type TableStatus struct {
	TableShape
	Counters map[string]Counter // by set name
}

// Counter is what a set's rule dropped.
type Counter struct {
	Packets, Bytes uint64
}

// NFT is the nftables Firewall: table inet <table>, one base chain at
// prerouting, one timeout hash set per class.
type NFT struct {
	conn *nftables.Conn
	// lasting is a connection kept open for the actor's small, frequent
	// reads: Generation around every flush (a socket per call cost more
	// than the flush) and Lookup's one request per target.
	lasting  *nftables.Conn
	table    *nftables.Table
	chain    *nftables.Chain
	priority int
	// sets are the classes created in the kernel since the last Ensure;
	// written by the actor, read by Check beside it.
	mu   sync.Mutex
	sets map[SetClass]*nftables.Set
	// readdRefreshes: re-adding an existing element updates its timeout
	// (Linux >= 6.12). Older kernels keep the old expiry, so a refresh
	// there must delete and re-add in the same transaction.
	readdRefreshes bool
	// scope is nil for scope "all"; for "mail" every drop rule also
	// matches TCP to a port of the set ScopeSetName. portMu serializes the
	// transactions that write that set (Ensure, SetMailPorts); scopeS is
	// the set as Ensure queued it, for rules queued later.
	scope  *scope
	portMu sync.Mutex
	scopeS *nftables.Set
}

type nftOptions struct {
	conn       []nftables.ConnOption
	portable   *bool
	scope      string
	scopePorts []uint16
}

// WithScope chooses what a ban drops: "all" (every packet, the default)
// or "mail" (TCP to Mailu's published ports, learnt later through
// SetMailPorts, plus extra).
func WithScope(scope string, extra []uint16) NFTOption {
	return func(o *nftOptions) { o.scope, o.scopePorts = scope, extra }
}

// NFTOption configures NewNFT.
type NFTOption func(*nftOptions)

// WithNetNS programs the namespace behind fd instead of the caller's.
func WithNetNS(fd int) NFTOption {
	return func(o *nftOptions) { o.conn = append(o.conn, nftables.WithNetNSFd(fd)) }
}

// WithSockOptions sets netlink socket options and turns off the library's
// automatic buffer enlargement (tests use it to emulate a default wmem_max).
func WithSockOptions(opts ...nftables.SockOption) NFTOption {
	return func(o *nftOptions) { o.conn = append(o.conn, nftables.WithSockOptions(opts...)) }
}

// WithDeleteRefresh forces (true) or forbids (false) refreshing an
// element's timeout by delete+add instead of a plain re-add; by default it
// depends on the running kernel's version.
func WithDeleteRefresh(on bool) NFTOption {
	return func(o *nftOptions) { o.portable = &on }
}

// NewNFT returns the nftables firewall: table inet <table>, its base chain
// at priority. It touches nothing until Ensure.
func NewNFT(table string, priority int, opts ...NFTOption) (*NFT, error) {
	var o nftOptions
	for _, opt := range opts {
		opt(&o)
	}
	if table == "" {
		return nil, errors.New("nftables: empty table name")
	}
	conn, err := nftables.New(o.conn...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	gen, err := nftables.New(append(slices.Clone(o.conn), nftables.AsLasting())...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	readd := kernelAtLeast(6, 12)
	if o.portable != nil {
		readd = !*o.portable
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: table}
	var sc *scope
	switch o.scope {
	case "", "all":
	case "mail":
		c2, err := nftables.New(o.conn...)
		if err != nil {
			return nil, fmt.Errorf("nftables: %w", err)
		}
		sc = &scope{extra: slices.Clone(o.scopePorts), conn: c2}
	default:
		return nil, fmt.Errorf("nftables: scope %q: want \"all\" or \"mail\"", o.scope)
	}
	accept := nftables.ChainPolicyAccept
	return &NFT{
		scope:   sc,
		conn:    conn,
		lasting: gen,
		table:   t,
		chain: &nftables.Chain{
			Name: chainName, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(priority)),
			Policy: &accept,
		},
		priority:       priority,
		sets:           map[SetClass]*nftables.Set{},
		readdRefreshes: readd,
	}, nil
}

func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	var maj, min int
	if _, err := fmt.Sscanf(rel, "%d.%d", &maj, &min); err != nil {
		return false
	}
	return maj > major || maj == major && min >= minor
}

// Ensure implements Firewall. One transaction: table and chain are created
// if missing, the chain's rules are replaced atomically (no unenforced
// window), sets and counters are created if missing and keep their
// elements and counts.
func (n *NFT) Ensure(classes []SetClass) error {
	want := map[SetClass]bool{}
	for _, c := range classes {
		want[c] = true
	}
	for c := range n.sets {
		want[c] = true
	}
	// Adopt sets of ours left in the kernel by an earlier run, so their
	// rules are restored and their elements can be reconciled.
	if sets, err := n.conn.GetSets(n.table); err == nil {
		for _, s := range sets {
			if c, ok := parseClass(s.Name); ok {
				want[c] = true
			}
		}
	}
	cs := make([]SetClass, 0, len(want))
	for c := range want {
		cs = append(cs, c)
	}
	sortClasses(cs)

	// A chain left with another hook or priority (config change) cannot be
	// updated in place; it is replaced in the same transaction.
	if ch, err := n.conn.ListChain(n.table, chainName); err == nil && !n.chainMatches(ch) {
		n.conn.FlushChain(n.chain)
		n.conn.DelChain(n.chain)
	}
	n.portMu.Lock()
	defer n.portMu.Unlock()
	n.conn.AddTable(n.table)
	n.conn.AddChain(n.chain)
	n.conn.FlushChain(n.chain)
	var scopeS *nftables.Set
	if n.scope != nil {
		scopeS = n.scopeSet()
		n.mu.Lock()
		ports := n.scope.ports()
		n.mu.Unlock()
		if err := n.queueScope(n.conn, scopeS, ports); err != nil {
			n.discard()
			return err
		}
	} else if _, err := n.conn.GetSetByName(n.table, ScopeSetName); err == nil {
		// Left by a "mail" run; its rules went with the flush above.
		n.conn.DelSet(n.scopeSet())
	}
	sets := make(map[SetClass]*nftables.Set, len(cs))
	for _, c := range cs {
		s, err := n.queueSet(c, scopeS)
		if err != nil {
			n.discard()
			return err
		}
		sets[c] = s
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: ensure table inet %s: %w", n.table.Name, err)
	}
	n.mu.Lock()
	n.sets = sets
	n.scopeS = scopeS
	n.mu.Unlock()
	return nil
}

// discard drops a half-built transaction so that it is never sent with the
// next one. The library only drops queued messages on a Flush that has an
// error recorded, and not every queueing call records its error, so one is
// recorded on purpose (updating an anonymous set always fails).
func (n *NFT) discard() {
	_ = n.conn.SetAddElements(&nftables.Set{Anonymous: true}, nil)
	_ = n.conn.Flush()
}

func (n *NFT) chainMatches(ch *nftables.Chain) bool {
	return ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookPrerouting &&
		ch.Priority != nil && int(*ch.Priority) == n.priority &&
		ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept && ch.Type == nftables.ChainTypeFilter
}

// queueSet adds to the pending transaction the set, counter and drop rule
// of one class.
func (n *NFT) queueSet(c SetClass, scopeS *nftables.Set) (*nftables.Set, error) {
	s := &nftables.Set{
		Table: n.table, Name: c.Name(), KeyType: nftables.TypeIPAddr,
		KeyByteOrder: binaryutil.BigEndian, HasTimeout: true,
	}
	if c.V6 {
		s.KeyType = nftables.TypeIP6Addr
	}
	if err := n.conn.AddSet(s, nil); err != nil {
		return nil, fmt.Errorf("nftables: set %s: %w", s.Name, err)
	}
	n.conn.AddObj(&nftables.CounterObj{Table: n.table, Name: c.Counter()})
	n.conn.AddRule(n.dropRule(c, s, scopeS))
	return s, nil
}

// dropRule is "meta nfproto ipvX [meta l4proto tcp tcp dport @scope_ports]
// <saddr> [& mask] @set counter name <c> drop", the bracketed match only
// for scope "mail" (scopeS != nil).
// The nfproto guard is required in an inet table: without it the IPv4
// source load would also read bytes 12-15 of IPv6 headers.
func (n *NFT) dropRule(c SetClass, s, scopeS *nftables.Set) *nftables.Rule {
	proto, off := byte(unix.NFPROTO_IPV4), uint32(12)
	if c.V6 {
		proto, off = unix.NFPROTO_IPV6, 8
	}
	ln := uint32(c.addrLen())
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
	ex = append(ex, scopeExprs(scopeS)...)
	ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: ln})
	if c.Bits < int(ln)*8 {
		ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: ln,
			Mask: net.CIDRMask(c.Bits, int(ln)*8), Xor: make([]byte, ln)})
	}
	ex = append(ex,
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: c.Counter()},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
	return &nftables.Rule{Table: n.table, Chain: n.chain, Exprs: ex,
		UserData: userdata.AppendString(nil, userdata.TypeComment, "bansd "+s.Name)}
}

// Check implements Firewall with cheap reads: the table, the chain's hook
// and priority, the sets, and one rule per set.
func (n *NFT) Check() (Health, error) {
	if _, err := n.conn.ListTableOfFamily(n.table.Name, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Health{Problem: "table inet " + n.table.Name + " is missing"}, nil
		}
		return Health{}, fmt.Errorf("nftables: list table: %w", err)
	}
	ch, err := n.conn.ListChain(n.table, chainName)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Health{Problem: "chain " + chainName + " is missing"}, nil
		}
		return Health{}, fmt.Errorf("nftables: list chain: %w", err)
	}
	if !n.chainMatches(ch) {
		return Health{Problem: "chain " + chainName + " has the wrong hook, priority or policy"}, nil
	}
	sets, err := n.conn.GetSets(n.table)
	if err != nil {
		return Health{}, fmt.Errorf("nftables: list sets: %w", err)
	}
	have := map[string]bool{}
	for _, s := range sets {
		have[s.Name] = true
	}
	rules, err := n.conn.GetRules(n.table, n.chain)
	if err != nil {
		return Health{}, fmt.Errorf("nftables: list rules: %w", err)
	}
	ruleFor := map[string]int{}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if l, ok := e.(*expr.Lookup); ok {
				ruleFor[l.SetName]++
			}
		}
	}
	n.mu.Lock()
	want := make([]SetClass, 0, len(n.sets))
	for c := range n.sets {
		want = append(want, c)
	}
	n.mu.Unlock()
	for _, c := range want {
		if !have[c.Name()] {
			return Health{Problem: "set " + c.Name() + " is missing"}, nil
		}
		if ruleFor[c.Name()] != 1 {
			return Health{Problem: fmt.Sprintf("set %s has %d rules, want 1", c.Name(), ruleFor[c.Name()])}, nil
		}
	}
	if len(rules) != len(want) {
		return Health{Problem: fmt.Sprintf("chain has %d rules, want %d", len(rules), len(want))}, nil
	}
	if p, err := n.checkScope(have, ruleFor[ScopeSetName], len(rules)); err != nil || p != "" {
		return Health{Problem: p}, err
	}
	return Health{OK: true}, nil
}

// Add implements Firewall.
func (n *NFT) Add(elems []Element) error {
	if len(elems) == 0 {
		return nil
	}
	created, err := n.queueAdd(elems)
	if err != nil {
		return err
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: add %d elements: %w", len(elems), err)
	}
	n.created(created)
	return nil
}

// Swap implements Firewall: the removals and additions are one kernel
// transaction, so no packet sees the state between them.
func (n *NFT) Swap(remove []netip.Prefix, add []Element) error {
	queued, err := n.queueRemove(remove)
	if err != nil {
		return err
	}
	created, err := n.queueAdd(add)
	if err != nil {
		return err
	}
	if queued == 0 && len(add) == 0 {
		return nil
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: remove %d and add %d elements: %w", len(remove), len(add), err)
	}
	n.created(created)
	return nil
}

// queueAdd queues elems (and the sets of new classes) on the connection;
// the caller flushes and then records the sets created.
func (n *NFT) queueAdd(elems []Element) (map[SetClass]*nftables.Set, error) {
	byClass := map[SetClass][]nftables.SetElement{}
	var refresh map[SetClass][]nftables.SetElement
	for _, e := range elems {
		c := ClassOf(e.Target)
		k := keyOf(e.Target)
		el := nftables.SetElement{Key: k, Timeout: clampTimeout(e.Timeout)}
		if e.Permanent {
			el.Timeout = 0
		}
		byClass[c] = append(byClass[c], el)
		// Re-adding without a timeout would keep an element's old one:
		// a permanent element always replaces.
		if !n.readdRefreshes || e.Permanent {
			if refresh == nil {
				refresh = map[SetClass][]nftables.SetElement{}
			}
			refresh[c] = append(refresh[c], nftables.SetElement{Key: k})
		}
	}
	created := map[SetClass]*nftables.Set{}
	for c, els := range byClass {
		s := n.sets[c]
		if s == nil {
			var err error
			n.mu.Lock()
			scopeS := n.scopeS
			n.mu.Unlock()
			if scopeS != nil {
				// Named only: the set exists, its transaction ID is gone.
				scopeS = n.scopeSet()
			}
			if s, err = n.queueSet(c, scopeS); err != nil {
				n.discard()
				return nil, err
			}
			created[c] = s
		}
		// Destroy first, in the same transaction, so that older kernels
		// take the new timeout; destroy (not delete) tolerates absence.
		if del := refresh[c]; len(del) > 0 && created[c] == nil {
			if err := n.conn.SetDestroyElements(s, del); err != nil {
				n.discard()
				return nil, fmt.Errorf("nftables: refresh %s: %w", s.Name, err)
			}
		}
		if err := n.conn.SetAddElements(s, els); err != nil {
			n.discard()
			return nil, fmt.Errorf("nftables: add to %s: %w", s.Name, err)
		}
	}
	return created, nil
}

func (n *NFT) created(sets map[SetClass]*nftables.Set) {
	n.mu.Lock()
	for c, s := range sets {
		n.sets[c] = s
	}
	n.mu.Unlock()
}

// Remove implements Firewall. Destroy (Linux >= 6.3) makes it idempotent:
// a plain delete of one missing element would abort the whole transaction.
func (n *NFT) Remove(targets []netip.Prefix) error {
	queued, err := n.queueRemove(targets)
	if err != nil || queued == 0 {
		return err
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: remove %d elements: %w", len(targets), err)
	}
	return nil
}

// queueRemove queues the removal of targets and says how many sets it
// touches (0: nothing of their classes exists).
func (n *NFT) queueRemove(targets []netip.Prefix) (int, error) {
	byClass := map[SetClass][]nftables.SetElement{}
	for _, t := range targets {
		c := ClassOf(t)
		if n.sets[c] == nil {
			continue // no such set: nothing of that class is banned
		}
		byClass[c] = append(byClass[c], nftables.SetElement{Key: keyOf(t)})
	}
	for c, els := range byClass {
		if err := n.conn.SetDestroyElements(n.sets[c], els); err != nil {
			n.discard()
			return 0, fmt.Errorf("nftables: remove from %s: %w", c.Name(), err)
		}
	}
	return len(byClass), nil
}

// List implements Firewall. It is slow for big sets (seconds per 100k),
// which is why the manager keeps its own index and lists only to reconcile.
func (n *NFT) List() ([]Element, error) {
	sets, err := n.conn.GetSets(n.table)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil // no table, no bans
	}
	if err != nil {
		return nil, fmt.Errorf("nftables: list sets: %w", err)
	}
	var out []Element
	for _, s := range sets {
		c, ok := parseClass(s.Name)
		if !ok {
			continue
		}
		els, err := n.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables: list set %s: %w", s.Name, err)
		}
		for _, e := range els {
			a, ok := netip.AddrFromSlice(e.Key)
			if !ok || a.Is6() != c.V6 {
				continue
			}
			out = append(out, elementOf(netip.PrefixFrom(a, c.Bits), e))
		}
	}
	return out, nil
}

// Lookup implements Firewall with one NFT_MSG_GETSETELEM request per
// target (the kernel answers a request for several with ENOENT at the
// first one it lacks), on the lasting connection: it is called from the
// actor only.
func (n *NFT) Lookup(targets []netip.Prefix) ([]Element, error) {
	var out []Element
	for _, t := range targets {
		set := n.sets[ClassOf(t)]
		if set == nil {
			continue
		}
		els, err := n.lasting.FindSetElements(set, []nftables.SetElement{{Key: keyOf(t)}})
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("nftables: look up %s in %s: %w", t, set.Name, err)
		}
		for _, e := range els {
			out = append(out, elementOf(t.Masked(), e))
		}
	}
	return out, nil
}

// elementOf is a kernel element of target's set as the manager sees it:
// one added without a timeout never expires.
func elementOf(target netip.Prefix, e nftables.SetElement) Element {
	return Element{Target: target, Timeout: e.Expires, Permanent: e.Timeout == 0 && e.Expires == 0}
}

// Generation implements Firewall with one NFT_MSG_GETGEN round trip on
// the lasting connection; it is called from one goroutine (the actor).
func (n *NFT) Generation() (uint32, error) {
	g, err := n.lasting.GetGen()
	if err != nil {
		return 0, fmt.Errorf("nftables: get ruleset generation: %w", err)
	}
	return g.ID, nil
}

// Close releases the lasting connection. The kernel's table stays.
func (n *NFT) Close() error { return n.lasting.CloseLasting() }

// Status implements Firewall.
func (n *NFT) Status() (TableStatus, error) {
	st := TableStatus{TableShape: TableShape{Table: "inet " + n.table.Name, Chain: chainName}, Counters: map[string]Counter{}}
	if _, err := n.conn.ListTableOfFamily(n.table.Name, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return st, nil
		}
		return st, fmt.Errorf("nftables: list table: %w", err)
	}
	st.Present = true
	ch, err := n.conn.ListChain(n.table, chainName)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return st, fmt.Errorf("nftables: list chain: %w", err)
	}
	if err == nil {
		if ch.Hooknum != nil {
			st.Hook = nfhook.Name(*ch.Hooknum)
		}
		if ch.Priority != nil {
			st.Priority = int(*ch.Priority)
		}
		if ch.Policy != nil {
			st.Policy = map[nftables.ChainPolicy]string{nftables.ChainPolicyAccept: "accept", nftables.ChainPolicyDrop: "drop"}[*ch.Policy]
		}
		rules, err := n.conn.GetRules(n.table, n.chain)
		if err != nil {
			return st, fmt.Errorf("nftables: list rules: %w", err)
		}
		st.Rules = len(rules)
	}
	objs, err := n.conn.GetObjects(n.table)
	if err != nil {
		return st, fmt.Errorf("nftables: list counters: %w", err)
	}
	for _, o := range objs {
		if c, ok := o.(*nftables.CounterObj); ok {
			if set, ok := strings.CutPrefix(c.Name, "drop_"); ok {
				st.Counters[set] = Counter{Packets: c.Packets, Bytes: c.Bytes}
			}
		}
	}
	return st, nil
}

// keyOf is the set key of a validated prefix: the masked address, 4 bytes
// for IPv4 (a 16-byte key would fail the whole transaction with EINVAL).
func keyOf(p netip.Prefix) []byte {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

func clampTimeout(d time.Duration) time.Duration {
	return min(max(d, minTimeout), maxTimeout).Truncate(time.Millisecond)
}

func sortClasses(cs []SetClass) {
	slices.SortFunc(cs, func(a, b SetClass) int {
		if a.V6 != b.V6 {
			if a.V6 {
				return 1
			}
			return -1
		}
		return b.Bits - a.Bits
	})
}
