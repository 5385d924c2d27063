// Package sources delivers log lines from Mailu's containers (live, through
// the Docker API) or from files (for replay and tests) to the jail engine.
package sources

import "time"

// Line is one log line of one Mailu service.
type Line struct {
	// Service is the compose service the line came from: front, admin, smtp, antispam.
	Service string
	// Container is the container id, empty for files.
	Container string
	// Time is Docker's timestamp for the line; zero when the line had none
	// (then the jail engine uses the line's own timestamp).
	Time time.Time
	// Text is the line without Docker's timestamp prefix and without the
	// trailing newline.
	Text string
	// Warm marks a line from before the resume point, read again at start
	// to rebuild the engine's windows: it was processed before, so it only
	// counts (jail.Engine.Warm) and is never Done.
	Warm bool
}
