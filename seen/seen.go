// Package seen keeps the kernel's record of completed TCP handshakes to the
// ports Mailu publishes, so that a log line can be counted against an
// address only if that address really connected from that source port.
//
// The record lives in bansd's nftables table: a base chain after conntrack
// and before DNAT writes "saddr . sport" (and "saddr" alone) of every packet
// of an ASSURED connection, in the original direction, into timeout sets.
// ASSURED is set by conntrack only once the final ACK of the three-way
// handshake passed its window check, so a spoofed SYN, which does get a
// SYN-ACK (and with it "ct state established"), is never recorded. The log
// text and its timing cannot write into these sets.
package seen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names in the table. The ban manager owns chain "prerouting" and the sets
// v4_*/v6_* with their drop_* counters; nothing here may collide with them.
const (
	ChainName = "seen"
	// LocalChainName is the chain that records connections this host
	// opens itself (output hook): Docker's userland proxy dialling a
	// container from the bridge gateway, a host-local client.
	LocalChainName = "seen_local"
	PortsSet       = "ports"
	Seen4          = "seen4"  // ipv4_addr . inet_service
	Seen6          = "seen6"  // ipv6_addr . inet_service
	Seen4A         = "seen4a" // ipv4_addr
	Seen6A         = "seen6a" // ipv6_addr
)

// Defaults and bounds of Options.
const (
	DefaultPriority = -190
	DefaultTimeout  = 2 * time.Hour
	DefaultSize     = 262144

	// The chain must run after conntrack (-200), which sets the ASSURED
	// bit it reads, and before DNAT (-100), which rewrites the published
	// host port it matches into the container's port.
	minPriority = -200
	maxPriority = -100
)

// ipsAssured is IPS_ASSURED from linux/netfilter/nf_conntrack_common.h.
const ipsAssured = 1 << 2

// Options configure Open.
type Options struct {
	// Table is the nftables inet table, shared with the ban manager.
	Table string
	// Priority of the base chain; 0 means DefaultPriority. It must lie
	// strictly between conntrack (-200) and DNAT (-100).
	Priority int
	// Timeout is each element's lifetime; at least the longest findtime.
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// Size bounds each set; 0 means DefaultSize.
	Size uint32
	// NetNS, if not 0, is an open descriptor of the network namespace to
	// program instead of the caller's (tests).
	NetNS int
}

// Record is the kernel record. Its methods are safe for concurrent use.
type Record struct {
	opts  Options
	table *nftables.Table
	chain *nftables.Chain
	local *nftables.Chain

	// wmu serialises transactions on wconn: a Conn's queued messages are
	// one batch, so two writers would mix theirs.
	wmu   sync.Mutex
	wconn *nftables.Conn
	// ports is what SetPorts asked for last; Ensure restores it after the
	// table was wiped. nil: SetPorts was never called.
	ports []uint16
	// ensured: Ensure succeeded once; emptyAtStart: that first Ensure had
	// to create (or recreate) a record set, so connections made before
	// this process started are not in the record (a reboot, a first start).
	ensured, emptyAtStart bool

	// rmu serialises lookups on the lasting rconn: a request and its reply
	// must not interleave with another goroutine's.
	rmu   sync.Mutex
	rconn *nftables.Conn

	// refresh chooses "update" (every packet of the connection rewrites
	// the element's expiry) over "add" (written once, at the handshake).
	// Tests and benchmarks compare the two.
	refresh bool
}

