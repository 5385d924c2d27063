package configs

import (
	"strings"
	"testing"
	"time"
)

func TestHistoryConfig(t *testing.T) {
	tests := []struct {
		toml    string
		age     time.Duration
		events  int
		wantErr string
	}{
		{"", 90 * 24 * time.Hour, 200000, ""},
		{"[history]\nmax_age = \"7d\"\nmax_events = 5000\n", 7 * 24 * time.Hour, 5000, ""},
		{"[history]\nmax_events = 10\n", 0, 0, "history.max_events"},
		{"[history]\nmax_age = \"1m\"\n", 0, 0, "history.max_age"},
		{"[history]\nmax_age = \"soon\"\n", 0, 0, "history.max_age"},
	}
	for _, tt := range tests {
		c, err := Parse("t.toml", []byte(tt.toml))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err %v, want one naming %s", tt.toml, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.toml, err)
		}
		if c.History.MaxAge != tt.age || c.History.MaxEvents != tt.events {
			t.Errorf("%q: %+v", tt.toml, c.History)
		}
	}
}
