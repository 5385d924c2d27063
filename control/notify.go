package control

import (
	"context"
	"net/http"
	"time"
)

// NotifyStatus is the notifier: one entry per configured channel.
type NotifyStatus struct {
	Channels []NotifyChannel `json:"channels"`
	// Lost counts events dropped at the notifier's full hand-off queue.
	Lost        uint64 `json:"lost"`
	SpoolErrors uint64 `json:"spool_errors"`
}

// NotifyChannel is one email or webhook channel. Target names the server
// without secrets (no password, token or URL path).
type NotifyChannel struct {
	Name          string    `json:"name"`
	Kind          string    `json:"kind"` // email or webhook
	Target        string    `json:"target"`
	Events        []string  `json:"events"`
	Sent          uint64    `json:"sent"`
	Failures      uint64    `json:"failures"`
	Pending       int       `json:"pending"`
	Dropped       uint64    `json:"dropped"`
	Folded        uint64    `json:"folded"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastAnswer    string    `json:"last_answer,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// NotifyTestRequest is the body of POST /v1/notify/test; an empty Channel
// tests every channel.
type NotifyTestRequest struct {
	Channel string `json:"channel,omitempty"`
}

// NotifyTestResult is what one channel's server answered a test message.
type NotifyTestResult struct {
	Channel string `json:"channel"`
	OK      bool   `json:"ok"`
	Answer  string `json:"answer,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (s *Server) notifyTest(w http.ResponseWriter, r *http.Request) {
	var req NotifyTestRequest
	if !decode(w, r, &req) {
		return
	}
	res, err := s.backend.NotifyTest(r.Context(), req.Channel)
	reply(w, res, err)
}

// NotifyTest sends a test message through the daemon's channel (every
// channel when channel is "") and returns what each server answered.
func (c *Client) NotifyTest(ctx context.Context, channel string) ([]NotifyTestResult, error) {
	var res []NotifyTestResult
	err := c.do(ctx, http.MethodPost, APIVersion+"/notify/test", NotifyTestRequest{Channel: channel}, &res)
	return res, err
}
