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

// typeWords turns the toml decoder's "incompatible types: TOML value has
// type string; destination has type slice" into what the operator must
// write: "expected a list of strings, got a string".
func typeWords(msg string) string {
	rest, ok := strings.CutPrefix(msg, "incompatible types: TOML value has type ")
	if !ok {
		return msg
	}
	got, dst, ok := strings.Cut(rest, "; destination has type ")
	if !ok {
		return msg
	}
	want := map[string]string{
		"slice": "a list of strings", "integer": "an integer", "boolean": "true or false",
		"string": "a string (in quotes)", "float": "a number", "map": "a table",
	}[strings.TrimSpace(dst)]
	if want == "" {
		return msg
	}
	gotW := map[string]string{
		"string": "a string", "integer": "an integer", "int64": "an integer", "float64": "a number", "float": "a number", "bool": "true/false",
		"boolean": "true/false", "array": "a list", "slice": "a list", "map": "a table", "table": "a table",
	}[strings.TrimSpace(got)]
	if gotW == "" {
		gotW = strings.TrimSpace(got)
	}
	return "expected " + want + ", got " + gotW
}
