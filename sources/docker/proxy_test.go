package docker

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeProc builds a procfs-shaped tree: self's netns and processes with a
// netns and a command line.
func fakeProc(t *testing.T, self string, procs map[string][2]string) string {
	t.Helper()
	root := t.TempDir()
	mk := func(pid, ns string) string {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(ns, filepath.Join(dir, "ns", "net")); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	mk("self", self)
	for pid, p := range procs {
		if err := os.WriteFile(filepath.Join(mk(pid, p[0]), "cmdline"), []byte(p[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetectProxy(t *testing.T) {
	const here, there = "net:[4026531840]", "net:[4026532999]"
	dir := t.TempDir()
	noKey := filepath.Join(dir, "nokey.json")
	os.WriteFile(noKey, []byte(`{"log-level":"warn"}`), 0o644)
	off := filepath.Join(dir, "off.json")
	os.WriteFile(off, []byte(`{"userland-proxy": false}`), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"userland-proxy": `), 0o644)
	missing := filepath.Join(dir, "missing.json")
	front := []Forward{{"25", "192.168.203.5", "25"}, {"587", "192.168.203.5", "587"}}
	proxy := func(hostPort, ip, port string) string {
		return "/usr/bin/docker-proxy\x00-proto\x00tcp\x00-host-ip\x000.0.0.0\x00-host-port\x00" + hostPort + "\x00-container-ip\x00" + ip + "\x00-container-port\x00" + port
	}
	const ours = "unix:///tmp/engine-a/d.sock"

	cases := []struct {
		name       string
		procs      map[string][2]string
		daemonJSON string
		forwards   []Forward
		want       Proxy
	}{
		{"docker-proxy for front's ports", map[string][2]string{
			"10": {there, proxy("25", "192.168.203.5", "25")},
			"11": {there, proxy("587", "192.168.203.5", "587")},
			"12": {here, "dockerd\x00--userland-proxy=false"},
		}, off, front, Proxy{Known: true, On: true, How: "2 docker-proxy processes for front's ports", Processes: 2}},
		{"another engine's proxy (other host port) is not front's; our dockerd's flag decides", map[string][2]string{
			"10": {there, proxy("2525", "192.168.203.5", "25")},
			"12": {here, "dockerd\x00--userland-proxy\x00false"},
		}, missing, front, Proxy{Known: true, On: false, How: "dockerd --userland-proxy=false"}},
		{"several dockerds: the one naming our socket", map[string][2]string{
			"12": {there, "dockerd\x00-H\x00unix:///tmp/engine-b/d.sock\x00--userland-proxy=true"},
			"13": {there, "dockerd\x00-H\x00" + ours + "\x00--userland-proxy=false"},
		}, missing, front, Proxy{Known: true, On: false, How: "dockerd --userland-proxy=false"}},
		{"several dockerds elsewhere, none ours: no flag, no evidence", map[string][2]string{
			"12": {there, "dockerd\x00-H\x00unix:///tmp/engine-b/d.sock\x00--userland-proxy=true"},
			"13": {there, "dockerd\x00-H\x00unix:///tmp/engine-c/d.sock\x00--userland-proxy=true"},
		}, missing, front, Proxy{}},
		{"daemon.json off", map[string][2]string{"12": {here, "dockerd\x00-H\x00fd://"}}, off, front,
			Proxy{Known: true, On: false, How: off}},
		{"daemon.json without the key: Docker's default, on", nil, noKey, nil, Proxy{Known: true, On: true, How: noKey}},
		{"our dockerd runs no proxy for front's published ports", map[string][2]string{"12": {here, "dockerd\x00-H\x00fd://"}}, missing, front,
			Proxy{Known: true, On: false, How: "no docker-proxy process for the published ports"}},
		{"nothing published, nothing visible", nil, missing, nil, Proxy{}},
		{"broken daemon.json", nil, bad, nil, Proxy{}},
		{"other processes ignored", map[string][2]string{"13": {here, "docker-proxyX\x00-host-port\x0025"}, "14": {here, "sshd\x00--userland-proxy=true"}}, missing, front, Proxy{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := DetectProxy(ProxyProbe{Proc: fakeProc(t, here, tc.procs), DaemonJSON: tc.daemonJSON, Host: ours, Forwards: tc.forwards})
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if w := (Proxy{Known: true, On: true}).Word() + (Proxy{Known: true}).Word() + (Proxy{}).Word(); w != "yesnounknown" {
		t.Errorf("words %q", w)
	}
}
