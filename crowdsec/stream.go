package crowdsec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Decision is a validated ban decision from the stream.
type Decision struct {
	ID       int64
	Origin   string
	Scenario string
	Target   netip.Prefix
	// Duration is the time left when it was read (capped; zero for deleted).
	Duration time.Duration
	Capped   bool
}

// Label is how bansd shows where a pulled ban came from.
func (d Decision) Label() string { return "crowdsec:" + d.Origin + "/" + d.Scenario }

// FromBansd says a bansd host pushed it (this one or another).
func (d Decision) FromBansd() bool {
	return d.Origin == Origin || strings.HasPrefix(d.Scenario, ScenarioPrefix)
}

// StreamCounts says what one pull held.
type StreamCounts struct {
	New, Deleted int
	// OtherType: decisions that are not bans (captcha, throttle...): ignored.
	OtherType int
	// Invalid: bad scope, value or duration; Expired: new with no time left.
	Invalid, Expired int
	// Capped: new decisions whose duration was cut to MaxDuration.
	Capped int
}

// Sink receives the decisions of a pull as they are decoded.
type Sink func(d Decision, deleted bool) error

type rawDecision struct {
	Duration string `json:"duration"`
	ID       int64  `json:"id"`
	Origin   string `json:"origin"`
	Scenario string `json:"scenario"`
	Scope    string `json:"scope"`
	Type     string `json:"type"`
	Value    string `json:"value"`
}

// Stream pulls the bouncer's decision stream (startup: everything live;
// else what changed since this bouncer's last pull) and hands each valid
// ban to sink while decoding, so a million decisions are never held at once.
func (c *Client) Stream(ctx context.Context, startup bool, sink Sink) (StreamCounts, error) {
	var n StreamCounts
	if c.cfg.BouncerKey == "" {
		return n, errors.New("crowdsec: no bouncer_key configured")
	}
	q := url.Values{}
	if startup {
		q.Set("startup", "true")
	}
	const path = "/v1/decisions/stream"
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StreamTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return n, err
	}
	req.Header.Set("X-Api-Key", c.cfg.BouncerKey)
	resp, err := c.http.Do(req)
	if err != nil {
		return n, fmt.Errorf("crowdsec LAPI GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, err := readBounded(resp.Body, c.cfg.MaxBody)
		if err != nil {
			return n, fmt.Errorf("crowdsec LAPI GET %s: HTTP %d: %w", path, resp.StatusCode, err)
		}
		return n, apiError(http.MethodGet, path, resp.StatusCode, data)
	}
	if err := c.decodeStream(resp.Body, &n, sink); err != nil {
		return n, fmt.Errorf("crowdsec LAPI GET %s: %w", path, err)
	}
	return n, nil
}

// boundedValue fails the read once the decoder holds more than max bytes
// of a single unfinished value: json.Decoder buffers a whole value.
type boundedValue struct {
	r    io.Reader
	dec  *json.Decoder
	read int64
	max  int64
}

var errValueTooLarge = fmt.Errorf("%w: one JSON value is over %d bytes", ErrBodyTooLarge, maxValue)

func (b *boundedValue) Read(p []byte) (int, error) {
	if b.dec != nil && b.read-b.dec.InputOffset() > b.max {
		return 0, errValueTooLarge
	}
	if int64(len(p)) > b.max {
		p = p[:b.max]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

func (c *Client) decodeStream(r io.Reader, n *StreamCounts, sink Sink) error {
	br := &boundedValue{r: r, max: maxValue}
	dec := json.NewDecoder(br)
	br.dec = dec
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badJSON(err)
		}
		key, _ := tok.(string)
		switch key {
		case "new", "deleted":
			if err := c.decodeList(dec, key == "deleted", n, sink); err != nil {
				return err
			}
		default:
			// Fields of later LAPI versions: skip, bounded like the rest.
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return badJSON(err)
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("bad JSON answer: data after the object")
	}
	return nil
}

func (c *Client) decodeList(dec *json.Decoder, deleted bool, n *StreamCounts, sink Sink) error {
	tok, err := dec.Token()
	if err != nil {
		return badJSON(err)
	}
	if tok == nil {
		return nil // 1.4.6 sends null for an empty list
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("bad JSON answer: want a list of decisions, got %v", tok)
	}
	for dec.More() {
		var raw rawDecision
		if err := dec.Decode(&raw); err != nil {
			return badJSON(err)
		}
		d, status := c.validate(raw, deleted)
		switch status {
		case statusOtherType:
			n.OtherType++
			continue
		case statusInvalid:
			n.Invalid++
			continue
		case statusExpired:
			n.Expired++
			continue
		}
		if d.Capped {
			n.Capped++
		}
		if deleted {
			n.Deleted++
		} else {
			n.New++
		}
		if err := sink(d, deleted); err != nil {
			return err
		}
	}
	_, err = dec.Token() // ']'
	if err != nil {
		return badJSON(err)
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return badJSON(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("bad JSON answer: want %q, got %v", want, tok)
	}
	return nil
}

func badJSON(err error) error {
	if errors.Is(err, ErrBodyTooLarge) || errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return fmt.Errorf("bad JSON answer: %w", err)
}

type status int

const (
	statusOK status = iota
	statusOtherType
	statusInvalid
	statusExpired
)

// validate turns a wire decision into a target bansd can enforce, or says
// why not. Deleted decisions need no duration (theirs is negative).
func (c *Client) validate(raw rawDecision, deleted bool) (Decision, status) {
	if !strings.EqualFold(raw.Type, "ban") {
		return Decision{}, statusOtherType
	}
	target, ok := parseTarget(raw.Scope, raw.Value)
	if !ok {
		return Decision{}, statusInvalid
	}
	d := Decision{ID: raw.ID, Origin: bound(raw.Origin, 64), Scenario: bound(raw.Scenario, 128), Target: target}
	if deleted {
		return d, statusOK
	}
	dur, err := time.ParseDuration(raw.Duration)
	if err != nil {
		return Decision{}, statusInvalid
	}
	if dur < time.Second {
		return Decision{}, statusExpired
	}
	if dur > c.cfg.MaxDuration {
		dur, d.Capped = c.cfg.MaxDuration, true
	}
	d.Duration = dur
	return d, statusOK
}

// parseTarget reads an Ip or Range value: IPv4-mapped IPv6 is unmapped,
// a range's host bits are cleared (the range as written covers them), and
// what would cut off the world or never reaches bansd is refused.
func parseTarget(scope, value string) (netip.Prefix, bool) {
	var p netip.Prefix
	switch {
	case strings.EqualFold(scope, "ip"):
		a, err := netip.ParseAddr(value)
		if err != nil {
			return p, false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	case strings.EqualFold(scope, "range"):
		var err error
		if p, err = netip.ParsePrefix(value); err != nil {
			return p, false
		}
	default:
		return p, false
	}
	a, bits := p.Addr(), p.Bits()
	if a.Zone() != "" {
		return p, false
	}
	if a.Is4In6() {
		if bits < 96 {
			return p, false
		}
		a, bits = a.Unmap(), bits-96
	}
	p = netip.PrefixFrom(a, bits).Masked()
	if a.Is4() && bits < 8 || a.Is6() && bits < 16 {
		return p, false
	}
	if a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() {
		return p, false
	}
	return p, true
}

// bound cuts text from LAPI to n bytes of valid UTF-8.
func bound(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
