package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/bansd/bansd/stats"
)

// StatsQuery selects the period GET /v1/stats sums up.
type StatsQuery struct {
	Since time.Time
	// Top is how many jails, networks and offenders are listed.
	Top int
}

// StatsTopMax bounds Top: the lists are for reading.
const StatsTopMax = 1000

func (q StatsQuery) values() url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Top > 0 {
		v.Set("top", strconv.Itoa(q.Top))
	}
	return v
}

func parseStatsQuery(v url.Values) (StatsQuery, error) {
	q := StatsQuery{Top: 10}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("bad since %q: want RFC 3339", s)
		}
		q.Since = t
	}
	if s := v.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return q, fmt.Errorf("bad top %q", s)
		}
		q.Top = min(n, StatsTopMax)
	}
	return q, nil
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	q, err := parseStatsQuery(r.URL.Query())
	if err != nil {
		writeError(w, &HTTPError{Code: http.StatusBadRequest, Message: err.Error()})
		return
	}
	sum, err := s.backend.Stats(r.Context(), q)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&sum) // an error is the client going away
}

// Stats returns the history summed up over q's period.
func (c *Client) Stats(ctx context.Context, q StatsQuery) (stats.Summary, error) {
	var out stats.Summary
	err := c.do(ctx, http.MethodGet, APIVersion+"/stats?"+q.values().Encode(), nil, &out)
	return out, err
}
