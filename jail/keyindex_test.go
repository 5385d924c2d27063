package jail

import (
	"math/rand/v2"
	"testing"
)

// The index agrees with a Go map through random inserts and deletes,
// across growth and backward shifts (keys drawn from a small space so
// probe chains collide and wrap).
func TestKeyIndexAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr := newTracker(1 << 30)
	model := map[wkey]bool{}
	for step := range 200000 {
		k := wkey{hi: uint64(rng.IntN(64)), lo: uint64(rng.IntN(64)), jail: uint16(rng.IntN(3)), bits: 128, v6: true}
		switch rng.IntN(3) {
		case 0, 1:
			w := tr.get(k)
			if w.key != k {
				t.Fatalf("step %d: got window %v for %v", step, w.key, k)
			}
			model[k] = true
		case 2:
			tr.removeKey(k)
			delete(model, k)
		}
		if tr.len() != len(model) {
			t.Fatalf("step %d: len %d, model %d", step, tr.len(), len(model))
		}
	}
	for k := range model {
		if tr.lookup(k) == nil {
			t.Fatalf("lost %v", k)
		}
	}
	n := 0
	tr.each(func(_ int32, w *window) {
		n++
		if !model[w.key] {
			t.Fatalf("listed %v not in model", w.key)
		}
	})
	if n != len(model) {
		t.Fatalf("list has %d, model %d", n, len(model))
	}
}
