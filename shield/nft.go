package shield

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names inside the shared table; the ban manager and the kernel record own
// every other name there.
const (
	ChainName   = "shield"
	SetName     = "shield_ports"
	CounterName = "shield_refused"
	// Priority runs before UFW's and iptables' filter chains (0) on the
	// input hook, so their accepts cannot let the SYN reach docker-proxy.
	Priority = -10
)

// Options says where the shield lives.
type Options struct {
	// Table is the inet table shared with the ban manager ("bansd").
	Table string
	// NetNS, when > 0, is an open namespace descriptor to program instead
	// of the caller's own (tests).
	NetNS int
}

// Shield owns chain shield, set shield_ports and counter shield_refused in
// table inet <Table>.
//
// Layout: the input hook, because docker-proxy is a local socket and the
// IPv6 connections it would turn into the gateway are delivered, not
// forwarded. Raised means the set holds the ports; lowered means the set is
// empty while chain, rule and counter stay, so the refused count survives
// lowering and raising again, and a lowered shield matches nothing.
type Shield struct {
	conn    *nftables.Conn
	table   *nftables.Table
	chain   *nftables.Chain
	set     *nftables.Set
	counter *nftables.CounterObj

	mu sync.Mutex // serialises transactions and guards want
	// want is the state asked last: nil when lowered.
	want []uint16
}

// Status is what the kernel holds now.
type Status struct {
	// Up: the set holds at least one port.
	Up bool
	// Ports in the kernel's set, sorted.
	Ports []uint16
	// Intact: table, chain (hook, priority, policy), rule, set and counter
	// are as the shield made them and the set holds the ports asked last.
	Intact bool
	// Problem says what is not intact.
	Problem string
	// Refused counts the SYNs answered with a reset.
	Refused uint64
}

// Open returns the shield for o. It touches nothing in the kernel.
func Open(o Options) (*Shield, error) {
	if o.Table == "" {
		return nil, errors.New("shield: empty table name")
	}
	var opts []nftables.ConnOption
	if o.NetNS > 0 {
		opts = append(opts, nftables.WithNetNSFd(o.NetNS))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("shield: nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: o.Table}
	accept := nftables.ChainPolicyAccept
	return &Shield{
		conn:  conn,
		table: t,
		chain: &nftables.Chain{
			Name: ChainName, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(Priority),
			Policy: &accept,
		},
		set:     &nftables.Set{Table: t, Name: SetName, KeyType: nftables.TypeInetService},
		counter: &nftables.CounterObj{Table: t, Name: CounterName},
	}, nil
}

// Raise refuses IPv6 connections to ports from now on, replacing any ports
// raised before, in one transaction.
func (s *Shield) Raise(ctx context.Context, ports []uint16) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ps := slices.Clone(ports)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	if len(ps) > 0 && ps[0] == 0 {
		ps = ps[1:]
	}
	if len(ps) == 0 {
		return errors.New("shield: raise with no ports (use Lower)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.apply(ps); err != nil {
		return err
	}
	s.want = ps
	return nil
}

// Lower lets every connection through again. It is idempotent and never
// creates anything: with no table or set there is nothing to lower.
func (s *Shield) Lower(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want = nil
	return s.empty()
}

// Ensure repairs the kernel to the state asked last (after `nft flush
// ruleset`, a deleted table, or someone editing the chain). It only reads
// when all is intact: a commit would bump the ruleset generation that the
// ban manager's periodic reconcile checks before listing its sets.
func (s *Shield) Ensure(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, err := s.read(s.want); err == nil && st.Intact {
		return nil
	}
	if s.want == nil {
		return s.empty()
	}
	return s.apply(s.want)
}

func (s *Shield) empty() error {
	if _, err := s.conn.GetSetByName(s.table, SetName); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("shield: get set %s: %w", SetName, err)
	}
	s.conn.FlushSet(s.set)
	if err := s.conn.Flush(); err != nil {
		return fmt.Errorf("shield: lower (flush set %s): %w", SetName, err)
	}
	return nil
}

// apply builds everything in one transaction: the rule is replaced and
// the set's contents swapped atomically, so there is no moment without
// the shield while it is being repaired.
func (s *Shield) apply(ports []uint16) error {
	if ch, err := s.conn.ListChain(s.table, ChainName); err == nil && !chainMatches(ch) {
		s.conn.FlushChain(s.chain)
		s.conn.DelChain(s.chain)
	}
	s.conn.AddTable(s.table)
	s.conn.AddChain(s.chain)
	if err := s.conn.AddSet(s.set, nil); err != nil {
		s.discard()
		return fmt.Errorf("shield: set %s: %w", SetName, err)
	}
	s.conn.AddObj(s.counter)
	s.conn.FlushChain(s.chain)
	s.conn.AddRule(s.rule())
	s.conn.FlushSet(s.set)
	elems := make([]nftables.SetElement, len(ports))
	for i, p := range ports {
		elems[i] = nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)}
	}
	if err := s.conn.SetAddElements(s.set, elems); err != nil {
		s.discard()
		return fmt.Errorf("shield: set %s elements: %w", SetName, err)
	}
	if err := s.conn.Flush(); err != nil {
		return fmt.Errorf("shield: raise in table inet %s: %w", s.table.Name, err)
	}
	return nil
}

