package configs

import (
	"fmt"
	"os/user"
	"strings"
)

// CheckHost checks what only this machine can tell: settings that parse
// but would make the daemon fail at start. `bansd --check` runs it so a
// bad file is caught before systemd restarts the daemon in a loop.
func CheckHost(c *Config) error {
	if g := c.Daemon.SocketGroup; g != "" {
		if _, err := user.LookupGroup(g); err != nil {
			return &Error{File: c.fileName(), Key: "daemon.socket_group", Err: fmt.Errorf("group %q does not exist on this host", g)}
		}
	}
	return nil
}

func (c *Config) fileName() string {
	if c.File == "" {
		return "(embedded default)"
	}
	return c.File
}

// checkJailCase refuses a jail whose name differs from a default jail's
// only by case: "[jails.Auth]" would silently be a second jail beside
// "auth" instead of the override the operator meant.
func checkJailCase(def, l *layer) error {
	for name := range l.raw.Jails {
		for d := range def.raw.Jails {
			if name != d && strings.EqualFold(name, d) {
				return &Error{File: l.name, Line: l.line("jails." + name), Key: "jails." + name,
					Err: fmt.Errorf("differs from the default jail %q only by case; jail names are case-sensitive: write [jails.%s] to change it", d, d)}
			}
		}
	}
	return nil
}
