package main

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// limiter mirrors Mailu's core/admin/mailu/limiter.py: moving windows per
// network (/24, /48) and per user, dedup keys, and the exemption a
// successful login earns. Redis is replaced by maps guarded by one mutex.
type limiter struct {
	mu          sync.Mutex
	hits        map[string][]time.Time // moving-window hits per key
	dedup       map[string]time.Time   // key -> expiry
	exemptUntil map[string]time.Time   // ip -> expiry
}

func newLimiter() *limiter {
	return &limiter{hits: map[string][]time.Time{}, dedup: map[string]time.Time{}, exemptUntil: map[string]time.Time{}}
}

// network is Mailu's _IP_V4_MASK=24 / _IP_V6_MASK=48 key.
func network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p.Addr().String()
}

func (l *limiter) subject(cfg config, now time.Time, ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err == nil {
		for _, p := range cfg.exemptions {
			if p.Contains(a.Unmap()) {
				return false
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.exemptUntil[ip].After(now)
}

// test reports whether one more hit would still be within the limit.
func (l *limiter) test(key string, r rate, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live(key, r, now)) < r.n
}

func (l *limiter) hit(key string, r rate, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hits[key] = append(l.live(key, r, now), now)
	l.sweep(now, r)
}

// live drops the hits that left the window; l.mu held.
func (l *limiter) live(key string, r rate, now time.Time) []time.Time {
	hs := l.hits[key]
	i := 0
	for i < len(hs) && now.Sub(hs[i]) >= r.window {
		i++
	}
	hs = hs[i:]
	l.hits[key] = hs
	return hs
}

// sweep bounds memory when many keys pile up; l.mu held.
func (l *limiter) sweep(now time.Time, r rate) {
	if len(l.hits)+len(l.dedup)+len(l.exemptUntil) < 10000 {
		return
	}
	for k, hs := range l.hits {
		if len(hs) == 0 || now.Sub(hs[len(hs)-1]) > 24*time.Hour {
			delete(l.hits, k)
		}
	}
	for k, t := range l.dedup {
		if !t.After(now) {
			delete(l.dedup, k)
		}
	}
	for k, t := range l.exemptUntil {
		if !t.After(now) {
			delete(l.exemptUntil, k)
		}
	}
}

// seen sets a dedup key and reports whether it was already live.
func (l *limiter) seen(key string, ttl time.Duration, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dedup[key].After(now) {
		return true
	}
	l.dedup[key] = now.Add(ttl)
	return false
}

func (l *limiter) shouldRateLimitIP(cfg config, now time.Time, ip string, log *flaskLog) bool {
	if !l.subject(cfg, now, ip) {
		return false
	}
	limited := !l.test("auth-ip/"+network(ip), cfg.ipLimit, now)
	if limited {
		log.log(now, "WARNING", "limiter", fmt.Sprintf("Authentication attempt from %s has been rate-limited.", ip))
	}
	return limited
}

// rateLimitIP counts one attempt against the network; with a user, the
// same (network, user) counts once per window.
func (l *limiter) rateLimitIP(cfg config, now time.Time, ip, user string) {
	if !l.subject(cfg, now, ip) {
		return
	}
	if user != "" && l.seen("dedup-"+network(ip)+"-"+user, cfg.ipLimit.window, now) {
		return
	}
	l.hit("auth-ip/"+network(ip), cfg.ipLimit, now)
}

func (l *limiter) shouldRateLimitUser(cfg config, now time.Time, user, ip string, log *flaskLog, version string) bool {
	limited := !l.test("auth-user/"+user, cfg.userLimit, now)
	if limited {
		msg := fmt.Sprintf("Authentication attempt from %s for %s has been rate-limited.", ip, user)
		if version == "2.0" {
			msg = fmt.Sprintf("Authentication attempt from %s has been rate-limited.", ip)
		}
		log.log(now, "WARNING", "limiter", msg)
	}
	return limited
}

// rateLimitUser counts a distinct password for an existing user once, and
// the user once against the client's network.
func (l *limiter) rateLimitUser(cfg config, now time.Time, user, ip, pwKey string) {
	if !l.seen("dedup2-"+user+"-"+pwKey, cfg.userLimit.window, now) {
		l.hit("auth-user/"+user, cfg.userLimit, now)
	}
	l.rateLimitIP(cfg, now, ip, user)
}

func (l *limiter) exempt(cfg config, now time.Time, ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.exemptUntil[ip] = now.Add(cfg.exemptLength)
}
