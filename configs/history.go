package configs

import (
	"fmt"
	"time"
)

// History bounds the audit history of actions kept in the store.
type History struct {
	MaxAge    time.Duration
	MaxEvents int
}

type rawHistory struct {
	MaxAge    *string `toml:"max_age"`
	MaxEvents *int    `toml:"max_events"`
}

func (c *Config) applyHistory(r rawHistory, fail failFunc) error {
	if err := setDur(&c.History.MaxAge, r.MaxAge, time.Hour); err != nil {
		return fail("history.max_age", err)
	}
	// The bound is checked at every write: at least a day of a quiet host,
	// at most what a bbolt file holds without slowing every scan.
	if err := setInt(&c.History.MaxEvents, r.MaxEvents, 1000, 50_000_000); err != nil {
		return fail("history.max_events", err)
	}
	if c.History.MaxEvents == 0 {
		return fail("history.max_events", fmt.Errorf("must be set"))
	}
	return nil
}
