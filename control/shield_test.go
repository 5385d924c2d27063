package control

import (
	"context"
	"testing"
)

func (m *memBackend) Shield(_ context.Context, req ShieldRequest) (ShieldStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shieldOn = req.On
	st := ShieldStatus{Enabled: req.On, Risk: true}
	if req.On {
		st.Up, st.Ports = true, []uint16{25}
	} else {
		st.Off = "bansctl"
	}
	return st, nil
}

func TestShieldRoundTrip(t *testing.T) {
	m := newMem()
	c, _ := serve(t, m)
	for _, on := range []bool{false, true} {
		st, err := c.Shield(context.Background(), on)
		if err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		got := m.shieldOn
		m.mu.Unlock()
		if got != on || st.Enabled != on || st.Up != on || (st.Off == "bansctl") == on {
			t.Errorf("Shield(%v): backend saw %v, answer %+v", on, got, st)
		}
	}
}
