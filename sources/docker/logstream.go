package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/docker/docker/client"
)

// followLogs opens the followed log stream of container id (stdout and
// stderr, with timestamps, from unix second since when it is not empty),
// as the client's ContainerLogs does, but asked in HTTP/1.0 on a
// connection of its own. dockerd then writes the stream as it is, where in
// HTTP/1.1 it wraps every log message in a chunk of its own: reading those
// chunks back through net/http (chunk header, data, trailing CRLF, a body
// and two wrappers per read) was about 8% of bansd's CPU under a flood,
// for nothing a stream that lasts as long as the container needs. The end
// of the stream is the end of the connection. The path carries the
// client's API version, which its first request negotiates: call it after
// one (attach inspects the container first).
func (d *Docker) followLogs(ctx context.Context, id, since string) (*logStream, error) {
	q := url.Values{"stdout": {"1"}, "stderr": {"1"}, "timestamps": {"1"}, "follow": {"1"}, "tail": {""}}
	if since != "" {
		q.Set("since", since)
	}
	base := ""
	if u, err := client.ParseHostURL(d.cli.DaemonHost()); err == nil {
		base = u.Path // a tcp:// host can carry a path prefix
	}
	target := logsPath(base, d.cli.ClientVersion(), id) + "?" + q.Encode()
	conn, err := d.cli.Dialer()(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to the engine: %w", err)
	}
	// The connection is the stream: interrupting it is how ctx ends a read.
	var rw io.ReadWriter = conn
	s := &logStream{conn: conn, stop: context.AfterFunc(ctx, func() { conn.Close() })}
	p, paced, err := pace(conn)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("take the log stream's socket: %w", err)
	}
	if paced {
		s.stop()
		rw, s.conn = p, p
		s.stop = context.AfterFunc(ctx, p.interrupt)
	}
	fail := func(err error) (*logStream, error) {
		s.Close()
		return nil, err
	}
	if _, err := fmt.Fprintf(rw, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: bansd\r\n\r\n", target, client.DummyHost); err != nil {
		return fail(fmt.Errorf("ask for the log: %w", err))
	}
	br := bufio.NewReaderSize(rw, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail(fmt.Errorf("read the engine's answer: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		return fail(engineError(resp))
	}
	s.body = br
	if resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0 {
		// Something between (a proxy) framed the stream after all.
		s.body = resp.Body
	}
	return s, nil
}

// logsPath is the logs endpoint of container id as the client builds its
// own paths: under the host's base path, and unversioned when no version
// is known.
func logsPath(base, version, id string) string {
	p := "/containers/" + url.PathEscape(id) + "/logs"
	if version != "" {
		return path.Join(base, "/v"+strings.TrimPrefix(version, "v"), p)
	}
	return path.Join(base, p)
}

// engineError is the engine's refusal in its own words ({"message": ...}).
func engineError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	return fmt.Errorf("Error response from daemon (%s): %s", resp.Status, msg)
}

// logStream is a followLogs answer; Close ends it.
type logStream struct {
	// body is the stream: the connection's own 64 KiB reader, which the
	// demuxer reads from as its buffer (bufio.NewReaderSize returns a
	// large enough *bufio.Reader as it is), so every byte is copied once.
	body io.Reader
	conn io.Closer
	stop func() bool
}

func (s *logStream) Close() error {
	s.stop()
	return s.conn.Close()
}
