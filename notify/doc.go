// Package notify tells a person what bansd did: alarms at once, bans as a
// digest, by email (SMTP) and webhooks.
//
// The caller hands events to Notifier.Notify, which never blocks: events go
// through a bounded in-memory queue to the Run goroutine, which turns them
// into messages, writes each message for each channel to the Spool (the
// store's outbox, the truth) and wakes that channel's sender. A sender
// retries with backoff until the message is delivered or older than
// max_spool_age; spooled messages survive restarts.
//
// Bans are folded into a digest sent at most once per digest interval
// (count, top jails and networks, new repeat offenders). Every channel gets
// at most max_per_hour messages an hour: single ban/unban messages at most
// half of them, alarms all but the last; the rest are folded into one
// summary, sent with the digest, that says how many it folded. A digest
// that finds no slot left waits and keeps counting.
//
// # Webhook JSON
//
// The "json" preset POSTs one Message per request with Content-Type
// application/json:
//
//	{
//	  "kind":   "alarm",              // ban, unban, alarm, alarm-cleared, digest, daemon, folded, test
//	  "time":   "2026-12-01T21:00:00Z",
//	  "host":   "mx.example.com",     // the host bansd runs on
//	  "title":  "bansd alarm on mx.example.com: gateway-client 172.17.0.1",
//	  "text":   "...",                // the same words as the email body
//	  "event":  {                     // ban, unban, alarm, alarm-cleared, daemon, test
//	    "kind": "ban", "time": "...", "target": "203.0.113.7/32", "jail": "auth",
//	    "duration": "1h0m0s", "duration_seconds": 3600, "level": 1,
//	    "reason": "...", "text": "..."
//	  },
//	  "digest": {                     // digest only
//	    "since": "...", "until": "...", "bans": 10000, "targets": 9000,
//	    "jails": [{"name": "auth", "count": 9000}],         // top 5
//	    "networks": [{"name": "203.0.113.0/24", "count": 250}], // top 5: /24 and /64
//	    "repeat_offenders": ["198.51.100.4/32"],            // up to 10, level > 0
//	    "more_repeat_offenders": 0,
//	    "lost": 0                     // events dropped at a full hand-off queue
//	  },
//	  "folded": {"count": 40, "kinds": {"alarm": 40}, "titles": ["..."]} // folded only
//	}
//
// A token is sent as "Authorization: Bearer TOKEN".
//
// Presets: "ntfy" POSTs the text with Title, Priority and Tags headers to
// the topic URL; "gotify" POSTs {"title","message","priority"} to
// URL/message?token=TOKEN; "slack" POSTs {"text": "*title*\ntext"}
// (Slack-compatible incoming webhooks); "matrix" POSTs {"text", "body",
// "html", "key"} (hookshot's generic webhooks read text/html,
// matrix-webhook reads body/key); "template" POSTs the output of the
// channel's text/template run on the Message (Content-Type text/plain
// unless a header says otherwise).
package notify
