package control

import (
	"context"
	"net/http"
	"net/netip"
	"time"
)

// AllowEntry is one run-time allow-list entry (bansctl allow).
type AllowEntry struct {
	Target netip.Prefix `json:"target"`
	Reason string       `json:"reason,omitempty"`
	Since  time.Time    `json:"since"`
	// Until is when the entry ends; absent: never.
	Until time.Time `json:"until,omitzero"`
	UID   int       `json:"uid"`
}

// AllowList is the body of GET /v1/allow.
type AllowList struct {
	Entries []AllowEntry `json:"entries"`
}

// AllowRequest is the body of POST /v1/allow.
type AllowRequest struct {
	Target netip.Prefix `json:"target"`
	// Duration in Go/config syntax ("1h", "1w"); empty: no end.
	Duration string `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// AllowLift is what the new entry did to one ban that covered part of it.
type AllowLift struct {
	Target netip.Prefix `json:"target"`
	Jail   string       `json:"jail"`
	// Action is "lifted" (the ban lay inside the entry) or "split" (the
	// ban was wider: Remaining are still banned, the entry is not).
	Action    string         `json:"action"`
	Remaining []netip.Prefix `json:"remaining,omitempty"`
}

// AllowResult is the answer to POST /v1/allow.
type AllowResult struct {
	Entry AllowEntry  `json:"entry"`
	Lifts []AllowLift `json:"lifts"`
}

// AllowRemoveRequest is the body of DELETE /v1/allow.
type AllowRemoveRequest struct {
	Target netip.Prefix `json:"target"`
}

// AllowBackend is the run-time allow-list part of Backend.
type AllowBackend interface {
	AllowList(ctx context.Context) (AllowList, error)
	// Allow adds (or replaces) an entry and lifts the bans it covers.
	Allow(ctx context.Context, req AllowRequest) (AllowResult, error)
	// AllowRemove removes an entry; an HTTPError 404 when there is none.
	AllowRemove(ctx context.Context, req AllowRemoveRequest) (AllowEntry, error)
}

func (s *Server) allowRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+APIVersion+"/allow", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.backend.AllowList(r.Context())
		reply(w, res, err)
	})
	mux.HandleFunc("POST "+APIVersion+"/allow", func(w http.ResponseWriter, r *http.Request) {
		var req AllowRequest
		if !decode(w, r, &req) {
			return
		}
		if !req.Target.IsValid() {
			writeError(w, &HTTPError{Code: http.StatusBadRequest, Message: "no target"})
			return
		}
		res, err := s.backend.Allow(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("DELETE "+APIVersion+"/allow", func(w http.ResponseWriter, r *http.Request) {
		var req AllowRemoveRequest
		if !decode(w, r, &req) {
			return
		}
		if !req.Target.IsValid() {
			writeError(w, &HTTPError{Code: http.StatusBadRequest, Message: "no target"})
			return
		}
		res, err := s.backend.AllowRemove(r.Context(), req)
		reply(w, res, err)
	})
}

// AllowList returns the run-time allow-list.
func (c *Client) AllowList(ctx context.Context) (AllowList, error) {
	l := AllowList{Entries: []AllowEntry{}}
	err := c.do(ctx, http.MethodGet, APIVersion+"/allow", nil, &l)
	return l, err
}

// Allow adds an allow entry; the answer says what it did to each ban.
func (c *Client) Allow(ctx context.Context, req AllowRequest) (AllowResult, error) {
	var r AllowResult
	err := c.do(ctx, http.MethodPost, APIVersion+"/allow", req, &r)
	return r, err
}

// AllowRemove removes an allow entry and returns it.
func (c *Client) AllowRemove(ctx context.Context, req AllowRemoveRequest) (AllowEntry, error) {
	var r AllowEntry
	err := c.do(ctx, http.MethodDelete, APIVersion+"/allow", req, &r)
	return r, err
}