// Open checks opts and opens the netlink connections. It touches nothing
// in the kernel until Ensure.
func Open(opts Options) (*Record, error) {
	if opts.Table == "" {
		return nil, errors.New("seen: empty table name")
	}
	if opts.Priority == 0 {
		opts.Priority = DefaultPriority
	}
	if opts.Priority <= minPriority || opts.Priority >= maxPriority {
		return nil, fmt.Errorf("seen: priority %d: must be after conntrack (%d) and before DNAT (%d)", opts.Priority, minPriority, maxPriority)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	// The kernel takes milliseconds; below a second a record would vanish
	// before the log line about its connection is read.
	if opts.Timeout < time.Second {
		return nil, fmt.Errorf("seen: timeout %s: must be at least 1s", opts.Timeout)
	}
	opts.Timeout = opts.Timeout.Truncate(time.Millisecond)
	if opts.Size == 0 {
		opts.Size = DefaultSize
	}
	var co []nftables.ConnOption
	if opts.NetNS != 0 {
		co = append(co, nftables.WithNetNSFd(opts.NetNS))
	}
	wconn, err := nftables.New(co...)
	if err != nil {
		return nil, fmt.Errorf("seen: nftables: %w", err)
	}
	rconn, err := nftables.New(append(co, nftables.AsLasting())...)
	if err != nil {
		return nil, fmt.Errorf("seen: nftables lookup connection: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: opts.Table}
	accept := nftables.ChainPolicyAccept
	return &Record{
		opts:  opts,
		table: t,
		chain: &nftables.Chain{
			Name: ChainName, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookPrerouting,
			Priority: nftables.ChainPriorityRef(nftables.ChainPriority(opts.Priority)),
			Policy:   &accept,
		},
		local: &nftables.Chain{
			Name: LocalChainName, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookOutput,
			Priority: nftables.ChainPriorityRef(nftables.ChainPriority(opts.Priority)),
			Policy:   &accept,
		},
		wconn:   wconn,
		rconn:   rconn,
		refresh: true,
	}, nil
}

// Close releases the lookup connection. The kernel record stays: it
// expires by itself.
func (r *Record) Close() error {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	if err := r.rconn.CloseLasting(); err != nil {
		return fmt.Errorf("seen: close: %w", err)
	}
	return nil
}

// setSpec describes one of the record's sets.
type setSpec struct {
	name     string
	v6       bool
	withPort bool
}

var recordSets = []setSpec{
	{Seen4, false, true}, {Seen4A, false, false},
	{Seen6, true, true}, {Seen6A, true, false},
}

func (r *Record) portsSet() *nftables.Set {
	return &nftables.Set{Table: r.table, Name: PortsSet, KeyType: nftables.TypeInetService,
		KeyByteOrder: binaryutil.BigEndian}
}

func (r *Record) newSet(sp setSpec) *nftables.Set {
	kt := nftables.TypeIPAddr
	if sp.v6 {
		kt = nftables.TypeIP6Addr
	}
	s := &nftables.Set{
		Table: r.table, Name: sp.name, KeyType: kt, KeyByteOrder: binaryutil.BigEndian,
		HasTimeout: true, Dynamic: true, Timeout: r.opts.Timeout, Size: r.opts.Size,
	}
	if sp.withPort {
		s.KeyType = nftables.MustConcatSetType(kt, nftables.TypeInetService)
		s.Concatenation = true
	}
	return s
}

// setMatches reports whether a set found in the kernel is the one newSet
// describes; a set cannot be redefined in place (NEWSET: file exists).
func setMatches(have, want *nftables.Set) bool {
	return have.KeyType.Bytes == want.KeyType.Bytes && have.KeyType.Name == want.KeyType.Name &&
		have.HasTimeout == want.HasTimeout && have.Dynamic == want.Dynamic &&
		have.Timeout == want.Timeout && have.Size == want.Size &&
		have.Concatenation == want.Concatenation && !have.Interval && !have.IsMap
}

func (r *Record) chainMatches(ch *nftables.Chain) bool {
	return r.chainIs(ch, r.chain)
}

func (r *Record) chainIs(ch, want *nftables.Chain) bool {
	return ch.Hooknum != nil && *ch.Hooknum == *want.Hooknum &&
		ch.Priority != nil && int(*ch.Priority) == r.opts.Priority &&
		ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept && ch.Type == nftables.ChainTypeFilter
}

// Ensure creates what is missing of the chain, the sets and the rules in
// one transaction, and replaces the chain's rules atomically. Existing sets
// keep their elements; a set whose definition changed (Timeout, Size) is
// recreated empty. The ports of the last SetPorts are restored. It never
// touches the ban manager's chain or sets.
func (r *Record) Ensure(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	c := r.wconn

	have := map[string]*nftables.Set{}
	sets, err := c.GetSets(r.table)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("seen: list sets of inet %s: %w", r.table.Name, err)
	}
	for _, s := range sets {
		have[s.Name] = s
	}
	chainOK := true
	if ch, err := c.ListChain(r.table, ChainName); err == nil && !r.chainMatches(ch) {
		chainOK = false
	}

	localOK := true
	if ch, err := c.ListChain(r.table, LocalChainName); err == nil && !r.chainIs(ch, r.local) {
		localOK = false
	}

	c.AddTable(r.table)
	if !chainOK {
		// Hook or priority changed: a base chain cannot be moved in place.
		c.FlushChain(r.chain)
		c.DelChain(r.chain)
	}
	if !localOK {
		c.FlushChain(r.local)
		c.DelChain(r.local)
	}
	c.AddChain(r.chain)
	c.AddChain(r.local)
	// Rules go first so that a set to be redefined has no user left.
	c.FlushChain(r.chain)
	c.FlushChain(r.local)

	ports := r.portsSet()
	if h := have[PortsSet]; h != nil && !setMatches(h, ports) {
		c.DelSet(h)
	}
	if err := c.AddSet(ports, nil); err != nil {
		r.discard()
		return fmt.Errorf("seen: set %s: %w", PortsSet, err)
	}
	if r.ports != nil {
		if err := r.queuePorts(ports, r.ports); err != nil {
			r.discard()
			return err
		}
	}
	created := false
	for _, sp := range recordSets {
		s := r.newSet(sp)
		h := have[sp.name]
		fresh := h == nil || !setMatches(h, s)
		if h != nil && fresh {
			c.DelSet(h)
		}
		created = created || fresh
		if err := c.AddSet(s, nil); err != nil {
			r.discard()
			return fmt.Errorf("seen: set %s: %w", sp.name, err)
		}
		c.AddRule(r.rule(r.chain, sp, s, ports))
		c.AddRule(r.rule(r.local, sp, s, ports))
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("seen: ensure chain %s in inet %s: %w", ChainName, r.table.Name, err)
	}
	if !r.ensured {
		r.ensured, r.emptyAtStart = true, created
	}
	return nil
}

// EmptyAtStart reports whether the first Ensure found no record to keep:
// the kernel knows none of the connections made before this process
// started, so lines about them cannot be corroborated.
func (r *Record) EmptyAtStart() bool {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.emptyAtStart
}

// discard drops a half-built transaction so that the next Flush does not
// send it. The library drops queued messages only on a Flush with an error
// recorded, so one is recorded on purpose (an anonymous set has no name).
func (r *Record) discard() {
	_ = r.wconn.SetAddElements(&nftables.Set{Anonymous: true}, nil)
	_ = r.wconn.Flush()
}

// rule is, for IPv4 with port:
//
//	meta nfproto ipv4 meta l4proto tcp tcp dport @ports ct direction original
//	ct status assured update @seen4 { ip saddr . tcp sport }
//
// The nfproto guard is required in an inet table (else the IPv4 source load
// reads bytes 12-15 of IPv6 headers). "update" refreshes the expiry with
// every packet, so a long IMAP IDLE session stays recorded; "add" would
// write the element once and let it lapse mid-connection.
func (r *Record) rule(chain *nftables.Chain, sp setSpec, s, ports *nftables.Set) *nftables.Rule {
	proto, off, ln := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	// The port follows the address in the concatenated key, in the next
	// 32-bit register after it (nft's own layout: reg 9 after a 4-byte
	// address in reg 1, reg 2 after a 16-byte one).
	portReg := uint32(9)
	if sp.v6 {
		proto, off, ln = unix.NFPROTO_IPV6, 8, 16
		portReg = 2
	}
	op := uint32(unix.NFT_DYNSET_OP_UPDATE)
	if !r.refresh {
		op = unix.NFT_DYNSET_OP_ADD
	}
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID},
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{expr.CtDirOriginal}},
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsAssured), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: ln},
	}
	if sp.withPort {
		ex = append(ex, &expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
	}
	ex = append(ex, &expr.Dynset{SrcRegKey: 1, SetName: s.Name, SetID: s.ID, Operation: op})
	return &nftables.Rule{Table: r.table, Chain: chain, Exprs: ex,
		UserData: userdata.AppendString(nil, userdata.TypeComment, "bansd seen "+s.Name)}
}

// SetPorts replaces the set of published host ports whose handshakes are
// recorded, in one transaction. Port 0 is refused. Ensure must have run.
func (r *Record) SetPorts(ctx context.Context, ports []uint16) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if slices.Contains(ports, 0) {
		return errors.New("seen: port 0 cannot be published")
	}
	want := slices.Clone(ports)
	slices.Sort(want)
	want = slices.Compact(want)
	if want == nil {
		want = []uint16{} // non-nil: "no ports" is remembered too
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if err := r.queuePorts(r.portsSet(), want); err != nil {
		r.discard()
		return err
	}
	if err := r.wconn.Flush(); err != nil {
		return fmt.Errorf("seen: set ports in inet %s (run Ensure first?): %w", r.table.Name, err)
	}
	r.ports = want
	return nil
}

func (r *Record) queuePorts(s *nftables.Set, ports []uint16) error {
	r.wconn.FlushSet(s)
	if len(ports) == 0 {
		return nil
	}
	els := make([]nftables.SetElement, len(ports))
	for i, p := range ports {
		els[i] = nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)}
	}
	if err := r.wconn.SetAddElements(s, els); err != nil {
		return fmt.Errorf("seen: queue ports: %w", err)
	}
	return nil
}
