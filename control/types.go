// Package control is bansd's control API: HTTP+JSON over a unix socket. It
// holds the wire types, the server (routing, peer-credential check) and the
// client bansctl uses. The daemon supplies the behaviour through Backend.
package control

import (
	"context"
	"net/netip"
	"time"

	"github.com/bansd/bansd/stats"
)

// APIVersion is the path prefix of every endpoint.
const APIVersion = "/v1"

// DefaultSocket is where bansd listens when the config does not say.
const DefaultSocket = "/run/bansd/bansd.sock"

// Ban is one active ban as the API shows it. The JSON shape is a contract
// with scripts: {"target","jail","reason","since","until","level","manual"}, and "origin"
// since bansd learnt to share bans.
type Ban struct {
	Target netip.Prefix `json:"target"`
	Jail   string       `json:"jail"`
	Reason string       `json:"reason"`
	Since  time.Time    `json:"since"`
	// Until is when the ban ends; zero (and absent) for a permanent one.
	Until  time.Time `json:"until,omitzero"`
	Level  int       `json:"level"`
	Manual bool      `json:"manual"`
	// Permanent: no end; the kernel element has no timeout.
	Permanent bool `json:"permanent,omitempty"`
	// Origin is where the ban came from: "local" or crowdsec:<origin>/<scenario>.
	Origin   string   `json:"origin,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
}

// BanList is the body of GET /v1/bans.
type BanList struct {
	Bans []Ban `json:"bans"`
}

// BanRequest is the body of POST /v1/bans.
type BanRequest struct {
	Targets []netip.Prefix `json:"targets"`
	// Duration in Go/config syntax ("1h", "1w"), or "permanent" (no
	// end); empty: the daemon's [ban] manual_bantime.
	Duration string `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Force bans targets that an allow-list entry protects (ignoreip,
	// AUTH_RATELIMIT_EXEMPTION); the hard protections hold regardless.
	Force bool `json:"force,omitempty"`
	// Yes confirms targets wider than /16 (IPv4) or /32 (IPv6).
	Yes bool `json:"yes,omitempty"`
	// Jail files the bans under this name instead of "manual" (an
	// import's: "fail2ban"); letters, digits, '-' and '_'.
	Jail string `json:"jail,omitempty"`
	// SkipProtected (a list file's import): targets a never-ban rule
	// protects, or that can never be banned (too wide, loopback), are
	// skipped and listed in the answer instead of refusing the request.
	// It cannot be combined with Force.
	SkipProtected bool `json:"skip_protected,omitempty"`
}

// BanResult is the answer to POST /v1/bans.
type BanResult struct {
	Banned int `json:"banned"`
	// Skipped are the targets SkipProtected left out, and why.
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Skipped is a target a ban request left out.
type Skipped struct {
	Target netip.Prefix `json:"target"`
	Why    string       `json:"why"`
}

// UnbanRequest is the body of DELETE /v1/bans: exactly one of Targets,
// Jail or All.
type UnbanRequest struct {
	Targets []netip.Prefix `json:"targets,omitempty"`
	Jail    string         `json:"jail,omitempty"`
	All     bool           `json:"all,omitempty"`
	// Covering also lifts the bans of wider networks that hold a target.
	Covering bool `json:"covering,omitempty"`
}

// UnbanResult is the answer to DELETE /v1/bans.
type UnbanResult struct {
	Unbanned int `json:"unbanned"`
	// Covering are the bans of wider networks that hold one of the
	// targets: lifted (and counted in Unbanned) when the request asked
	// for Covering, else still in force, so the targets are still dropped.
	Covering []Ban `json:"covering,omitempty"`
	// CoveringLifted says which of the two.
	CoveringLifted bool `json:"covering_lifted,omitempty"`
}

// Status is the answer to GET /v1/status.
type Status struct {
	Version string         `json:"version"`
	PID     int            `json:"pid"`
	Started time.Time      `json:"started"`
	Config  ConfigStatus   `json:"config"`
	Docker  DockerStatus   `json:"docker"`
	Sources []SourceStatus `json:"sources"`
	Jails   []JailStatus   `json:"jails"`
	// PermanentBans counts the live bans without an end (--for permanent).
	PermanentBans int            `json:"permanent_bans"`
	Firewall      FirewallStatus `json:"firewall"`
	// Attribution says on whose word a log line counts.
	Attribution AttributionStatus `json:"attribution"`
	Alarms      []AlarmStatus     `json:"alarms"`
	// CrowdSec is the LAPI link; nil when it is off.
	CrowdSec *CrowdSecStatus `json:"crowdsec,omitempty"`
	// Notify is the notifier; nil when no channel is configured.
	Notify *NotifyStatus `json:"notify,omitempty"`
	// Shield is the relay shield (package shield).
	Shield ShieldStatus `json:"shield"`
	// Blocklists are the configured [blocklists.NAME], by name.
	Blocklists []BlocklistStatus `json:"blocklists,omitempty"`
}

// ShieldStatus is the relay shield: IPv6 connections to Mailu's published
// ports refused while Docker's userland proxy would relay them.
type ShieldStatus struct {
	// Enabled: firewall.relay_shield and no "bansctl shield off" since.
	Enabled bool `json:"enabled"`
	// Up: the kernel's set holds ports now.
	Up    bool     `json:"up"`
	Ports []uint16 `json:"ports,omitempty"`
	// Risk says whether the open-relay facts hold, Why which ones do or
	// which one removes the risk; Fix what the operator should change.
	Risk bool   `json:"risk"`
	Why  string `json:"why,omitempty"`
	Fix  string `json:"fix,omitempty"`
	// Off says who turned the shield off: "config" or "bansctl".
	Off string `json:"off,omitempty"`
	// Refused counts the IPv6 SYNs answered with a reset (kernel counter).
	Refused uint64 `json:"refused"`
	Problem string `json:"problem,omitempty"`
}

// ShieldRequest is the body of POST /v1/shield.
type ShieldRequest struct {
	// On: true turns the shield back on (it rises if the risk holds);
	// false lowers it until "on", a reload or a restart.
	On bool `json:"on"`
}

// CrowdSecStatus is the link to CrowdSec's Local API.
type CrowdSecStatus struct {
	URL           string    `json:"url"`
	Push          bool      `json:"push"`
	Pull          bool      `json:"pull"`
	LastPush      time.Time `json:"last_push"`
	LastPull      time.Time `json:"last_pull"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at"`
	PendingPushes int       `json:"pending_pushes"`
	PendingUnbans int       `json:"pending_unbans"`
	// Shared counts pushed bans still live (kept to recognise them).
	Shared       int    `json:"shared"`
	Pushed       uint64 `json:"pushed"`
	Pulls        uint64 `json:"pulls"`
	PullErrors   uint64 `json:"pull_errors"`
	Applied      uint64 `json:"applied"`
	Lifted       uint64 `json:"lifted"`
	Refused      uint64 `json:"refused"`
	Rejected     uint64 `json:"rejected"`
	QueueDropped uint64 `json:"queue_dropped"`
}

// AttributionStatus: in "kernel" mode a line counts only for a connection
// the kernel saw complete its handshake; in "text" mode the log's own text
// rules judge it (Why says why).
type AttributionStatus struct {
	Mode    string   `json:"mode"`
	Why     string   `json:"why,omitempty"`
	Ports   []uint16 `json:"ports,omitempty"`
	Problem string   `json:"problem,omitempty"`
	// Witnessed counts events the kernel corroborated; Uncorroborated the
	// lines it did not, by reason (unseen, alias, spent, unopened,
	// witness-error).
	Witnessed      uint64            `json:"witnessed"`
	Uncorroborated map[string]uint64 `json:"uncorroborated,omitempty"`
	// WarmupWitnessed and WarmupUncorroborated are the same for the lines
	// read again at start (the warm-up), kept apart from the live ones.
	WarmupWitnessed      uint64            `json:"warmup_witnessed,omitempty"`
	WarmupUncorroborated map[string]uint64 `json:"warmup_uncorroborated,omitempty"`
}

// ConfigStatus says which config runs and how the last reload went.
type ConfigStatus struct {
	File     string    `json:"file"` // "" for the embedded default
	LoadedAt time.Time `json:"loaded_at"`
	// LastReload is nil until the first SIGHUP or POST /v1/reload.
	LastReload *ReloadResult `json:"last_reload,omitempty"`
}

// ReloadResult is the outcome of one reload, also the answer to POST /v1/reload.
type ReloadResult struct {
	Time  time.Time `json:"time"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// DockerStatus is the Docker source as a whole.
type DockerStatus struct {
	State   string `json:"state"` // e.g. "connected", "waiting"
	Project string `json:"project,omitempty"`
	Error   string `json:"error,omitempty"`
}

// SourceStatus is one followed Mailu service.
type SourceStatus struct {
	Service    string    `json:"service"`
	Container  string    `json:"container,omitempty"`
	State      string    `json:"state"`
	Lines      uint64    `json:"lines"`
	LagSeconds float64   `json:"lag_seconds"`
	Reconnects uint64    `json:"reconnects"`
	LastError  string    `json:"last_error,omitempty"`
	LastLine   time.Time `json:"last_line,omitzero"`
	// Warmup is the start-up warm-up of the service's windows; nil when
	// there was none (no cursor stored, or docker.warmup_max_span = "0s").
	Warmup *WarmupStatus `json:"warmup,omitempty"`
}

// WarmupStatus is how one service's log was read again at start to rebuild
// the windows: the lines from From to Until (its cursor).
type WarmupStatus struct {
	// State is "running", "complete" or "partial" (then Why says what is
	// missing: lines rotated away, the line cap, a kernel record that
	// started empty).
	State string `json:"state"`
	Lines int    `json:"lines"`
	// Skipped lines beyond docker.warmup_max_lines.
	Skipped int       `json:"skipped,omitempty"`
	From    time.Time `json:"from"`
	Until   time.Time `json:"until"`
	// Seconds is how long it took, to the first live line.
	Seconds float64 `json:"seconds"`
	Why     string  `json:"why,omitempty"`
}

// JailStatus is one jail's counters.
type JailStatus struct {
	Name       string `json:"name"`
	Enabled    bool   `json:"enabled"`
	Events     uint64 `json:"events"`
	Decisions  uint64 `json:"decisions"`
	ActiveBans int    `json:"active_bans"`
}

// FirewallStatus is what the kernel holds.
type FirewallStatus struct {
	Table          string `json:"table"`
	Present        bool   `json:"present"`
	Hook           string `json:"hook,omitempty"`
	Priority       int    `json:"priority"`
	Elements       int    `json:"elements"`
	DroppedPackets uint64 `json:"dropped_packets"`
	DroppedBytes   uint64 `json:"dropped_bytes"`
	Error          string `json:"error,omitempty"`
}

// AlarmStatus is one alarm kind and address, with how often it fired.
type AlarmStatus struct {
	Kind  string    `json:"kind"`
	Addr  string    `json:"addr"`
	Count int       `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Fix says what the operator should change.
	Fix  string `json:"fix"`
	Line string `json:"line,omitempty"`
}

// Why is the answer to GET /v1/why?addr=A.
type Why struct {
	Addr netip.Addr `json:"addr"`
	// Protected names the never-ban rule covering Addr, "" when none does.
	Protected string `json:"protected,omitempty"`
	// Bans are the active bans whose target contains Addr, with evidence.
	Bans     []Ban          `json:"bans"`
	Windows  []WindowStatus `json:"windows"`
	Offences int            `json:"offences"`
	LastBan  time.Time      `json:"last_ban,omitzero"`
}

// WindowStatus is one jail's sliding-window count for a target.
type WindowStatus struct {
	Jail     string       `json:"jail"`
	Target   netip.Prefix `json:"target"`
	Count    int          `json:"count"`
	MaxRetry int          `json:"maxretry"`
	FindTime string       `json:"findtime"`
	// Addresses is the number of distinct addresses (network jails).
	Addresses int `json:"addresses,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
	// Details lists per-target problems (e.g. protected targets).
	Details []string `json:"details,omitempty"`
}

// Backend is what the daemon provides to the API. Methods return an
// *HTTPError for client mistakes; any other error is a 500.
type Backend interface {
	// Bans returns the active bans, of one jail when jail != "".
	Bans(jail string) []Ban
	Ban(ctx context.Context, req BanRequest) (BanResult, error)
	Unban(ctx context.Context, req UnbanRequest) (UnbanResult, error)
	Status(ctx context.Context) Status
	Why(ctx context.Context, addr netip.Addr) (Why, error)
	Reload(ctx context.Context) ReloadResult
	// History returns the audit events q selects, oldest first.
	History(ctx context.Context, q HistoryQuery) ([]HistoryEvent, error)
	// Stats sums the history up over q's period.
	Stats(ctx context.Context, q StatsQuery) (stats.Summary, error)
	// NotifyTest sends a test message on a channel ("" every channel).
	NotifyTest(ctx context.Context, channel string) ([]NotifyTestResult, error)
	// Shield turns the relay shield on or off at run time.
	Shield(ctx context.Context, req ShieldRequest) (ShieldStatus, error)
	AllowBackend
}

// HTTPError is an error with the HTTP status the server answers with.
type HTTPError struct {
	Code    int
	Message string
	Details []string
}

func (e *HTTPError) Error() string { return e.Message }

// BlocklistStatus is one [blocklists.NAME]: its bans are those of jail
// blocklist:NAME.
type BlocklistStatus struct {
	Name string `json:"name"`
	// Source is the URL (without its query) or the file.
	Source string `json:"source"`
	// Entries is the size of the version enforced now; Skipped how many of
	// them a never-ban rule protects (or are too wide to ban).
	Entries int `json:"entries"`
	Skipped int `json:"skipped"`
	// Version is when the version enforced now was fetched; LastRefresh
	// the last fetch that succeeded (a 304 included).
	Version     time.Time `json:"version"`
	LastRefresh time.Time `json:"last_refresh"`
	NextRefresh time.Time `json:"next_refresh"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at"`
	Fetches     uint64    `json:"fetches"`
	NotModified uint64    `json:"not_modified"`
	Failures    uint64    `json:"failures"`
	// Added and Removed are the last change's.
	Added   int `json:"added"`
	Removed int `json:"removed"`
}
