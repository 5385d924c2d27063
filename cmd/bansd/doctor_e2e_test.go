package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bansd/bansd/doctor"
)

// TestDoctorWithDaemon runs `bansctl doctor` in the namespace of a running
// bansd that also has an INPUT-only ban rule (what UFW and fail2ban add).
func TestDoctorWithDaemon(t *testing.T) {
	in := start(t)
	in.ns.Run(t, "iptables", "-w", "-A", "INPUT", "-s", "203.0.113.99", "-j", "DROP")
	cmd := exec.Command("nsenter", "--net="+in.ns.Path, filepath.Join(binDir, "bansctl"), "doctor", "--json",
		"--socket", in.socket, "--docker-host", noDocker)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("doctor: %v (want exit 1: dockerd unreachable)\n%s", err, out)
	}
	var rep struct {
		Results []doctor.Result `json:"results"`
		Facts   doctor.Facts    `json:"facts"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	v := map[string]doctor.Result{}
	for _, r := range rep.Results {
		v[r.Check] = r
	}
	for check, want := range map[string]doctor.Verdict{"dockerd": doctor.Fail, "nftables": doctor.Pass, "input-firewall": doctor.Warn, "bansd": doctor.Pass} {
		if v[check].Verdict != want {
			t.Errorf("%s = %s (%s), want %s", check, v[check].Verdict, v[check].Message, want)
		}
	}
	if rep.Facts.Daemon == nil || !rep.Facts.NFT.Present || rep.Facts.Input.DropRules < 1 {
		t.Errorf("facts: daemon %v, nft %+v, input %+v", rep.Facts.Daemon != nil, rep.Facts.NFT, rep.Facts.Input)
	}
}
