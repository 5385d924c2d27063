package nfhook

import (
	"testing"

	"github.com/google/nftables"
)

func TestName(t *testing.T) {
	for _, c := range []struct {
		hook nftables.ChainHook
		want string
	}{
		{*nftables.ChainHookPrerouting, "prerouting"},
		{*nftables.ChainHookInput, "input"},
		{*nftables.ChainHookForward, "forward"},
		{*nftables.ChainHookOutput, "output"},
		{*nftables.ChainHookPostrouting, "postrouting"},
		{5, "ingress"},
		{9, "9"},
	} {
		if got := Name(c.hook); got != c.want {
			t.Errorf("Name(%d) = %q, want %q", c.hook, got, c.want)
		}
	}
}
