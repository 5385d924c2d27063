package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/bansd/bansd/sources"
	"github.com/bansd/bansd/sources/docker"
	"github.com/bansd/bansd/sources/journal"
)

// journalSource is `journalctl -o export` or `-o json` output: several
// services in one stream, in the journal's time order.
func journalSource(path string, r io.Reader, maxLine int, services []string) replaySource {
	if services == nil {
		services = docker.DefaultServices
	}
	var c journal.Counts
	name := "--journal " + path
	return replaySource{
		name: name,
		in:   replayInput{service: "journal", path: path, mixed: true},
		read: func(ctx context.Context, fn func(sources.Line) error) (int64, error) {
			var err error
			c, err = journal.Read(ctx, r, journal.Options{MaxLine: maxLine, Services: services}, fn)
			return c.Cut, err
		},
		notes: func() []string { return journalNotes(name, c, services) },
	}
}

// journalNotes says what of a journal was not replayed.
func journalNotes(name string, c journal.Counts, services []string) []string {
	var out []string
	if c.Lines == 0 && c.Records > 0 {
		out = append(out, fmt.Sprintf("%s: none of its %d entries is a Mailu container's (want CONTAINER_TAG or CONTAINER_NAME naming %s, e.g. mailu-front or mailu-front-1)",
			name, c.Records, strings.Join(services, ", ")))
	}
	if len(c.Other) > 0 {
		var names []string
		var n int64
		for k, v := range c.Other {
			names = append(names, fmt.Sprintf("%s: %d", k, v))
			n += v
		}
		sort.Strings(names)
		out = append(out, fmt.Sprintf("%s: %d entries of other units or containers skipped (%s)", name, n, strings.Join(names, ", ")))
	}
	if c.Omitted > 0 {
		out = append(out, fmt.Sprintf("%s: %d container lines lost: journalctl printed their MESSAGE as null (over 4096 bytes); run journalctl with --all", name, c.Omitted))
	}
	return out
}
