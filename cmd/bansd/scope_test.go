package main

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/bansd/bansd/internal/roottest"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/internal/netnstest"
)

// The hook onMailu calls: nothing for scope "all"; for "mail" it puts
// front's ports (with the listed ones) in the kernel's port set.
func TestScopeHook(t *testing.T) {
	roottest.Require(t, "a network namespace and nftables in it")
	ns := netnstest.New(t)
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	all, err := ban.NewNFT(cfg.Firewall.Table, cfg.Firewall.Priority, ban.WithNetNS(ns.Fd()), ban.WithScope(cfg.Firewall.Scope, cfg.Firewall.ScopePorts))
	if err != nil {
		t.Fatal(err)
	}
	if scopeHook(all, log) != nil {
		t.Fatal("scope all got a port hook")
	}
	cfg.Firewall.Scope, cfg.Firewall.ScopePorts = "mail", []uint16{8443}
	nft, err := ban.NewNFT(cfg.Firewall.Table, cfg.Firewall.Priority, ban.WithNetNS(ns.Fd()), ban.WithScope(cfg.Firewall.Scope, cfg.Firewall.ScopePorts))
	if err != nil {
		t.Fatal(err)
	}
	if err := nft.Ensure(ban.DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	hook := scopeHook(nft, log)
	if hook == nil {
		t.Fatal("scope mail got no port hook")
	}
	hook([]uint16{993, 25, 25, 465})
	if got, want := nft.MailPorts(), []uint16{25, 465, 993, 8443}; !slices.Equal(got, want) {
		t.Fatalf("MailPorts() = %v, want %v", got, want)
	}
	out := strings.Join(strings.Fields(ns.Run(t, "nft", "list", "set", "inet", "bansd", ban.ScopeSetName)), " ")
	if !strings.Contains(out, "elements = { 25, 465, 993, 8443 }") {
		t.Fatalf("kernel set after the hook: %s", out)
	}
	if h, err := nft.Check(); err != nil || !h.OK {
		t.Fatalf("Check = %+v, %v", h, err)
	}
}
