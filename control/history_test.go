package control

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var histT0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// History echoes the query it got in the first event, so the test sees
// what crossed the wire.
func (m *memBackend) History(_ context.Context, q HistoryQuery) ([]HistoryEvent, error) {
	return []HistoryEvent{
		{Seq: 1, Time: histT0, Kind: "start", UID: -1},
		{Seq: 2, Time: histT0.Add(time.Second), Kind: "ban", Target: q.Target, Jail: q.Jail, Duration: Duration(time.Hour), Level: 2, UID: -1,
			Reason: strings.Join(q.Kinds, "+"), Detail: q.Since.Format(time.RFC3339) + " " + itoa(q.Limit)},
	}, nil
}

func TestHistoryOverTheSocket(t *testing.T) {
	c, _ := serve(t, newMem())
	q := HistoryQuery{Target: netip.MustParsePrefix("192.0.2.0/24"), Since: histT0.Add(-time.Hour), Jail: "smtp", Kinds: []string{"ban", "unban"}, Limit: 5}
	evs, err := c.History(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	want := []HistoryEvent{
		{Seq: 1, Time: histT0, Kind: "start", UID: -1},
		{Seq: 2, Time: histT0.Add(time.Second), Kind: "ban", Target: q.Target, Jail: "smtp", Duration: Duration(time.Hour), Level: 2, UID: -1,
			Reason: "ban+unban", Detail: "2026-03-04T04:06:07Z 5"},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("got %+v\nwant %+v", evs, want)
	}
	var raw bytes.Buffer
	if err := c.HistoryRaw(t.Context(), HistoryQuery{}, &raw); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(raw.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("raw answer is %d lines, want one object per line:\n%s", len(lines), raw.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatal(err)
	}
	if m["duration"] != "1h0m0s" || m["kind"] != "ban" || m["uid"] != -1.0 || !strings.Contains(lines[1], `"detail":"0001-01-01T00:00:00Z 1000000"`) {
		t.Errorf("raw line %s", lines[1])
	}
	if strings.Contains(lines[0], "target") {
		t.Errorf("an event without target sends one: %s", lines[0])
	}
}

func TestHistoryBadQuery(t *testing.T) {
	c, _ := serve(t, newMem())
	for _, path := range []string{"target=nope", "since=yesterday", "limit=-1"} {
		var out []HistoryEvent
		err := c.do(t.Context(), "GET", APIVersion+"/history?"+path, nil, historyDecoder(&out))
		if err == nil || !strings.Contains(err.Error(), "bad") {
			t.Errorf("%s: err %v, want a clear refusal", path, err)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
