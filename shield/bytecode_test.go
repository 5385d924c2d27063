package shield

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// The rule as nft prints it, handed back to nft, must compile to the same
// netlink expressions the shield sends: the printed rule is the real one
// and nft's own reject/flags encoding matches ours.
func TestRuleBytecodeMatchesNft(t *testing.T) {
	srv, _ := pair(t)
	s, err := Open(Options{Table: "bansd", NetNS: srv.Fd()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Raise(context.Background(), []uint16{25}); err != nil {
		t.Fatal(err)
	}
	ours := bytecode(srv.Run(t, "nft", "--debug=netlink", "list", "chain", "inet", "bansd", ChainName))
	listed := srv.Run(t, "nft", "list", "chain", "inet", "bansd", ChainName)
	var rule string
	for _, l := range strings.Split(listed, "\n") {
		if strings.Contains(l, "reject") {
			rule = strings.TrimSpace(l)
		}
	}
	if rule == "" {
		t.Fatalf("no reject rule listed:\n%s", listed)
	}
	// The same rule through nft into a twin table.
	srv.Run(t, "nft", "add", "table", "inet", "twin")
	srv.Run(t, "nft", "add", "counter", "inet", "twin", CounterName)
	srv.Run(t, "nft", "add", "set", "inet", "twin", SetName, "{ type inet_service; }")
	srv.Run(t, "nft", "add", "chain", "inet", "twin", ChainName, "{ type filter hook input priority -10; policy accept; }")
	srv.Run(t, "sh", "-c", "nft add rule inet twin "+ChainName+" '"+rule+"'")
	theirs := bytecode(srv.Run(t, "nft", "--debug=netlink", "list", "chain", "inet", "twin", ChainName))
	if ours == "" || ours != theirs {
		t.Fatalf("bytecode differs\nours:\n%s\nnft's for %q:\n%s", ours, rule, theirs)
	}
	t.Logf("rule: %s\nbytecode:\n%s", rule, ours)
}

var exprLine = regexp.MustCompile(`^\s*\[ .* \]$`)

// bytecode keeps the expression lines of nft --debug=netlink output.
func bytecode(out string) string {
	var b []string
	for _, l := range strings.Split(out, "\n") {
		if exprLine.MatchString(l) {
			b = append(b, strings.TrimSpace(l))
		}
	}
	return strings.Join(b, "\n")
}
