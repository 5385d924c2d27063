package ban

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ScopeSetName is the set of TCP ports a "mail"-scoped ban covers.
const ScopeSetName = "scope_ports"

// FallbackMailPorts stand for Mailu's front until Docker has said which
// ports it publishes: the ports of Mailu's standard compose file. Without
// them a "mail" ban restored at start would drop nothing until discovery.
var FallbackMailPorts = []uint16{25, 80, 110, 143, 443, 465, 587, 993, 995, 4190}

// scope is the "mail" scope's state; nil in an NFT means scope "all".
type scope struct {
	extra []uint16
	// learned are the ports Docker reported (nil: not yet); guarded by NFT.mu.
	learned []uint16
	// conn is a second netlink connection for SetMailPorts, which runs
	// beside the actor: one Conn's queue must not mix two transactions.
	conn *nftables.Conn
}

// ports is the set's wanted content, sorted; n.mu must be held.
func (s *scope) ports() []uint16 {
	base := s.learned
	if base == nil {
		base = FallbackMailPorts
	}
	ps := append(slices.Clone(base), s.extra...)
	slices.Sort(ps)
	return slices.Compact(ps)
}

func (n *NFT) scopeSet() *nftables.Set {
	return &nftables.Set{Table: n.table, Name: ScopeSetName, KeyType: nftables.TypeInetService,
		KeyByteOrder: binaryutil.BigEndian}
}

func portElems(ports []uint16) []nftables.SetElement {
	els := make([]nftables.SetElement, len(ports))
	for i, p := range ports {
		els[i] = nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, p)}
	}
	return els
}

// queueScope adds to conn's pending transaction the port set with exactly
// ports in it, creating it if missing.
func (n *NFT) queueScope(conn *nftables.Conn, s *nftables.Set, ports []uint16) error {
	if err := conn.AddSet(s, nil); err != nil {
		return fmt.Errorf("nftables: set %s: %w", s.Name, err)
	}
	conn.FlushSet(s)
	if len(ports) > 0 {
		if err := conn.SetAddElements(s, portElems(ports)); err != nil {
			return fmt.Errorf("nftables: fill %s: %w", s.Name, err)
		}
	}
	return nil
}

// scopeExprs is "meta l4proto tcp tcp dport @scope_ports", or nothing for
// scope "all", so that an "all" table is exactly what it was before scopes.
func scopeExprs(s *nftables.Set) []expr.Any {
	if s == nil {
		return nil
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	}
}

// SetMailPorts gives a "mail"-scoped firewall the ports Mailu publishes,
// as Docker reported them; they replace the fallback (an empty list brings
// the fallback back). It may run beside
// the actor: it rewrites the port set in a transaction of its own, and
// does nothing to the kernel before the first Ensure (which fills the set).
// Scope "all" ignores it.
func (n *NFT) SetMailPorts(ports []uint16) error {
	if n.scope == nil {
		return nil
	}
	// No ports (front not found, or publishing none) is no knowledge:
	// the fallback stays rather than bans that drop nothing.
	ports = slices.Clone(ports)
	if len(ports) == 0 {
		ports = nil
	}
	n.portMu.Lock()
	defer n.portMu.Unlock()
	n.mu.Lock()
	n.scope.learned = ports
	want := n.scope.ports()
	n.mu.Unlock()
	conn := n.scope.conn
	s := n.scopeSet()
	if _, err := conn.GetSetByName(n.table, ScopeSetName); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // not created yet, or removed: the next Ensure fills it
		}
		return fmt.Errorf("nftables: look up set %s: %w", ScopeSetName, err)
	}
	if err := n.queueScope(conn, s, want); err != nil {
		_ = conn.SetAddElements(&nftables.Set{Anonymous: true}, nil)
		_ = conn.Flush()
		return err
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("nftables: set mail ports %v: %w", want, err)
	}
	return nil
}

// MailPorts returns the ports a "mail" ban covers now (nil for "all").
func (n *NFT) MailPorts() []uint16 {
	if n.scope == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.scope.ports()
}

// checkScope reports what is wrong with the port set and the rules' use of
// it, or "" if nothing. rules is the number of drop rules, refs the number
// of lookups of the port set among them.
func (n *NFT) checkScope(have map[string]bool, refs, rules int) (string, error) {
	if n.scope == nil {
		if refs != 0 {
			return fmt.Sprintf("scope is \"all\" but %d rules match only %s", refs, ScopeSetName), nil
		}
		return "", nil
	}
	if !have[ScopeSetName] {
		return "set " + ScopeSetName + " is missing", nil
	}
	if refs != rules {
		return fmt.Sprintf("%d of %d rules match %s", refs, rules, ScopeSetName), nil
	}
	els, err := n.conn.GetSetElements(n.scopeSet())
	if err != nil {
		return "", fmt.Errorf("nftables: list %s: %w", ScopeSetName, err)
	}
	got := make([]uint16, 0, len(els))
	for _, e := range els {
		if len(e.Key) >= 2 && !e.IntervalEnd {
			got = append(got, binary.BigEndian.Uint16(e.Key))
		}
	}
	slices.Sort(got)
	n.mu.Lock()
	want := n.scope.ports()
	n.mu.Unlock()
	if !slices.Equal(got, want) {
		return fmt.Sprintf("set %s holds %v, want %v", ScopeSetName, got, want), nil
	}
	return "", nil
}
