package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/bansd/bansd/sources"
)

// HistoryOptions say which past logs OpenHistory reads.
type HistoryOptions struct {
	// Host and Project as in DockerOptions ("" finds them).
	Host, Project string
	// Services to read; nil means DefaultServices.
	Services []string
	// Since and Until bound the log time; zero means no bound.
	Since, Until time.Time
	// MaxLine cuts longer lines (bytes); 0 means 65536.
	MaxLine int
}

// History reads a compose project's logs as they are now, without
// following them: what `bansctl replay --docker` replays. Every container
// of a service counts, stopped and replaced ones too (oldest first), since
// an attack may span a `docker compose up` that recreated front.
type History struct {
	opt HistoryOptions
	// d is the live source's machinery, for its client and its discovery
	// of the Mailu facts; it follows nothing.
	d       *Docker
	cli     *client.Client
	project string
	// candidates are every project ChooseProject saw, the chosen first.
	candidates []string
	byName     map[string][]container.Summary
}

// OpenHistory finds the project (ChooseProject) and its containers.
func OpenHistory(ctx context.Context, opt HistoryOptions) (*History, error) {
	if !opt.Until.IsZero() && opt.Until.Before(opt.Since) {
		return nil, fmt.Errorf("docker history: until %s is before since %s", opt.Until.Format(time.RFC3339), opt.Since.Format(time.RFC3339))
	}
	d, err := NewDocker(DockerOptions{Host: opt.Host, Project: opt.Project, Services: opt.Services, MaxLine: opt.MaxLine, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("docker history: %w", err)
	}
	opt.Services, opt.MaxLine = d.order, d.opt.MaxLine
	cli := d.cli
	h := &History{opt: opt, d: d, cli: cli, byName: map[string][]container.Summary{}}
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelProject))})
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("docker history: list containers on %s: %w", cli.DaemonHost(), err)
	}
	proj, all := ChooseProject(opt.Project, cs)
	if proj == "" {
		cli.Close()
		return nil, fmt.Errorf("docker history: no compose project with services front and admin on %s (name one with --project)", cli.DaemonHost())
	}
	h.project, h.candidates = proj, all
	d.opt.Project = proj
	for _, c := range cs {
		if c.Labels[LabelProject] == proj && !IsOneOff(c) {
			svc := c.Labels[LabelService]
			h.byName[svc] = append(h.byName[svc], c)
		}
	}
	for _, list := range h.byName {
		slices.SortStableFunc(list, func(a, b container.Summary) int { return cmp.Compare(a.Created, b.Created) })
	}
	return h, nil
}

// Mailu discovers the project's facts as the daemon does (networks and
// gateways, Mailu's settings from the containers' environment), so that a
// replay protects the addresses the daemon would.
func (h *History) Mailu(ctx context.Context) (MailuInfo, error) {
	if err := h.d.reconcile(ctx, map[string]int{}); err != nil {
		return MailuInfo{}, fmt.Errorf("docker history: %w", err)
	}
	return h.d.Mailu(), nil
}

// Project is the compose project read.
func (h *History) Project() string { return h.project }

// Candidates lists every Mailu-like project found, the chosen one first:
// more than one means --project should say which.
func (h *History) Candidates() []string { return h.candidates }

// Host is the engine's address.
func (h *History) Host() string { return h.cli.DaemonHost() }

// Services lists the wanted services that have containers, in the
// options' order.
func (h *History) Services() []string {
	var out []string
	for _, s := range h.opt.Services {
		if len(h.byName[s]) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// Containers lists a service's container ids, oldest first.
func (h *History) Containers(service string) []string {
	var ids []string
	for _, c := range h.byName[service] {
		ids = append(ids, c.ID)
	}
	return ids
}

// Read calls fn for each line of service's containers in the time range,
// one container after the other, oldest first, and says how many lines
// were cut at MaxLine. It may run for several services at once.
func (h *History) Read(ctx context.Context, service string, fn func(sources.Line) error) (cut int64, err error) {
	for _, c := range h.byName[service] {
		n, err := h.readContainer(ctx, service, c.ID, fn)
		cut += n
		if err != nil {
			return cut, fmt.Errorf("container %s: %w", short(c.ID), err)
		}
	}
	return cut, nil
}

func (h *History) readContainer(ctx context.Context, service, id string, fn func(sources.Line) error) (int64, error) {
	insp, err := h.cli.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return 0, nil // removed since the listing: nothing left to read
	}
	if err != nil {
		return 0, fmt.Errorf("inspect: %w", err)
	}
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true}
	if !h.opt.Since.IsZero() {
		opts.Since = apiTime(h.opt.Since)
	}
	if !h.opt.Until.IsZero() {
		opts.Until = apiTime(h.opt.Until)
	}
	rc, err := h.cli.ContainerLogs(ctx, id, opts)
	if cerrdefs.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("logs: %w", err)
	}
	defer rc.Close()
	tty := insp.Config != nil && insp.Config.Tty
	dm := newDemux(rc, tty, h.opt.MaxLine+64)
	asm := assembler{max: h.opt.MaxLine}
	var cut int64
	var fnErr error
	emit := func(a assembled) {
		if fnErr != nil {
			return
		}
		if a.cut {
			cut++
		}
		fnErr = fn(sources.Line{Service: service, Container: id, Time: a.time, Text: a.text})
	}
	for {
		m, err := dm.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return cut, fmt.Errorf("read log: %w", err)
		}
		if m.stream == streamSystem {
			// dockerd could not read its own log file: the history has a hole.
			return cut, fmt.Errorf("docker could not read the log: %s", m.text)
		}
		asm.add(m, emit)
		if fnErr != nil {
			return cut, fnErr
		}
	}
	asm.drain(emit)
	return cut, fnErr
}

// apiTime is a time as the logs endpoint takes it: seconds and nanoseconds.
func apiTime(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// Close releases the client.
func (h *History) Close() error { return h.cli.Close() }
