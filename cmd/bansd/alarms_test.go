package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/jail"
)

func TestAlarmBook(t *testing.T) {
	var log bytes.Buffer
	b := newAlarmBook(slog.New(slog.NewTextHandler(&log, nil)))
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	gw := netip.MustParseAddr("192.168.203.1")
	for i := range 10 {
		at := t0.Add(time.Duration(i) * time.Second)
		b.add(jail.Alarm{Kind: "gateway-client", Addr: gw, Time: at, Count: 2, Hint: "proxy?", Line: fmt.Sprintf("line %d", i)}, at)
	}
	if n := strings.Count(log.String(), "alarm: gateway-client"); n != 1 {
		t.Errorf("logged %d times within a minute, want 1:\n%s", n, log.String())
	}
	later := t0.Add(2 * time.Minute)
	b.add(jail.Alarm{Kind: "gateway-client", Addr: gw, Time: later, Count: 1}, later)
	if n := strings.Count(log.String(), "alarm: gateway-client"); n != 2 || !strings.Contains(log.String(), "suppressed=18") {
		t.Errorf("after a minute: %d log lines, want 2 with suppressed=18:\n%s", n, log.String())
	}
	l := b.list()
	if len(l) != 1 || l[0].Count != 21 || l[0].First != t0 || l[0].Last != later || !strings.HasPrefix(l[0].Fix, "proxy? ") || !strings.Contains(l[0].Fix, "userland-proxy") {
		t.Errorf("alarm = %+v", l)
	}

	// Crafted lines with ever new addresses cannot grow the book.
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{192, 168, 203, byte(i)})
		at := later.Add(time.Duration(i) * time.Millisecond)
		b.add(jail.Alarm{Kind: "other", Addr: a, Time: at}, at)
	}
	l = b.list()
	if len(l) != maxAlarms {
		t.Fatalf("book holds %d alarms, want %d", len(l), maxAlarms)
	}
	if l[0].Addr != "192.168.203.231" || l[0].Count != 1 || !strings.Contains(l[0].Fix, "doctor") {
		t.Errorf("most recent first: %+v", l[0])
	}
}
