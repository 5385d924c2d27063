package seen

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Sighting is what the kernel record says about an address (and port).
type Sighting struct {
	Seen bool
	// Age is the time since the element was last written (by the
	// handshake, or by the latest packet of the connection), when the
	// kernel reports its expiry; else 0.
	Age time.Duration
}

// Seen looks one element up in the kernel (NFT_MSG_GETSETELEM with the key,
// as `nft get element` does; never a dump). Port 0 asks whether the address
// completed a handshake from any port. IPv4-mapped IPv6 addresses are
// unmapped and zones dropped, because the packet path keys on the bare
// address.
//
// A missing table or set also reads as "not seen": the record fails
// closed, and Health says why.
func (r *Record) Seen(ctx context.Context, a netip.Addr, port uint16) (Sighting, error) {
	if err := ctx.Err(); err != nil {
		return Sighting{}, err
	}
	if !a.IsValid() {
		return Sighting{}, errors.New("seen: invalid address")
	}
	set, key := lookupKey(a, port)
	s := &nftables.Set{Table: r.table, Name: set}
	r.rmu.Lock()
	els, err := r.rconn.FindSetElements(s, []nftables.SetElement{{Key: key}})
	r.rmu.Unlock()
	if errors.Is(err, unix.ENOENT) {
		return Sighting{}, nil
	}
	if err != nil {
		return Sighting{}, fmt.Errorf("seen: look up %s port %d in %s: %w", a, port, set, err)
	}
	if len(els) == 0 {
		return Sighting{}, nil
	}
	e := els[0]
	timeout := e.Timeout
	if timeout == 0 {
		timeout = r.opts.Timeout
	}
	var age time.Duration
	if e.Expires > 0 && e.Expires <= timeout {
		age = timeout - e.Expires
	}
	return Sighting{Seen: true, Age: age}, nil
}

// lookupKey is the set and key for an address and port, laid out as the
// packet path writes them: the address in network order, then for a
// concatenation the port in network order padded to 4 bytes.
func lookupKey(a netip.Addr, port uint16) (string, []byte) {
	a = a.Unmap().WithZone("")
	var key []byte
	var set string
	if a.Is4() {
		b := a.As4()
		key = append(key, b[:]...)
		set = Seen4A
		if port != 0 {
			set = Seen4
		}
	} else {
		b := a.As16()
		key = append(key, b[:]...)
		set = Seen6A
		if port != 0 {
			set = Seen6
		}
	}
	if port != 0 {
		key = append(key, byte(port>>8), byte(port), 0, 0)
	}
	return set, key
}
