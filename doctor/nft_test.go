package doctor

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/bansd/bansd/ban"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/internal/netnstest"
)

// nftChains is `nft -j list table inet <table>`: base chains with their
// rule counts, as nft itself names hooks and priorities.
func nftChains(t *testing.T, ns *netnstest.NS, table string) []ChainFacts {
	t.Helper()
	var doc struct {
		Nftables []struct {
			Chain *struct {
				Name, Type, Hook string
				Prio             *int
			}
			Rule *struct{ Chain string }
		}
	}
	out := ns.Run(t, "nft", "-j", "list", "table", "inet", table)
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v: %s", err, out)
	}
	var cs []ChainFacts
	for _, o := range doc.Nftables {
		if c := o.Chain; c != nil && c.Hook != "" {
			cs = append(cs, ChainFacts{Name: c.Name, Type: c.Type, Hook: c.Hook, Priority: *c.Prio})
		}
	}
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		for i := range cs {
			if cs[i].Name == o.Rule.Chain {
				cs[i].Rules++
			}
		}
	}
	return sortChains(cs)
}

func sortChains(cs []ChainFacts) []ChainFacts {
	slices.SortFunc(cs, func(a, b ChainFacts) int { return strings.Compare(a.Name, b.Name) })
	return cs
}

// TestGatherNFTRealTable reads the table bansd's own ban.NFT creates in a
// fresh namespace, then chains on every other inet hook, and compares
// what doctor reads through netlink with what nft prints.
func TestGatherNFTRealTable(t *testing.T) {
	ns := netnstest.New(t)
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	table, prio := cfg.Firewall.Table, cfg.Firewall.Priority
	gather := func() NFTFacts {
		t.Helper()
		var nf NFTFacts
		if err := ns.Do(func() error { nf = gatherNFT(table, prio); return nil }); err != nil {
			t.Fatal(err)
		}
		if nf.Err != "" {
			t.Fatalf("gatherNFT: %s", nf.Err)
		}
		nf.Chains = sortChains(nf.Chains)
		return nf
	}
	judge := func(nf NFTFacts) Result {
		for _, r := range Check(Facts{NFT: nf}) {
			if r.Check == "nftables" {
				return r
			}
		}
		t.Fatal("no nftables check")
		return Result{}
	}

	if nf := gather(); nf.Present || len(nf.Chains) != 0 {
		t.Fatalf("fresh namespace: %+v", nf)
	}
	if r := judge(gather()); r.Verdict != Fail || !strings.Contains(r.Message, "missing") {
		t.Errorf("no table: %+v", r)
	}

	fw, err := ban.NewNFT(cfg.Firewall.Table, cfg.Firewall.Priority, ban.WithNetNS(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Ensure(ban.DefaultClasses()); err != nil {
		t.Fatal(err)
	}
	nf := gather()
	want := []ChainFacts{{Name: "prerouting", Type: "filter", Hook: "prerouting", Priority: -310, Rules: len(ban.DefaultClasses())}}
	if !nf.Present || !slices.Equal(nf.Chains, want) {
		t.Errorf("bansd's table: got %+v, want %+v", nf, want)
	}
	if got := nftChains(t, ns, table); !slices.Equal(nf.Chains, got) {
		t.Errorf("doctor read %+v, nft lists %+v", nf.Chains, got)
	}
	if r := judge(nf); r.Verdict != Pass || !strings.Contains(r.Message, "filter hook prerouting priority -310, 5 rules") {
		t.Errorf("bansd's table judged %+v", r)
	}

	// Every other hook of the inet family, a NAT chain on prerouting and a
	// regular chain: each must be named as nft names it.
	for _, c := range []string{
		"chain inet " + table + " c_in { type filter hook input priority 0; }",
		"chain inet " + table + " c_fwd { type filter hook forward priority 10; }",
		"chain inet " + table + " c_out { type filter hook output priority -5; }",
		"chain inet " + table + " c_post { type filter hook postrouting priority 100; }",
		"chain inet " + table + " c_ingr { type filter hook ingress device lo priority -500; }",
		"chain inet " + table + " c_dnat { type nat hook prerouting priority -100; }",
		"chain inet " + table + " c_regular",
		"rule inet " + table + " c_in counter",
		"rule inet " + table + " c_in tcp dport 25 drop",
	} {
		ns.Run(t, "nft", "add "+c)
	}
	nf = gather()
	got := nftChains(t, ns, table)
	if !slices.Equal(nf.Chains, got) || len(got) != 7 {
		t.Errorf("doctor read %+v, nft lists %+v", nf.Chains, got)
	}
	for _, c := range nf.Chains {
		if c.Name == "c_ingr" && c.Hook != "ingress" || c.Name == "c_dnat" && c.Hook != "prerouting" || c.Name == "c_in" && (c.Hook != "input" || c.Rules != 2) {
			t.Errorf("chain %+v", c)
		}
	}
	if r := judge(nf); r.Verdict != Pass || !strings.Contains(r.Message, "chain prerouting") {
		t.Errorf("bansd's chain among others judged %+v", r)
	}

	// Without bansd's chain, the failure names what is there.
	ns.Run(t, "nft", "flush chain inet "+table+" prerouting; delete chain inet "+table+" prerouting")
	if r := judge(gather()); r.Verdict != Fail || !strings.Contains(r.Message, "no filter chain on the prerouting hook") ||
		!strings.Contains(r.Message, "c_in (filter hook input priority 0)") || !strings.Contains(r.Message, "c_dnat (nat hook prerouting priority -100)") {
		t.Errorf("without the prerouting chain: %+v", r)
	}
}
