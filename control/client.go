package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// SocketFromEnv returns $BANSD_SOCKET, else DefaultSocket.
func SocketFromEnv() string {
	if s := os.Getenv("BANSD_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

// Client talks to bansd over its unix socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// APIError is a non-2xx answer from the daemon.
type APIError struct {
	Code    int
	Message string
	Details []string
}

func (e *APIError) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	const show = 20
	d := e.Details
	more := ""
	if len(d) > show {
		more = fmt.Sprintf("\n  ... and %d more", len(d)-show)
		d = d[:show]
	}
	return e.Message + ":\n  " + strings.Join(d, "\n  ") + more
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = &buf
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://bansd"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("permission denied: run as root or set daemon.socket_group (socket %s)", c.socket)
		}
		if isConnRefused(err) {
			return fmt.Errorf("bansd is not running or not listening on %s: %w", c.socket, err)
		}
		return fmt.Errorf("talk to bansd on %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e Error
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			// Some endpoints (reload) answer a failure with their result.
			if out != nil && json.Unmarshal(data, out) == nil {
				return &APIError{Code: resp.StatusCode, Message: fmt.Sprintf("bansd: %s", strings.TrimSpace(string(data)))}
			}
			e.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Code: resp.StatusCode, Message: e.Error, Details: e.Details}
	}
	if out == nil {
		return nil
	}
	if l, ok := out.(banDecoder); ok {
		n, _ := strconv.Atoi(resp.Header.Get(countHeader))
		var buf bytes.Buffer
		if n > 0 && n <= maxPrealloc {
			buf.Grow(n * 200) // a ban is about 150 to 250 bytes of JSON
		}
		if _, err := buf.ReadFrom(resp.Body); err != nil {
			return fmt.Errorf("read answer of %s %s: %w", method, path, err)
		}
		if err := decodeBanList(buf.Bytes(), n, l); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
		return nil
	}
	if h, ok := out.(historyDecoder); ok {
		return decodeHistoryLines(resp.Body, h)
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// Bans lists active bans, of one jail when jail != "".
func (c *Client) Bans(ctx context.Context, jail string) (BanList, error) {
	l := BanList{Bans: []Ban{}}
	err := c.do(ctx, http.MethodGet, bansPath(jail), nil, banDecoder(&l))
	return l, err
}

func bansPath(jail string) string {
	p := APIVersion + "/bans"
	if jail != "" {
		p += "?jail=" + url.QueryEscape(jail)
	}
	return p
}

// banDecoder marks Bans' answer for the list decoder.
type banDecoder *BanList

// BansRaw copies the JSON list of bans to w as the daemon sends it.
func (c *Client) BansRaw(ctx context.Context, jail string, w io.Writer) error {
	return c.do(ctx, http.MethodGet, bansPath(jail), nil, w)
}

// Ban bans targets.
func (c *Client) Ban(ctx context.Context, req BanRequest) (BanResult, error) {
	var r BanResult
	err := c.do(ctx, http.MethodPost, APIVersion+"/bans", req, &r)
	return r, err
}

// Unban lifts bans.
func (c *Client) Unban(ctx context.Context, req UnbanRequest) (UnbanResult, error) {
	var r UnbanResult
	err := c.do(ctx, http.MethodDelete, APIVersion+"/bans", req, &r)
	return r, err
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, APIVersion+"/status", nil, &s)
	return s, err
}

// Why explains what bansd knows about addr.
func (c *Client) Why(ctx context.Context, addr netip.Addr) (Why, error) {
	var w Why
	err := c.do(ctx, http.MethodGet, APIVersion+"/why?addr="+url.QueryEscape(addr.String()), nil, &w)
	return w, err
}

// Reload asks the daemon to reload its config file. A refused config
// comes back as an error and in the result.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var r ReloadResult
	err := c.do(ctx, http.MethodPost, APIVersion+"/reload", nil, &r)
	var ae *APIError
	if errors.As(err, &ae) && r.Error != "" {
		return r, fmt.Errorf("reload refused: %s", r.Error)
	}
	return r, err
}

// Shield turns the relay shield on or off at run time.
func (c *Client) Shield(ctx context.Context, on bool) (ShieldStatus, error) {
	var r ShieldStatus
	err := c.do(ctx, http.MethodPost, APIVersion+"/shield", ShieldRequest{On: on}, &r)
	return r, err
}

// Metrics copies the Prometheus text exposition to w.
func (c *Client) Metrics(ctx context.Context, w io.Writer) error {
	return c.do(ctx, http.MethodGet, APIVersion+"/metrics", nil, w)
}