// discard drops a half-built transaction so the next Flush does not send
// it: the library only clears queued messages on a Flush with an error
// recorded, so one is recorded on purpose.
func (s *Shield) discard() {
	_ = s.conn.SetAddElements(&nftables.Set{Anonymous: true}, nil)
	_ = s.conn.Flush()
}

// rule is
//
//	meta nfproto ipv6 tcp dport @shield_ports tcp flags & (syn | ack) == syn counter name "shield_refused" reject with tcp reset
//
// Only a connection's first SYN is answered: ECN bits may ride on it, and
// a stray ACK to a shielded port is not a new connection.
func (s *Shield) rule() *nftables.Rule {
	return &nftables.Rule{Table: s.table, Chain: s.chain, Exprs: ruleExprs(),
		UserData: userdata.AppendString(nil, userdata.TypeComment, "bansd relay shield")}
}

func ruleExprs() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: SetName},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
		&expr.Objref{Type: int(nftables.ObjTypeCounter), Name: CounterName},
		// In an inet table, type 1 (NFT_REJECT_TCP_RST) is "with tcp reset".
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST, Code: 0},
	}
}

func chainMatches(ch *nftables.Chain) bool {
	return ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookInput &&
		ch.Priority != nil && int(*ch.Priority) == Priority &&
		ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept && ch.Type == nftables.ChainTypeFilter
}

// Status reads the kernel. A missing table is a lowered shield, intact
// only if nothing was asked.
func (s *Shield) Status(ctx context.Context) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, err
	}
	s.mu.Lock()
	want := s.want
	s.mu.Unlock()
	return s.read(want)
}

// read is Status against want, the ports asked last (nil: lowered).
func (s *Shield) read(want []uint16) (Status, error) {
	var st Status
	bad := func(p string) (Status, error) {
		st.Intact, st.Problem = false, p
		return st, nil
	}
	if _, err := s.conn.ListTableOfFamily(s.table.Name, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.ENOENT) {
			if want != nil {
				return bad("table inet " + s.table.Name + " is missing")
			}
			st.Intact = true
			return st, nil
		}
		return Status{}, fmt.Errorf("shield: list table: %w", err)
	}
	set, err := s.conn.GetSetByName(s.table, SetName)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			if want != nil {
				return bad("set " + SetName + " is missing")
			}
			st.Intact = true
			return st, nil
		}
		return Status{}, fmt.Errorf("shield: get set: %w", err)
	}
	elems, err := s.conn.GetSetElements(set)
	if err != nil {
		return Status{}, fmt.Errorf("shield: set elements: %w", err)
	}
	for _, e := range elems {
		if len(e.Key) == 2 {
			st.Ports = append(st.Ports, binaryutil.BigEndian.Uint16(e.Key))
		}
	}
	slices.Sort(st.Ports)
	st.Up = len(st.Ports) > 0
	if o, err := s.conn.GetObject(&nftables.CounterObj{Table: s.table, Name: CounterName}); err == nil {
		if c, ok := o.(*nftables.CounterObj); ok {
			st.Refused = c.Packets
		}
	} else if !errors.Is(err, unix.ENOENT) {
		return Status{}, fmt.Errorf("shield: counter: %w", err)
	} else if want != nil {
		return bad("counter " + CounterName + " is missing")
	}
	if !slices.Equal(st.Ports, want) {
		return bad(fmt.Sprintf("set %s holds %v, want %v", SetName, st.Ports, want))
	}
	if want == nil {
		st.Intact = true
		return st, nil
	}
	ch, err := s.conn.ListChain(s.table, ChainName)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return bad("chain " + ChainName + " is missing")
		}
		return Status{}, fmt.Errorf("shield: list chain: %w", err)
	}
	if !chainMatches(ch) {
		return bad("chain " + ChainName + " has the wrong hook, priority or policy")
	}
	rules, err := s.conn.GetRules(s.table, s.chain)
	if err != nil {
		return Status{}, fmt.Errorf("shield: list rules: %w", err)
	}
	if len(rules) != 1 || !ruleMatches(rules[0]) {
		return bad(fmt.Sprintf("chain %s has %d rules, want the one reset rule", ChainName, len(rules)))
	}
	st.Intact = true
	return st, nil
}

// ruleMatches compares the kinds and the lookup/reject of a rule read back,
// enough to notice a rule that is not ours.
func ruleMatches(r *nftables.Rule) bool {
	want := ruleExprs()
	if len(r.Exprs) != len(want) {
		return false
	}
	for i, e := range r.Exprs {
		if fmt.Sprintf("%T", e) != fmt.Sprintf("%T", want[i]) {
			return false
		}
	}
	l, ok := r.Exprs[5].(*expr.Lookup)
	rj, ok2 := r.Exprs[10].(*expr.Reject)
	return ok && ok2 && l.SetName == SetName && rj.Type == unix.NFT_REJECT_TCP_RST
}
