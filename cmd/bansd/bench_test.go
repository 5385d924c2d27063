package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeBlocklist writes n distinct IPv6 addresses (2001:db8::/32, documentation
// space) with a comment line every 1000 entries.
func writeBlocklist(tb testing.TB, dir string, n int) string {
	tb.Helper()
	var b strings.Builder
	for i := range n {
		if i%1000 == 0 {
			fmt.Fprintf(&b, "# block %d\n", i/1000)
		}
		fmt.Fprintf(&b, "2001:db8:%x:%x::1\n", i>>16, i&0xffff)
	}
	path := filepath.Join(dir, "blocklist.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// kernelElements counts the elements of a set in the instance's namespace.
func (in *instance) kernelElements(tb testing.TB, set string) int {
	tb.Helper()
	out := in.ns.Run(tb, "nft", "-j", "list", "set", "inet", "bansd", set)
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		tb.Fatalf("nft -j: %v", err)
	}
	for _, o := range doc.Nftables {
		if o.Set != nil {
			return len(o.Set.Elem)
		}
	}
	return 0
}

// BenchmarkBanFromFile100k: `bansctl ban --from-file` of 100,000 entries,
// timed until bansctl returns, which is after the elements are in the
// kernel (the daemon answers once the ban manager flushed them).
// Run as root: go test -run '^$' -bench BanFromFile -benchtime 3x ./cmd/bansd
func BenchmarkBanFromFile100k(b *testing.B) {
	const n = 100_000
	in := start(b)
	file := writeBlocklist(b, in.dir, n)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		in.mustCtl(b, 0, "unban", "--all", "--yes")
		b.StartTimer()
		in.mustCtl(b, 0, "ban", "--for", "1h", "--from-file", file)
		b.StopTimer()
		if got := in.kernelElements(b, "v6_128"); got != n {
			b.Fatalf("kernel holds %d elements, want %d", got, n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "bans/op")
}

// BenchmarkList100k: `bansctl list` (table) and `bansctl list --json` with
// 100,000 active bans, output discarded.
// Run as root: go test -run '^$' -bench List100k -benchtime 5x ./cmd/bansd
func BenchmarkList100k(b *testing.B) {
	const n = 100_000
	in := start(b)
	in.mustCtl(b, 0, "ban", "--for", "1h", "--from-file", writeBlocklist(b, in.dir, n))
	for _, mode := range [][]string{{"list"}, {"list", "--json"}} {
		b.Run(strings.Join(mode, "_"), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(filepath.Join(binDir, "bansctl"), mode...)
				cmd.Env = append(os.Environ(), "BANSD_SOCKET="+in.socket)
				cmd.Stdout = io.Discard
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
