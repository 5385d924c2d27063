package doctor

import (
	"errors"
	"os"
	"os/exec"
	"strings"

	"github.com/bansd/bansd/internal/nfhook"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func gatherNFT(table string, prio int) NFTFacts {
	nf := NFTFacts{Table: table, WantPriority: prio}
	c, err := nftables.New()
	if err != nil {
		nf.Err = err.Error()
		return nf
	}
	t, err := c.ListTableOfFamily(table, nftables.TableFamilyINet)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
			nf.Err = err.Error()
		}
		return nf
	}
	nf.Present = true
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		nf.Err = err.Error()
		return nf
	}
	for _, ch := range chains {
		if ch.Table.Name != t.Name || ch.Hooknum == nil {
			continue
		}
		cf := ChainFacts{Name: ch.Name, Type: string(ch.Type), Hook: nfhook.Name(*ch.Hooknum)}
		if ch.Priority != nil {
			cf.Priority = int(*ch.Priority)
		}
		rules, err := c.GetRules(t, ch)
		if err == nil {
			cf.Rules = len(rules)
		}
		nf.Chains = append(nf.Chains, cf)
	}
	return nf
}

// gatherInput reads INPUT chains through nftables (iptables-nft, UFW,
// native nft) and, when an iptables binary exists, through it too, which
// also covers iptables-legacy.
func gatherInput() InputFacts {
	var in InputFacts
	c, err := nftables.New()
	if err != nil {
		in.Err = err.Error()
	} else {
		chains, err := c.ListChains()
		if err != nil {
			in.Err = err.Error()
		}
		for _, ch := range chains {
			if strings.HasPrefix(ch.Name, "ufw-") || strings.HasPrefix(ch.Name, "ufw6-") {
				in.UFW = true
			}
			if ch.Hooknum == nil || *ch.Hooknum != unix.NF_INET_LOCAL_IN || ch.Type != nftables.ChainTypeFilter || ch.Table.Family == nftables.TableFamilyNetdev {
				continue
			}
			if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
				in.DropRules++
			}
			rules, err := c.GetRules(ch.Table, ch)
			if err != nil {
				continue
			}
			for _, r := range rules {
				if dropsOrRejects(r.Exprs) {
					in.DropRules++
				}
			}
		}
	}
	for _, bin := range []string{"iptables-legacy", "ip6tables-legacy"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "-w", "-S").Output()
		if err != nil {
			continue
		}
		for _, ln := range strings.Split(string(out), "\n") {
			switch {
			case strings.Contains(ln, "ufw-"):
				in.UFW = true
			case ln == "-P INPUT DROP":
				in.DropRules++
			case strings.HasPrefix(ln, "-A INPUT ") && (strings.Contains(ln, "-j DROP") || strings.Contains(ln, "-j REJECT")):
				in.DropRules++
			}
		}
	}
	return in
}

func dropsOrRejects(es []expr.Any) bool {
	for _, e := range es {
		switch v := e.(type) {
		case *expr.Verdict:
			if v.Kind == expr.VerdictDrop {
				return true
			}
		case *expr.Reject:
			return true
		case *expr.Target:
			if v.Name == "REJECT" || v.Name == "DROP" {
				return true
			}
		}
	}
	return false
}
