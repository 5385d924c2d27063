package parse

import (
	"net/netip"
	"time"
)

// Kind says what an Event means.
type Kind uint8

const (
	KindNone Kind = iota
	// KindAuthFailure is a wrong password for an existing user (admin
	// badauth, Dovecot auth failed, nginx "Authentication credentials
	// invalid", SSO failures).
	KindAuthFailure
	// KindUnknownUser is a login for a user that does not exist or is
	// disabled (admin "account disabled").
	KindUnknownUser
	// KindAuthSuccess is a successful login: it exempts the address.
	KindAuthSuccess
	// KindPort25Auth is AUTH attempted on port 25, which never offers it: a bot.
	KindPort25Auth
	// KindRateLimited is an attempt refused by Mailu's own limiter.
	KindRateLimited
	// KindTokenInvalid is a bad API token.
	KindTokenInvalid
	// KindRelayDenied is a Postfix "Relay access denied" reject.
	KindRelayDenied
	// KindUserUnknown is a Postfix "User unknown" recipient reject.
	KindUserUnknown
	// KindScan is a connection that never tried to authenticate (TLS junk,
	// disconnect before auth): a weak signal.
	KindScan
	// KindRelayClient is Postfix accepting a client by XCLIENT address
	// (client=NAME[IP]); it only feeds the gateway alarm.
	KindRelayClient
	// KindMisconfigured is a client refused before any mechanism ran
	// (plaintext login before STARTTLS): never a password guess.
	KindMisconfigured
	// KindCount is the number of kinds, for tables indexed by Kind.
	KindCount
)

var kindNames = [...]string{
	KindNone:          "none",
	KindAuthFailure:   "auth-failure",
	KindUnknownUser:   "unknown-user",
	KindAuthSuccess:   "auth-success",
	KindPort25Auth:    "port25-auth",
	KindRateLimited:   "rate-limited",
	KindTokenInvalid:  "token-invalid",
	KindRelayDenied:   "relay-denied",
	KindUserUnknown:   "user-unknown",
	KindScan:          "scan",
	KindRelayClient:   "relay-client",
	KindMisconfigured: "misconfigured",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Countable reports whether a jail may count the kind. A success only
// exempts, a relay client only feeds the gateway alarm, and a client
// refused before any mechanism ran never guessed a password.
func (k Kind) Countable() bool {
	switch k {
	case KindNone, KindAuthSuccess, KindRelayClient, KindMisconfigured:
		return false
	}
	return k < KindCount
}

// CountableNames are the names of the kinds a jail may count, in Kind
// order: the configuration's event vocabulary.
func CountableNames() []string {
	var names []string
	for k := range KindCount {
		if k.Countable() {
			names = append(names, k.String())
		}
	}
	return names
}

// ParseKind is the inverse of Kind.String for the kinds a jail may count.
func ParseKind(s string) (Kind, bool) {
	for k, n := range kindNames {
		if n == s && Kind(k).Countable() {
			return Kind(k), true
		}
	}
	return KindNone, false
}

// Origin is the program that wrote the line an Event came from. Mailu logs
// the same credential check in admin and in front; the engine counts each
// attempt from one origin only.
type Origin uint8

const (
	OriginNone Origin = iota
	OriginNginx
	OriginDovecot
	OriginAdmin
	OriginPostfix
	OriginRspamd
)

var originNames = [...]string{"none", "nginx", "dovecot", "admin", "postfix", "rspamd"}

func (o Origin) String() string {
	if int(o) < len(originNames) {
		return originNames[o]
	}
	return "unknown"
}

// Event is what one log line means.
type Event struct {
	Kind   Kind
	Origin Origin
	// Time is the log time: Docker's timestamp, else the line's own.
	Time time.Time
	// Addr is the client address, unmapped, always valid.
	Addr netip.Addr
	// User is attacker-controlled text; never parse addresses out of it.
	User string
	// PassHash is admin's 6-hex truncated password hash, when known.
	PassHash string
	// Port is the server port the attempt was made on (0 if unknown).
	Port int
	// SrcPort is the client's source port when the line carries it (nginx
	// "connected", Dovecot rport=, admin from: IP/PORT), else 0.
	SrcPort uint16
	// Witnessed: the kernel saw this client's TCP handshake (Witness).
	// False in text mode (replay, or a proxy the kernel cannot see past).
	Witnessed bool
	// Count is how many attempts the line stands for (Dovecot's N), >= 1.
	Count int
	// Line is the raw line, kept as evidence.
	Line string
}
