package notify

import (
	"net/netip"
	"testing"
	"time"

	"github.com/bansd/bansd/configs"
)

// BenchmarkNotifyBan is the cost a ban pays for its notification: the
// hand-off, and the Run goroutine's digest accounting, with one webhook
// channel that takes single bans (so the hourly limit folds them).
func BenchmarkNotifyBan(b *testing.B) {
	n, err := New(configs.Notify{Digest: time.Hour, MaxPerHour: 20,
		Webhook: map[string]configs.Webhook{"h": hook("http://192.0.2.1/", "json", "ban", "digest")}}, openSpool(b), Options{Queue: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		n.Notify(Event{Kind: KindBan, Target: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 32), Jail: "auth", Duration: time.Hour})
	}
	// Drain what was handed off, as Run would.
	n.in.drain(n.handle)
}
