// Package nfhook names netfilter hooks of the ip, ip6 and inet families as
// nft prints them, for the ban manager's status and doctor's audit alike.
package nfhook

import (
	"strconv"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// nfInetIngress is NF_INET_INGRESS (Linux 5.10), which x/sys/unix lacks.
const nfInetIngress = 5

// Name names a hook number as nft does. The library's ChainHook* values
// are pointers, and its ChainHookIngress is the netdev family's number (0,
// prerouting's), so the kernel's NF_INET_* numbers are compared by value.
func Name(h nftables.ChainHook) string {
	switch h {
	case unix.NF_INET_PRE_ROUTING:
		return "prerouting"
	case unix.NF_INET_LOCAL_IN:
		return "input"
	case unix.NF_INET_FORWARD:
		return "forward"
	case unix.NF_INET_LOCAL_OUT:
		return "output"
	case unix.NF_INET_POST_ROUTING:
		return "postrouting"
	case nfInetIngress:
		return "ingress"
	}
	return strconv.FormatUint(uint64(h), 10)
}
