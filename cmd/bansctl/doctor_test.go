package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bansd/bansd/doctor"
)

// TestDoctorDockerHost runs doctor in-process against docker sockets that
// do not exist: each names where it looked (flag, then [docker] host, then
// DOCKER_HOST), the dockerd check FAILs with its fix and the exit is 1.
func TestDoctorDockerHost(t *testing.T) {
	dir := t.TempDir()
	none := filepath.Join(dir, "none.sock")
	cfg := filepath.Join(dir, "bansd.toml")
	if err := os.WriteFile(cfg, []byte("[docker]\nhost = \"unix://"+dir+"/config.sock\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_HOST", "unix://"+dir+"/env.sock")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"flag wins", []string{"--docker-host", "unix://" + dir + "/flag.sock", "--config", cfg}, "flag.sock"},
		{"config before the environment", []string{"--config", cfg}, "config.sock"},
		{"DOCKER_HOST", nil, "env.sock"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"--socket", none, "--json", "doctor"}, tc.args...), &out, &errb)
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s%s", code, out.String(), errb.String())
			}
			var rep struct {
				Results []doctor.Result
				Facts   doctor.Facts
			}
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			if !strings.HasSuffix(rep.Facts.Docker.Host, tc.want) || rep.Facts.Docker.Reachable {
				t.Errorf("docker facts %+v, want host …%s, unreachable", rep.Facts.Docker, tc.want)
			}
			r := rep.Results[0]
			if r.Check != "dockerd" || r.Verdict != doctor.Fail || !strings.Contains(r.Message, tc.want) || !strings.Contains(r.Fix, "DOCKER_HOST") {
				t.Errorf("first result %+v", r)
			}
			if rep.Facts.Daemon != nil || rep.Facts.DaemonErr == "" {
				t.Errorf("daemon facts: %+v %q", rep.Facts.Daemon, rep.Facts.DaemonErr)
			}
		})
	}
}

func TestPrintDoctor(t *testing.T) {
	var b bytes.Buffer
	printDoctor(&b, []doctor.Result{
		{Check: "nftables", Verdict: doctor.Pass, Message: "table inet bansd", Fix: "never shown"},
		{Check: "userland-proxy", Verdict: doctor.Fail, Message: "OPEN RELAY RISK\x1b[2J\nforged", Fix: `set {"userland-proxy": false}`},
		{Check: "bansd", Verdict: doctor.Warn, Message: "not running"},
	})
	want := "PASS  nftables         table inet bansd\n" +
		"FAIL  userland-proxy   OPEN RELAY RISK" + clean("\x1b[2J\nforged") + "\n" +
		"                       fix: set {\"userland-proxy\": false}\n" +
		"WARN  bansd            not running\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if strings.ContainsAny(b.String(), "\x1b") || strings.Count(b.String(), "\n") != 4 {
		t.Errorf("a message broke the layout: %q", b.String())
	}
}
