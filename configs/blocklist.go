package configs

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bansd/bansd/blocklist"
)

// BlocklistJailPrefix heads the jail of every blocklist's bans:
// "blocklist:NAME".
const BlocklistJailPrefix = "blocklist:"

// Blocklist is one [blocklists.NAME]: a list of addresses and CIDRs that
// bansd fetches, refreshes and enforces as the bans of jail blocklist:NAME.
type Blocklist struct {
	Name string
	// URL (https://, or http:// to a loopback host) or File: exactly one.
	URL  string
	File string
	// Refresh is how often the list is fetched again.
	Refresh time.Duration
	// BanTime is how long the kernel keeps an entry after the last
	// successful refresh: longer than Refresh, so the list stays enforced
	// between refreshes; a dead bansd does not enforce it for ever.
	BanTime time.Duration
	// Timeout bounds one fetch.
	Timeout time.Duration
	// MaxSize (bytes) and MaxEntries bound what one fetch may hold.
	MaxSize    int64
	MaxEntries int
}

// Source is where the list is read from.
func (b Blocklist) Source() string {
	if b.URL != "" {
		return b.URL
	}
	return b.File
}

// Jail is the jail the list's bans are kept under.
func (b Blocklist) Jail() string { return BlocklistJailPrefix + b.Name }

type rawBlocklist struct {
	URL        *string `toml:"url"`
	File       *string `toml:"file"`
	Refresh    *string `toml:"refresh"`
	BanTime    *string `toml:"bantime"`
	Timeout    *string `toml:"timeout"`
	MaxSize    *string `toml:"max_size"`
	MaxEntries *int    `toml:"max_entries"`
}

// Blocklist defaults: Spamhaus asks for no more than one fetch an hour.
const (
	defaultBlocklistRefresh    = time.Hour
	defaultBlocklistBanTime    = 24 * time.Hour
	defaultBlocklistTimeout    = time.Minute
	defaultBlocklistMaxSize    = 64 << 20
	defaultBlocklistMaxEntries = 500_000
)

// BlocklistNames returns the blocklist names in a stable order.
func (c *Config) BlocklistNames() []string {
	names := make([]string, 0, len(c.Blocklists))
	for n := range c.Blocklists {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// applyBlocklists overlays [blocklists.NAME] on the lists so far.
func (c *Config) applyBlocklists(rbs map[string]rawBlocklist, fail failFunc) error {
	for name, rb := range rbs {
		key := "blocklists." + name
		if !ValidName(name) {
			return fail(key, fmt.Errorf("blocklist name %q: use letters, digits, - and _", name))
		}
		b, ok := c.Blocklists[name]
		if !ok {
			b = Blocklist{Name: name, Refresh: defaultBlocklistRefresh, BanTime: defaultBlocklistBanTime,
				Timeout: defaultBlocklistTimeout, MaxSize: defaultBlocklistMaxSize, MaxEntries: defaultBlocklistMaxEntries}
		}
		if rb.URL != nil {
			if err := blocklist.CheckURL(*rb.URL); err != nil {
				return fail(key+".url", err)
			}
			b.URL, b.File = *rb.URL, ""
		}
		if rb.File != nil {
			if rb.URL != nil {
				return fail(key+".file", errors.New("set url or file, not both"))
			}
			if !strings.HasPrefix(*rb.File, "/") {
				return fail(key+".file", fmt.Errorf("%q is not an absolute path", *rb.File))
			}
			b.URL, b.File = "", *rb.File
		}
		if err := setDur(&b.Refresh, rb.Refresh, time.Second); err != nil {
			return fail(key+".refresh", err)
		}
		if err := setDur(&b.BanTime, rb.BanTime, time.Second); err != nil {
			return fail(key+".bantime", err)
		}
		if err := setDur(&b.Timeout, rb.Timeout, time.Second); err != nil {
			return fail(key+".timeout", err)
		}
		if rb.MaxSize != nil {
			n, err := ParseSize(*rb.MaxSize)
			if err != nil {
				return fail(key+".max_size", err)
			}
			if n < 1<<10 || n > 1<<30 {
				return fail(key+".max_size", fmt.Errorf("%q is outside 1KiB..1GiB", *rb.MaxSize))
			}
			b.MaxSize = n
		}
		if err := setInt(&b.MaxEntries, rb.MaxEntries, 1, 5_000_000); err != nil {
			return fail(key+".max_entries", err)
		}
		c.Blocklists[name] = b
	}
	return nil
}

// checkBlocklists validates what only a whole [blocklists.NAME] shows.
func (c *Config) checkBlocklists(l *layer) error {
	for _, name := range c.BlocklistNames() {
		b := c.Blocklists[name]
		key := "blocklists." + name
		fail := func(k string, err error) error {
			return &Error{File: l.name, Line: l.line(k), Key: k, Err: err}
		}
		if b.Source() == "" {
			return fail(key, errors.New("needs url (https://...) or file (/path)"))
		}
		if b.URL != "" && !blocklist.Local(b.URL) && b.Refresh < time.Minute {
			return fail(key+".refresh", fmt.Errorf("%s: a remote URL is fetched at most once a minute", b.Refresh))
		}
		if b.BanTime <= b.Refresh {
			return fail(key+".bantime", fmt.Errorf("%s is not longer than refresh %s: the list would lapse between refreshes", b.BanTime, b.Refresh))
		}
		if c.Ban.BantimeMax > 0 && b.BanTime > c.Ban.BantimeMax {
			return fail(key+".bantime", fmt.Errorf("%s is longer than ban.bantime_max %s", b.BanTime, c.Ban.BantimeMax))
		}
		if b.Timeout > b.Refresh {
			return fail(key+".timeout", fmt.Errorf("%s is longer than refresh %s", b.Timeout, b.Refresh))
		}
	}
	return nil
}

// ParseSize reads a byte count: digits, optionally followed by KiB, MiB or
// GiB ("64MiB").
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(in, u.suffix); ok {
			in, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(in, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q (examples: \"64MiB\", \"512KiB\", \"1GiB\", \"1048576\")", s)
	}
	return n * mult, nil
}
