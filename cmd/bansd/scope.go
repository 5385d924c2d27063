package main

import (
	"log/slog"
	"slices"
	"sync"

	"github.com/bansd/bansd/ban"
)

// scopeHook returns what onMailu calls with front's published ports: for a
// "mail"-scoped firewall it rewrites the port set when the ports change; a
// failure is logged and left to the next reconcile, which repairs the set.
func scopeHook(nft *ban.NFT, log *slog.Logger) func([]uint16) {
	if nft.MailPorts() == nil {
		return nil
	}
	var mu sync.Mutex
	var last []uint16
	known := false
	return func(ports []uint16) {
		ports = slices.Clone(ports)
		slices.Sort(ports)
		ports = slices.Compact(ports)
		mu.Lock()
		defer mu.Unlock()
		if known && slices.Equal(ports, last) {
			return
		}
		if err := nft.SetMailPorts(ports); err != nil {
			log.Error("ban scope: set mail ports", "ports", ports, "err", err)
			return
		}
		last, known = ports, true
		log.Info("bans cover only TCP to Mailu's ports", "ports", nft.MailPorts())
	}
}
