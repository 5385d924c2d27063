package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxBody bounds a request body: a 100,000-entry blocklist of IPv6 CIDRs
// is about 5 MB of JSON.
const maxBody = 64 << 20

// Server serves the control API.
type Server struct {
	backend Backend
	metrics http.Handler
	// gid is the group allowed besides root; -1 for none.
	gid    int
	logger *slog.Logger
	srv    *http.Server
}

// NewServer returns a server for backend. metrics serves GET /v1/metrics.
// group names the group whose members may use the socket ("" for root
// only).
func NewServer(backend Backend, metrics http.Handler, group string, logger *slog.Logger) (*Server, error) {
	s := &Server{backend: backend, metrics: metrics, gid: -1, logger: logger}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("socket group: %w", err)
		}
		if s.gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("socket group %q: gid %q: %w", group, g.Gid, err)
		}
	}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       connContext,
	}
	return s, nil
}

// Listen creates the socket at path: its directory with mode 0755, the
// socket with mode 0600 owned by root, or 0660 with the server's group. A
// stale socket is replaced; a live one (another bansd) is an error.
func (s *Server) Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another bansd answers on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	// The umask closes the window between bind and chmod; the peer
	// credential check guards the API regardless.
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	mode := os.FileMode(0o600)
	if s.gid >= 0 {
		if err := os.Chown(path, 0, s.gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("socket group: %w", err)
		}
		mode = 0o660
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	return l, nil
}

// Serve answers requests on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

type peerKey struct{}

// peer is the credentials of the process at the other end of the socket.
type peer struct {
	ok  bool
	pid int32
	uid uint32
	gid uint32
	err error
}

func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		// TCP (the metrics listener): no credentials.
		return context.WithValue(ctx, peerKey{}, peer{})
	}
	p := peer{}
	raw, err := uc.SyscallConn()
	if err == nil {
		cerr := raw.Control(func(fd uintptr) {
			var cred *unix.Ucred
			cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
			if err == nil {
				p = peer{ok: true, pid: cred.Pid, uid: cred.Uid, gid: cred.Gid}
			}
		})
		if err == nil {
			err = cerr
		}
	}
	p.err = err
	return context.WithValue(ctx, peerKey{}, p)
}

// allowed says whether the peer is root or a member of the socket group.
func (s *Server) allowed(p peer) bool {
	if !p.ok {
		return false
	}
	if p.uid == 0 {
		return true
	}
	if s.gid < 0 {
		return false
	}
	if int(p.gid) == s.gid {
		return true
	}
	return inSupplementaryGroup(p.pid, s.gid)
}

// inSupplementaryGroup reads the peer's supplementary groups from /proc.
func inSupplementaryGroup(pid int32, gid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, ln := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(ln, "Groups:")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if g, err := strconv.Atoi(f); err == nil && g == gid {
				return true
			}
		}
	}
	return false
}

// Handler returns the API routes behind the peer-credential check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+APIVersion+"/bans", s.listBans)
	mux.HandleFunc("POST "+APIVersion+"/bans", s.ban)
	mux.HandleFunc("DELETE "+APIVersion+"/bans", s.unban)
	mux.HandleFunc("GET "+APIVersion+"/status", s.status)
	mux.HandleFunc("GET "+APIVersion+"/why", s.why)
	mux.HandleFunc("POST "+APIVersion+"/reload", s.reload)
	mux.HandleFunc("GET "+APIVersion+"/history", s.history)
	mux.HandleFunc("GET "+APIVersion+"/stats", s.stats)
	mux.HandleFunc("POST "+APIVersion+"/notify/test", s.notifyTest)
	mux.HandleFunc("POST "+APIVersion+"/shield", s.shield)
	s.allowRoutes(mux)
	if s.metrics != nil {
		mux.Handle("GET "+APIVersion+"/metrics", s.metrics)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peer)
		if !s.allowed(p) {
			if s.logger != nil {
				s.logger.Warn("control socket: refused peer", "uid", p.uid, "pid", p.pid, "err", p.err)
			}
			writeError(w, &HTTPError{Code: http.StatusForbidden, Message: "permission denied: only root and members of daemon.socket_group may use bansd's socket"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) listBans(w http.ResponseWriter, r *http.Request) {
	bans := s.backend.Bans(r.URL.Query().Get("jail"))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(countHeader, strconv.Itoa(len(bans)))
	encodeBanList(w, bans) // an error is the client going away

}

func (s *Server) ban(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Targets) == 0 {
		writeError(w, &HTTPError{Code: http.StatusBadRequest, Message: "no targets"})
		return
	}
	res, err := s.backend.Ban(r.Context(), req)
	reply(w, res, err)
}

func (s *Server) unban(w http.ResponseWriter, r *http.Request) {
	var req UnbanRequest
	if !decode(w, r, &req) {
		return
	}
	n := 0
	if len(req.Targets) > 0 {
		n++
	}
	if req.Jail != "" {
		n++
	}
	if req.All {
		n++
	}
	if n != 1 {
		writeError(w, &HTTPError{Code: http.StatusBadRequest, Message: "give exactly one of targets, jail or all"})
		return
	}
	res, err := s.backend.Unban(r.Context(), req)
	reply(w, res, err)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.Status(r.Context()))
}

func (s *Server) shield(w http.ResponseWriter, r *http.Request) {
	var req ShieldRequest
	if !decode(w, r, &req) {
		return
	}
	res, err := s.backend.Shield(r.Context(), req)
	reply(w, res, err)
}

func (s *Server) why(w http.ResponseWriter, r *http.Request) {
	a, err := netip.ParseAddr(r.URL.Query().Get("addr"))
	if err != nil || a.Zone() != "" {
		writeError(w, &HTTPError{Code: http.StatusBadRequest, Message: fmt.Sprintf("bad address %q", r.URL.Query().Get("addr"))})
		return
	}
	res, err := s.backend.Why(r.Context(), a.Unmap())
	reply(w, res, err)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	res := s.backend.Reload(r.Context())
	code := http.StatusOK
	if !res.OK {
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, res)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, &HTTPError{Code: http.StatusBadRequest, Message: "bad request body: " + err.Error()})
		return false
	}
	return true
}

// reply answers with a backend call's result, or with its error.
func reply(w http.ResponseWriter, res any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var he *HTTPError
	if !errors.As(err, &he) {
		he = &HTTPError{Code: http.StatusInternalServerError, Message: err.Error()}
	}
	writeJSON(w, he.Code, Error{Error: he.Message, Details: he.Details})
}

// ServeMetrics serves only GET /metrics and /v1/metrics on a TCP address,
// which must be loopback (the config loader checks it too).
func ServeMetrics(ctx context.Context, addr string, metrics http.Handler) (*http.Server, net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLoopback() {
		return nil, nil, fmt.Errorf("metrics listen %q: not a loopback address:port", addr)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET "+APIVersion+"/metrics", metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv, l, nil
}

// isConnRefused tells a dead daemon from other errors, for messages.
func isConnRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}
