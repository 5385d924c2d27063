package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bansd/bansd/cmd/internal/wire"
	"github.com/bansd/bansd/configs"
	"github.com/bansd/bansd/jail"
	"github.com/bansd/bansd/sources"
	"github.com/bansd/bansd/sources/docker"
)

// dockerReplay is what --docker reads.
type dockerReplay struct {
	host, project string
	since, until  time.Time
}

// dockerSources opens the project's history: one source per service, read
// side by side. close releases the client.
//
// prot is what the daemon would protect on this engine (its networks and
// gateways, Mailu's SUBNET and the rest of its settings), so that a gateway
// "client" is an alarm in the replay as it is live, not a ban.
func dockerSources(ctx context.Context, cfg *configs.Config, d dockerReplay) (srcs []replaySource, prot jail.Protected, notes []string, close func() error, err error) {
	h, err := docker.OpenHistory(ctx, docker.HistoryOptions{Host: d.host, Project: d.project, Services: cfg.Docker.Services, Since: d.since, Until: d.until, MaxLine: cfg.Docker.MaxLine})
	if err != nil {
		return nil, prot, nil, nil, err
	}
	info, err := h.Mailu(ctx)
	if err != nil {
		h.Close()
		return nil, prot, nil, nil, err
	}
	prot = wire.Protected(info)
	if c := h.Candidates(); len(c) > 1 {
		notes = append(notes, fmt.Sprintf("several Mailu compose projects on %s: %s; replaying %s (choose with --project)", h.Host(), strings.Join(c, ", "), h.Project()))
	}
	svcs := h.Services()
	if len(svcs) == 0 {
		h.Close()
		return nil, prot, nil, nil, fmt.Errorf("replay --docker: project %q on %s has no container of %s", h.Project(), h.Host(), strings.Join(docker.DefaultServices, ", "))
	}
	for _, svc := range svcs {
		srcs = append(srcs, replaySource{
			name: fmt.Sprintf("--docker %s/%s", h.Project(), svc),
			in:   replayInput{service: svc, path: "docker:" + h.Project()},
			read: func(ctx context.Context, fn func(sources.Line) error) (int64, error) { return h.Read(ctx, svc, fn) },
		})
	}
	return srcs, prot, notes, h.Close, nil
}

// parseWhen reads --since and --until: a duration back from now (7d, 36h)
// or a time (RFC 3339, or a date in UTC).
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	d, err := configs.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, usagef("bad --%s %q: a duration back from now (7d, 36h) or a time (2026-11-20, 2026-11-20T15:04:05Z)", flag, s)
	}
	return now.Add(-d), nil
}

// showProgress rewrites one line on w every interval until stop is
// closed, then erases it; done is closed once it has.
func showProgress(w io.Writer, p *replayProgress, interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			fmt.Fprint(w, "\r\033[K")
			return
		case <-t.C:
			at := "-"
			if ns := p.latest.Load(); ns > 0 {
				at = time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05Z")
			}
			fmt.Fprintf(w, "\r\033[Kreplay: %d lines read, log time %s", p.lines.Load(), at)
		}
	}
}
