package configs

import (
	"strings"
	"testing"
)

func TestOperatorErrors(t *testing.T) {
	cases := []struct {
		name, file, want string
	}{
		{"list given a string", "[engine]\nignoreip = \"203.0.113.1\"\n", "t.toml:2: engine.ignoreip: expected a list of strings, got a string"},
		{"list of numbers", "[docker]\nservices = [1]\n", "docker.services: expected a string (in quotes), got an integer"},
		{"integer given a string", "[docker]\nmax_line = \"big\"\n", "t.toml:2: docker.max_line: expected an integer, got a string"},
		{"bool given a string", "[jails.auth]\nenabled = \"yes\"\n", "jails.auth.enabled: expected true or false, got a string"},
		{"jail differing by case", "[jails.Auth]\nenabled = false\n", "t.toml:1: jails.Auth: differs from the default jail \"auth\" only by case"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "destination has type") {
				t.Errorf("decoder internals in %q", err)
			}
		})
	}
}

func TestCheckHost(t *testing.T) {
	cases := []struct {
		name, file, want string
	}{
		{"no group", "", ""},
		{"existing group", "[daemon]\nsocket_group = \"root\"\n", ""},
		{"unknown group", "[daemon]\nsocket_group = \"no-such-group-bansd\"\n", `daemon.socket_group: group "no-such-group-bansd" does not exist on this host`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("t.toml", []byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			err = CheckHost(c)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
