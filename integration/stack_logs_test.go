package integration

import (
	"fmt"
	"regexp"
	"sync"
	"testing"

	"github.com/bansd/bansd/integration/mailclient"
	"github.com/bansd/bansd/internal/dockertest"
)

// TestStackLogs checks that the test bed is worth testing against: real
// nginx and Dovecot, configured as Mailu 2024.06 and 2.0 configure front,
// print the lines the parser's tests in jail/parse use, and admin prints Mailu's.
func TestStackLogs(t *testing.T) {
	for _, tc := range []struct {
		version string
		front   []string
		admin   []string
		noAdmin []string
	}{
		{
			version: "2024.06",
			front: []string{
				`(?m)^\S+ \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] \d+#\d+: \*\d+ client 198\.51\.100\.2:\d+ connected to 0\.0\.0\.0:25$`,
				`(?m)^\S+ \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] \d+#\d+: \*\d+ client login failed: "AUTH not supported" while in http auth state, client: 198\.51\.100\.2 using starttls, server: 0\.0\.0\.0:25, login: "bot@example\.com"$`,
				`(?m)^\S+ [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d imap-login: Info: Disconnected: .*\(auth failed, 1 attempts in \d+ secs\): user=<alice@example\.com>, method=PLAIN, rip=198\.51\.100\.2, rport=\d+, lip=192\.168\.203\.\d+, lport=143, TLS`,
				`(?m)^\S+ [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d submission-login: Info: Disconnected: .*\(auth failed, 1 attempts in \d+ secs\): user=<nosuch\d@example\.com>, method=PLAIN, rip=198\.51\.100\.2, rport=\d+, lip=192\.168\.203\.\d+, lport=465, TLS`,
				`(?m)^\S+ [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d imap-login: Info: proxy\(alice@example\.com,192\.168\.203\.\d+:143\): Started proxying to <192\.168\.203\.\d+> .*rip=203\.0\.113\.2, rport=\d+, lip=192\.168\.203\.\d+, lport=993, TLS`,
			},
			admin: []string{
				`(?m)^\S+ \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] INFO in nginx: Login attempt for: alice@example\.com/imap/143 from: 198\.51\.100\.2/\d+: failed: badauth: [0-9a-f]{6}$`,
				`(?m)^\S+ \[[^]]+\] INFO in nginx: Login attempt for: alice@example\.com/imap/993 from: 203\.0\.113\.2/\d+: success: password$`,
				`(?m)^\S+ \[[^]]+\] INFO in nginx: Login attempt for: 'nosuch\d@example\.com'/submission/465 from: 198\.51\.100\.2/\d+: failed: account disabled$`,
				`(?m)^\S+ \[[^]]+\] WARNING in limiter: Authentication attempt from 198\.51\.100\.2 has been rate-limited\.$`,
			},
		},
		{
			version: "2.0",
			front: []string{
				`(?m)^\S+ \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] \d+#\d+: \*\d+ client login failed: "AUTH not supported" while in http auth state, client: 198\.51\.100\.2 using starttls, server: 0\.0\.0\.0:25, login: "bot@example\.com"$`,
				`(?m)^\S+ \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] \d+#\d+: \*\d+ client login failed: "Authentication credentials invalid" while in http auth state, client: 198\.51\.100\.2 using starttls, server: 0\.0\.0\.0:143, login: "alice@example\.com"$`,
				`(?m)^\S+ \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[info\] \d+#\d+: \*\d+ client login failed: "Temporary authentication failure \(rate-limit\)" while in http auth state, client: 198\.51\.100\.2, server: 0\.0\.0\.0:465, login: "nosuch6@example\.com"$`,
			},
			admin: []string{
				`(?m)^\S+ \[[^]]+\] WARNING in limiter: Authentication attempt from 198\.51\.100\.2 has been rate-limited\.$`,
			},
			noAdmin: []string{`Login attempt for:`},
		},
	} {
		t.Run(tc.version, func(t *testing.T) {
			e := dockertest.Start(t, dockertest.Options{})
			t.Log("engine up")
			s := startStack(t, e, tc.version)
			t.Log("stack up")
			legit := newLegit(t, e)
			attacker := newAttacker(t, e, 0)
			waitReady(t, legit)
			t.Log("ready")
			src := attacker.addrs[0]
			if r := attacker.login(src, mailclient.SMTP, "bot@example.com", "x"); r.Outcome != mailclient.Failure {
				t.Fatalf("port 25 AUTH: %+v", r)
			}
			if r := attacker.login(src, mailclient.IMAP, legitUser, "wrong"); r.Outcome != mailclient.Failure {
				t.Fatalf("IMAP with a wrong password: %+v", r)
			}
			// Five unknown users from one /24 reach Mailu's 5/hour; the
			// sixth attempt is refused by the limiter.
			var wg sync.WaitGroup
			for i := 1; i <= 5; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if r := attacker.login(src, mailclient.SMTPS, fmt.Sprintf("nosuch%d@example.com", i), "x"); r.Outcome != mailclient.Failure {
						t.Errorf("unknown user %d: %+v", i, r)
					}
				}()
			}
			wg.Wait()
			if r := attacker.login(src, mailclient.SMTPS, "nosuch6@example.com", "x"); r.Outcome != mailclient.Failure {
				t.Fatalf("rate-limited attempt: %+v", r)
			}
			t.Log("attacks done")
			front, admin := s.logs(t, "front"), s.logs(t, "admin")
			for _, re := range tc.front {
				if !regexp.MustCompile(re).MatchString(front) {
					t.Errorf("front log lacks %s\nfront log:\n%s", re, front)
				}
			}
			for _, re := range tc.admin {
				if !regexp.MustCompile(re).MatchString(admin) {
					t.Errorf("admin log lacks %s\nadmin log:\n%s", re, admin)
				}
			}
			for _, re := range tc.noAdmin {
				if regexp.MustCompile(re).MatchString(admin) {
					t.Errorf("admin log of %s has %s:\n%s", tc.version, re, admin)
				}
			}
		})
	}
}
