package integration

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bansd/bansd/control"
)

// replayAttacks replays the group's `docker logs -t` with `bansctl replay`,
// where no kernel record exists and the text rules judge alone: no framed
// address may be banned there either, and every address the live daemon
// banned on the kernel's word must be banned by the text rules too, but for
// the camping bot: a dense stream of login lines from another client makes
// the bot's real "connected" lines look like pieces of those lines, and no
// text rule can tell them from forged ones (README, Security: text mode).
func replayAttacks(t *testing.T, r *attackRun) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bansd-attack-replay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replayed logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	var args []string
	for _, svc := range []string{"front", "admin"} {
		f := filepath.Join(dir, svc+".log")
		if err := os.WriteFile(f, []byte(r.s.logs(t, svc)), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, svc+"="+f)
	}
	cmd := exec.Command(bins.bansctl, append([]string{"replay", "--json", "--config", filepath.Join(r.b.dir, "bansd.toml")}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bansctl replay: %v: %s", err, out)
	}
	var rep struct {
		Attribution string `json:"attribution"`
		Bans        []struct {
			Target       netip.Prefix `json:"target"`
			Corroborated bool         `json:"corroborated"`
		} `json:"bans"`
		Forged map[string]uint64 `json:"forged"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("replay --json: %v: %s", err, out)
	}
	if rep.Attribution != "text" {
		t.Errorf("replay attribution %q, want text", rep.Attribution)
	}
	victims := []netip.Addr{victimNginx, victimWarning, victimRestart, victimSYN, victimV6, gateway}
	for i := range netAddrs {
		victims = append(victims, netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + i)}))
	}
	var replayed []netip.Prefix
	for _, b := range rep.Bans {
		if b.Corroborated {
			t.Errorf("replay ban %s says corroborated: replay has no kernel", b.Target)
		}
		for _, v := range victims {
			if b.Target.Contains(v) {
				t.Errorf("replay banned %s, which holds the framed %s", b.Target, v)
			}
		}
		replayed = append(replayed, b.Target)
	}
	live, err := r.b.ctl("list")
	if err != nil {
		t.Fatal(err)
	}
	var list control.BanList
	if err := json.Unmarshal([]byte(live), &list); err != nil {
		t.Fatal(err)
	}
	for _, b := range list.Bans {
		if slices.ContainsFunc(r.textLimited, b.Target.Contains) {
			t.Logf("live ban of %s (%s): replayed %v (text rules cannot tell a camped bot's lines from pieces)", b.Target, b.Jail, slices.Contains(replayed, b.Target))
			continue
		}
		if !slices.Contains(replayed, b.Target) {
			t.Errorf("live ban of %s (%s) is not made by the text rules on replay (replay bans %v, forged %v)", b.Target, b.Jail, replayed, rep.Forged)
		}
	}
	t.Logf("replay: %d bans, live %d, text rules set aside %v", len(rep.Bans), len(list.Bans), rep.Forged)
}
