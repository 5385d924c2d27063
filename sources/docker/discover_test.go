package docker

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestDiscover(t *testing.T) {
	c := func(project, service, state string, oneoff bool) container.Summary {
		l := map[string]string{LabelProject: project, LabelService: service}
		if oneoff {
			l[labelOneoff] = "True"
		}
		return container.Summary{Labels: l, State: state}
	}
	tests := []struct {
		name, want string
		cs         []container.Summary
		project    string // docker.project
	}{
		{name: "none"},
		{name: "front alone is not Mailu", cs: []container.Summary{c("web", "front", "running", false), c("web", "db", "running", false)}},
		{name: "front and admin", want: "mail", cs: []container.Summary{c("web", "front", "running", false), c("mail", "front", "exited", false), c("mail", "admin", "exited", false)}},
		{name: "one-off admin does not count", cs: []container.Summary{c("x", "front", "running", false), c("x", "admin", "running", true)}},
		{name: "running front wins", want: "b", cs: []container.Summary{
			c("a", "front", "exited", false), c("a", "admin", "running", false),
			c("b", "front", "running", false), c("b", "admin", "running", false)}},
		{name: "then the first name", want: "m", cs: []container.Summary{
			c("z", "front", "running", false), c("z", "admin", "running", false),
			c("m", "front", "running", false), c("m", "admin", "running", false)}},
		{name: "a project named mailu has no preference", want: "a", cs: []container.Summary{
			c("mailu", "front", "running", false), c("mailu", "admin", "running", false),
			c("a", "front", "running", false), c("a", "admin", "running", false)}},
		{name: "docker.project is followed as set", project: "z", want: "z", cs: []container.Summary{
			c("z", "front", "exited", false), c("m", "front", "running", false), c("m", "admin", "running", false)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := ChooseProject(tc.project, tc.cs); got != tc.want {
				t.Fatalf("ChooseProject = %q, want %q", got, tc.want)
			}
			if tc.project == "" {
				d := &Docker{log: slog.New(slog.DiscardHandler)}
				if got := d.discover(tc.cs); got != tc.want {
					t.Fatalf("discover = %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestMailuPrefixes(t *testing.T) {
	m := MailuInfo{Env: map[string]string{"REAL_IP_FROM": "192.0.2.1, 198.51.100.0/24,bogus 2001:db8::/32", "SUBNET": "192.168.203.7/24"}}
	tests := []struct {
		key, want string
	}{
		{"REAL_IP_FROM", "[192.0.2.1/32 198.51.100.0/24 2001:db8::/32]"},
		{"SUBNET", "[192.168.203.0/24]"},
		{"SUBNET6", "[]"},
	}
	for _, tc := range tests {
		if got := fmt.Sprint(m.Prefixes(tc.key)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.key, got, tc.want)
		}
	}
}

// Only ports bound on every address count for the relay shield; Docker
// lists such a port twice (0.0.0.0 and ::).
func TestPublishedAll(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ports []container.Port
		want  string
	}{
		{"none", nil, "[]"},
		{"all addresses, both families", []container.Port{{IP: "0.0.0.0", PublicPort: 25, PrivatePort: 25, Type: "tcp"}, {IP: "::", PublicPort: 25, PrivatePort: 25, Type: "tcp"}}, "[25]"},
		{"no address", []container.Port{{PublicPort: 465, PrivatePort: 465}}, "[465]"},
		{"specific addresses", []container.Port{{IP: "198.51.100.1", PublicPort: 25, PrivatePort: 25, Type: "tcp"}, {IP: "2001:db8::1", PublicPort: 587, PrivatePort: 587, Type: "tcp"}}, "[]"},
		{"mixed, udp and unpublished left out", []container.Port{
			{IP: "0.0.0.0", PublicPort: 993, PrivatePort: 993, Type: "tcp"}, {IP: "127.0.0.1", PublicPort: 8080, PrivatePort: 80, Type: "tcp"},
			{IP: "0.0.0.0", PublicPort: 53, PrivatePort: 53, Type: "udp"}, {PrivatePort: 110, Type: "tcp"}, {IP: "::", PublicPort: 25, PrivatePort: 25, Type: "tcp"},
		}, "[25 993]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(publishedAll(container.Summary{Ports: tc.ports})); got != tc.want {
				t.Errorf("publishedAll = %s, want %s", got, tc.want)
			}
		})
	}
}
