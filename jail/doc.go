// Package jail decides when to ban. It takes log lines (sources.Line),
// lets jail/parse turn each into an Event, counts the events per address
// and per network prefix in sliding windows of log time (window.go,
// window_index.go), applies Mailu's semantics (a retried credential counts
// once, a successful login exempts, admin or front but not both) and the
// never-ban rules (protect.go), and returns Decisions and Alarms from
// Engine.Process. It links neither the store nor the Docker client.
package jail
