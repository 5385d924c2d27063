// Command mailclient drives logins against a mail front from inside a
// network namespace (`ip netns exec NS mailclient ...`) for bansd's
// end-to-end tests and demo. Each result is one JSON line on stdout.
//
//	mailclient login -addr 198.51.100.1:25 -proto smtp -user u -pass 'guess%d' -n 5
//	mailclient probe -addr 198.51.100.1:25 -timeout 1s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/bansd/bansd/integration/mailclient"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mailclient login|probe [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "", "front's host:port")
	proto := fs.String("proto", "smtp", "smtp, submission, smtps, imap, imaps, pop3, pop3s, sieve")
	user := fs.String("user", "", "username")
	pass := fs.String("pass", "", "password; %d is replaced by the attempt number")
	n := fs.Int("n", 1, "attempts")
	source := fs.String("source", "", "local address to bind")
	timeout := fs.Duration("timeout", 10*time.Second, "per session (login) or connect (probe)")
	_ = fs.Parse(os.Args[2:])
	var src netip.Addr
	if *source != "" {
		var err error
		if src, err = netip.ParseAddr(*source); err != nil {
			fmt.Fprintln(os.Stderr, "mailclient: -source:", err)
			os.Exit(2)
		}
	}
	ctx := context.Background()
	enc := json.NewEncoder(os.Stdout)
	login := func(i int) mailclient.Result {
		return mailclient.Login(ctx, mailclient.Options{
			Addr: *addr, Proto: mailclient.Proto(*proto), User: *user,
			Pass: strings.ReplaceAll(*pass, "%d", fmt.Sprint(i)), Source: src, Timeout: *timeout,
		})
	}
	switch os.Args[1] {
	case "login":
		for i := 1; i <= *n; i++ {
			_ = enc.Encode(login(i))
		}
	case "probe":
		_ = enc.Encode(mailclient.Probe(ctx, *addr, src, *timeout, nil))
	default:
		fmt.Fprintln(os.Stderr, "mailclient: unknown command", os.Args[1])
		os.Exit(2)
	}
}
