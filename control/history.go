package control

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HistoryEvent is one action of the audit history, as GET /v1/history
// sends it: one JSON object per line, oldest first.
type HistoryEvent struct {
	Seq      uint64       `json:"seq"`
	Time     time.Time    `json:"time"`
	Kind     string       `json:"kind"`
	Target   netip.Prefix `json:"target,omitzero"`
	Jail     string       `json:"jail,omitempty"`
	Reason   string       `json:"reason,omitempty"`
	Duration Duration     `json:"duration,omitempty"`
	// Permanent: a ban without an end (Duration is then absent).
	Permanent bool `json:"permanent,omitempty"`
	Level     int  `json:"level,omitempty"`
	// UID is the local user who asked for it; -1 for the daemon's own.
	UID      int      `json:"uid"`
	Evidence []string `json:"evidence,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

// Duration is a time.Duration that travels as Go syntax ("1h0m0s").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// HistoryQuery selects events; zero fields select everything.
type HistoryQuery struct {
	Target netip.Prefix
	Since  time.Time
	Jail   string
	Kinds  []string
	// Limit keeps the newest Limit events; the server caps it.
	Limit int
}

// HistoryLimitMax bounds one answer (the history can hold millions).
const HistoryLimitMax = 1_000_000

func (q HistoryQuery) values() url.Values {
	v := url.Values{}
	if q.Target.IsValid() {
		v.Set("target", q.Target.String())
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Jail != "" {
		v.Set("jail", q.Jail)
	}
	if len(q.Kinds) > 0 {
		v.Set("kind", strings.Join(q.Kinds, ","))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func parseHistoryQuery(v url.Values) (HistoryQuery, error) {
	var q HistoryQuery
	if s := v.Get("target"); s != "" {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return q, fmt.Errorf("bad target %q", s)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		q.Target = p.Masked()
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("bad since %q: want RFC 3339", s)
		}
		q.Since = t
	}
	q.Jail = v.Get("jail")
	if s := v.Get("kind"); s != "" {
		q.Kinds = strings.Split(s, ",")
	}
	q.Limit = HistoryLimitMax
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return q, fmt.Errorf("bad limit %q", s)
		}
		q.Limit = min(n, HistoryLimitMax)
	}
	return q, nil
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	q, err := parseHistoryQuery(r.URL.Query())
	if err != nil {
		writeError(w, &HTTPError{Code: http.StatusBadRequest, Message: err.Error()})
		return
	}
	evs, err := s.backend.History(r.Context(), q)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	for i := range evs {
		if err := enc.Encode(&evs[i]); err != nil {
			return
		}
	}
	bw.Flush()
}

// History returns the events q selects, oldest first.
func (c *Client) History(ctx context.Context, q HistoryQuery) ([]HistoryEvent, error) {
	var out []HistoryEvent
	err := c.do(ctx, http.MethodGet, APIVersion+"/history?"+q.values().Encode(), nil, historyDecoder(&out))
	return out, err
}

// historyDecoder marks History's answer (JSON lines) for the decoder.
type historyDecoder *[]HistoryEvent

// HistoryRaw copies the JSON lines of the events q selects to w.
func (c *Client) HistoryRaw(ctx context.Context, q HistoryQuery, w io.Writer) error {
	return c.do(ctx, http.MethodGet, APIVersion+"/history?"+q.values().Encode(), nil, w)
}

// maxHistoryLine bounds one JSON line of the answer: an event's text is
// bounded by the store, far below this.
const maxHistoryLine = 1 << 20

func decodeHistoryLines(r io.Reader, out *[]HistoryEvent) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxHistoryLine)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e HistoryEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("decode history line %d: %w", len(*out)+1, err)
		}
		*out = append(*out, e)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read history: %w", err)
	}
	return nil
}
