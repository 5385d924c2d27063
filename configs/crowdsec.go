package configs

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// CrowdSec is the [crowdsec] section: the link to a CrowdSec Local API
// that shares bans with other hosts. Off when URL is empty.
type CrowdSec struct {
	URL        string
	MachineID  string
	Password   Secret
	BouncerKey Secret
	// PullInterval is how often the decision stream is read.
	PullInterval time.Duration
	// Push sends bansd's own bans; Pull enforces everyone else's.
	Push, Pull bool
	// PushManual: manual bans are pushed too (scenario bansd/manual).
	PushManual bool
	// Origins and Scenarios, when set, are the only ones pulled.
	Origins, Scenarios []string
	// MaxDuration caps a pulled decision's remaining time (0: the client's
	// own bound).
	MaxDuration time.Duration
}

// Enabled reports whether the link is configured.
func (c CrowdSec) Enabled() bool { return c.URL != "" }

type rawCrowdSec struct {
	URL            *string   `toml:"url"`
	MachineID      *string   `toml:"machine_id"`
	Password       *string   `toml:"password"`
	PasswordFile   *string   `toml:"password_file"`
	BouncerKey     *string   `toml:"bouncer_key"`
	BouncerKeyFile *string   `toml:"bouncer_key_file"`
	PullInterval   *string   `toml:"pull_interval"`
	Push           *bool     `toml:"push"`
	Pull           *bool     `toml:"pull"`
	PushManual     *bool     `toml:"push_manual"`
	Origins        *[]string `toml:"origins"`
	Scenarios      *[]string `toml:"scenarios"`
	MaxDuration    *string   `toml:"max_duration"`
}

// applyCrowdSec overlays a layer's [crowdsec] keys.
func (c *Config) applyCrowdSec(l *layer) error {
	r := l.raw.CrowdSec
	cs := &c.CrowdSec
	if cs.PullInterval == 0 {
		// First layer: the defaults.
		*cs = CrowdSec{PullInterval: 10 * time.Second, Push: true, Pull: true, PushManual: true}
	}
	fail := func(key string, err error) error {
		return &Error{File: l.name, Line: l.line(key), Key: key, Err: err}
	}
	if r.URL != nil {
		if *r.URL != "" {
			u, err := url.Parse(*r.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fail("crowdsec.url", fmt.Errorf("%q is not http(s)://host[:port]/", *r.URL))
			}
		}
		cs.URL = *r.URL
	}
	setStr(&cs.MachineID, r.MachineID)
	secret := func(dst *Secret, v, file *string, key string) error {
		if v != nil && file != nil {
			return fail("crowdsec."+key+"_file", fmt.Errorf("set %s or %s_file, not both", key, key))
		}
		if v != nil {
			*dst = Secret(*v)
		}
		if file != nil {
			s, err := readSecret(l.name, *file)
			if err != nil {
				return fail("crowdsec."+key+"_file", err)
			}
			*dst = s
		}
		return nil
	}
	if err := secret(&cs.Password, r.Password, r.PasswordFile, "password"); err != nil {
		return err
	}
	if err := secret(&cs.BouncerKey, r.BouncerKey, r.BouncerKeyFile, "bouncer_key"); err != nil {
		return err
	}
	if err := setDur(&cs.PullInterval, r.PullInterval, time.Second); err != nil {
		return fail("crowdsec.pull_interval", err)
	}
	for _, b := range []struct {
		dst *bool
		v   *bool
	}{{&cs.Push, r.Push}, {&cs.Pull, r.Pull}, {&cs.PushManual, r.PushManual}} {
		if b.v != nil {
			*b.dst = *b.v
		}
	}
	if r.Origins != nil {
		cs.Origins = append([]string(nil), *r.Origins...)
	}
	if r.Scenarios != nil {
		cs.Scenarios = append([]string(nil), *r.Scenarios...)
	}
	if err := setDur(&cs.MaxDuration, r.MaxDuration, time.Second); err != nil {
		return fail("crowdsec.max_duration", err)
	}
	return nil
}

// checkCrowdSec validates the merged section.
func (c *Config) checkCrowdSec(l *layer) error {
	cs := c.CrowdSec
	if !cs.Enabled() {
		return nil
	}
	fail := func(key string, err error) error {
		return &Error{File: l.name, Line: l.line(key), Key: key, Err: err}
	}
	if cs.Push && (cs.MachineID == "" || cs.Password == "") {
		return fail("crowdsec", errors.New("push needs machine_id and password (or password_file); set push = false to only pull"))
	}
	if cs.Pull && cs.BouncerKey == "" {
		return fail("crowdsec", errors.New("pull needs bouncer_key (or bouncer_key_file); set pull = false to only push"))
	}
	if !cs.Push && !cs.Pull {
		return fail("crowdsec", errors.New("url is set but push and pull are both off"))
	}
	return nil
}
