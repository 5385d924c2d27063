package control

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func (m *memBackend) AllowList(context.Context) (AllowList, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := AllowList{Entries: []AllowEntry{}}
	if m.allow != nil {
		l.Entries = append(l.Entries, *m.allow)
	}
	return l, nil
}

func (m *memBackend) Allow(_ context.Context, req AllowRequest) (AllowResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := AllowEntry{Target: req.Target, Reason: req.Reason}
	m.allow = &e
	return AllowResult{Entry: e, Lifts: []AllowLift{{Target: netip.MustParsePrefix("203.0.113.0/24"), Jail: "auth", Action: "split", Remaining: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25")}}}}, nil
}

func (m *memBackend) AllowRemove(_ context.Context, req AllowRemoveRequest) (AllowEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.allow == nil || m.allow.Target != req.Target {
		return AllowEntry{}, &HTTPError{Code: http.StatusNotFound, Message: "no allow-list entry for " + req.Target.String()}
	}
	e := *m.allow
	m.allow = nil
	return e, nil
}

// TestAllowRoundTrip: the allow endpoints carry the entry and the lifts
// both ways, refuse a request without a target, and pass a 404 on.
func TestAllowRoundTrip(t *testing.T) {
	c, _ := serve(t, newMem())
	ctx := context.Background()
	target := netip.MustParsePrefix("203.0.113.128/25")
	res, err := c.Allow(ctx, AllowRequest{Target: target, Reason: "office"})
	if err != nil || res.Entry.Target != target || len(res.Lifts) != 1 || res.Lifts[0].Action != "split" || len(res.Lifts[0].Remaining) != 1 {
		t.Fatalf("Allow = %+v, %v", res, err)
	}
	l, err := c.AllowList(ctx)
	if err != nil || len(l.Entries) != 1 || l.Entries[0].Reason != "office" {
		t.Fatalf("AllowList = %+v, %v", l, err)
	}
	if _, err := c.Allow(ctx, AllowRequest{}); err == nil || !strings.Contains(err.Error(), "no target") {
		t.Errorf("Allow without a target: %v, want 'no target'", err)
	}
	if e, err := c.AllowRemove(ctx, AllowRemoveRequest{Target: target}); err != nil || e.Target != target {
		t.Fatalf("AllowRemove = %+v, %v", e, err)
	}
	var ae *APIError
	if _, err := c.AllowRemove(ctx, AllowRemoveRequest{Target: target}); !errors.As(err, &ae) || ae.Code != http.StatusNotFound {
		t.Errorf("AllowRemove of a missing entry: %v, want a 404", err)
	}
}
