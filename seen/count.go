package seen

import (
	"context"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// countElements dumps one set and counts its elements without decoding
// them into Go values (google/nftables' GetSetElements would hold them all).
func (r *Record) countElements(ctx context.Context, set string) (int, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: r.opts.NetNS})
	if err != nil {
		return 0, fmt.Errorf("seen: netlink: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return 0, fmt.Errorf("seen: netlink deadline: %w", err)
		}
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, r.table.Name)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
	attrs, err := ae.Encode()
	if err != nil {
		return 0, fmt.Errorf("seen: encode dump of %s: %w", set, err)
	}
	// nfgenmsg: family, version, resource id.
	hdr := []byte{byte(r.table.Family), unix.NFNETLINK_V0, 0, 0}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append(hdr, attrs...),
	}
	if _, err := conn.Send(req); err != nil {
		return 0, fmt.Errorf("seen: dump %s: %w", set, err)
	}
	// Receive reads the whole multi-part dump (raw bytes, ~40 B per
	// element) and drops its Done message.
	msgs, err := conn.Receive()
	if err != nil {
		return 0, fmt.Errorf("seen: dump %s: %w", set, err)
	}
	n := 0
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("seen: dump %s: %w", set, err)
		}
		for ad.Next() {
			if ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					for nad.Next() {
						n++
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return 0, fmt.Errorf("seen: dump %s: %w", set, err)
		}
	}
	return n, nil
}
