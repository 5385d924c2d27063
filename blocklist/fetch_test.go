package blocklist

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bansd/bansd/internal/netnstest"
)

// listServer is a real HTTP server on loopback in a namespace of its own,
// with a client that dials into it.
type listServer struct {
	base   string
	client *http.Client
	// sent counts the body bytes the handlers wrote.
	sent atomic.Int64
	mu   sync.Mutex
	// reqs are the conditional headers of each request, by path.
	reqs map[string][]string
}

func newListServer(t *testing.T, routes map[string]http.HandlerFunc) *listServer {
	t.Helper()
	ns := netnstest.New(t)
	ln := ns.Listen(t, "127.0.0.1:0")
	s := &listServer{base: "http://" + ln.Addr().String(), reqs: map[string][]string{}}
	mux := http.NewServeMux()
	for path, h := range routes {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			s.reqs[r.URL.Path] = append(s.reqs[r.URL.Path], r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
			s.mu.Unlock()
			h(&countingWriter{ResponseWriter: w, n: &s.sent}, r)
		})
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.client = &http.Client{Transport: &http.Transport{DialContext: ns.Dial}}
	return s
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

// Unwrap lets http.ResponseController reach the real writer's Flush.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func text(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }
}

// repeated streams size bytes of line, repeated, without a Content-Length
// when chunked (the cap must hold while reading, not only up front).
func repeated(line string, size int64, chunked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !chunked {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		}
		block := []byte(strings.Repeat(line, (64<<10)/len(line)))
		for sent := int64(0); sent < size; {
			n := min(int64(len(block)), size-sent)
			if _, err := w.Write(block[:n]); err != nil {
				return
			}
			sent += n
		}
	}
}

const testCap = 64 << 20 // the default max_size

func TestFetchFormats(t *testing.T) {
	s := newListServer(t, map[string]http.HandlerFunc{
		"/drop.txt":      text(spamhausDROP),
		"/dropv6.txt":    text(spamhausDROPv6),
		"/level1.netset": text(fireholNetset),
		"/plain.txt":     text(plainList),
		"/garbage":       text("<html><body>Service unavailable</body></html>\n"),
		"/empty":         text("# nothing today\n"),
		"/missing":       func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
		"/redirect-outside": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://192.0.2.1/list", http.StatusFound)
		},
		"/redirect-inside": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/drop.txt", http.StatusFound) },
	})
	f := &Fetcher{Client: s.client, MaxBytes: testCap, Timeout: 10 * time.Second}
	for _, c := range []struct {
		path    string
		want    int
		wantErr string
	}{
		{"/drop.txt", 2, ""},
		{"/dropv6.txt", 2, ""},
		{"/level1.netset", 3, ""},
		{"/plain.txt", 3, ""},
		{"/redirect-inside", 2, ""},
		{"/garbage", 0, "/garbage:1: \"<html>"},
		{"/empty", 0, "no entries"},
		{"/missing", 0, "404 Not Found"},
		{"/redirect-outside", 0, "plain http only to a loopback host"},
	} {
		t.Run(c.path, func(t *testing.T) {
			res, err := f.FetchURL(t.Context(), s.base+c.path, Validators{})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Parsed.Entries) != c.want {
				t.Errorf("%d entries, want %d: %v", len(res.Parsed.Entries), c.want, targets(res.Parsed))
			}
		})
	}
}

func TestFetchConditional(t *testing.T) {
	const etag = `"v1-abc"`
	const lastMod = "Tue, 01 Dec 2026 10:05:11 GMT"
	s := newListServer(t, map[string]http.HandlerFunc{
		"/etag": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", etag)
			io.WriteString(w, spamhausDROP)
		},
		"/lastmod": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("If-Modified-Since") == lastMod {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Last-Modified", lastMod)
			io.WriteString(w, fireholNetset)
		},
	})
	f := &Fetcher{Client: s.client, MaxBytes: testCap}
	for _, c := range []struct {
		path string
		want Validators
	}{{"/etag", Validators{ETag: etag}}, {"/lastmod", Validators{LastModified: lastMod}}} {
		t.Run(c.path, func(t *testing.T) {
			first, err := f.FetchURL(t.Context(), s.base+c.path, Validators{})
			if err != nil {
				t.Fatal(err)
			}
			if first.NotModified || first.Validators != c.want || len(first.Parsed.Entries) == 0 {
				t.Fatalf("first fetch: %+v, want the list with validators %+v", first, c.want)
			}
			sentBefore := s.sent.Load()
			second, err := f.FetchURL(t.Context(), s.base+c.path, first.Validators)
			if err != nil {
				t.Fatal(err)
			}
			if !second.NotModified || second.Validators != c.want {
				t.Fatalf("second fetch: %+v, want 304 with the same validators", second)
			}
			if n := s.sent.Load() - sentBefore; n != 0 {
				t.Errorf("the 304 sent %d body bytes", n)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if got := s.reqs[c.path]; len(got) != 2 || got[0] != "|" || got[1] != c.want.ETag+"|"+c.want.LastModified {
				t.Errorf("conditional headers sent: %q", got)
			}
		})
	}
}

// peakHeap runs fn while sampling the heap in use, and returns fn's error
// and the peak growth over the heap before it.
func peakHeap(fn func() error) (error, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	err := fn()
	close(done)
	wg.Wait()
	return err, max(peak.Load(), base) - base
}

func TestFetchTooBig(t *testing.T) {
	const size = 200 << 20
	comment := "# " + strings.Repeat("x", 61) + "\n"
	valid := "203.0.113.1\n"
	s := newListServer(t, map[string]http.HandlerFunc{
		"/200mb":              repeated(comment, size, false),
		"/200mb-chunked":      repeated(comment, size, true),
		"/200mb-entries":      repeated(valid, size, true),
		"/just-under-the-cap": repeated(comment, testCap-int64(len(valid)), true),
	})
	for _, c := range []struct {
		path       string
		maxEntries int
		wantErr    error
		// maxHeap bounds the heap growth while fetching (the server in
		// this process counts too): far below the body, whatever its size.
		maxHeap uint64
		// maxSent bounds what the server got to send before the refusal
		// (the socket buffers and the client's reads ahead count, and the
		// previous case's handler may still be writing into a closed
		// connection).
		maxSent int64
	}{
		{"/200mb", 0, ErrTooBig, 16 << 20, 8 << 20},
		{"/200mb-chunked", 0, ErrTooBig, 16 << 20, testCap + 16<<20},
		// 500,000 entries of 40 bytes: the entries are what is held.
		{"/200mb-entries", 500_000, ErrTooManyEntries, 80 << 20, 32 << 20},
		{"/just-under-the-cap", 0, ErrNoEntries, 16 << 20, testCap + 16<<20},
	} {
		t.Run(c.path, func(t *testing.T) {
			f := &Fetcher{Client: s.client, MaxBytes: testCap, MaxEntries: c.maxEntries, Timeout: time.Minute}
			before := s.sent.Load()
			start := time.Now()
			err, heap := peakHeap(func() error {
				_, err := f.FetchURL(t.Context(), s.base+c.path, Validators{})
				return err
			})
			sent := s.sent.Load() - before
			t.Logf("%s: %v after %s; heap peak +%.1f MiB; server sent %.1f MiB", c.path, err, time.Since(start).Round(time.Millisecond), float64(heap)/(1<<20), float64(sent)/(1<<20))
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if heap > c.maxHeap {
				t.Errorf("heap grew by %d bytes, want at most %d", heap, c.maxHeap)
			}
			if sent > c.maxSent {
				t.Errorf("the server sent %d bytes before the refusal, want at most %d", sent, c.maxSent)
			}
		})
	}
}

func TestFetchTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := newListServer(t, map[string]http.HandlerFunc{
		"/slow": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "203.0.113.1\n")
			http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		},
	})
	f := &Fetcher{Client: s.client, MaxBytes: testCap, Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err := f.FetchURL(t.Context(), s.base+"/slow", Validators{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s with a 300ms timeout", d)
	}
}

func TestFetchFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := &Fetcher{MaxBytes: 1 << 10}
	res, err := f.FetchFile(write("drop.txt", spamhausDROP))
	if err != nil || len(res.Parsed.Entries) != 2 {
		t.Fatalf("FetchFile = %d entries, %v; want 2", len(res.Parsed.Entries), err)
	}
	big := write("big.txt", strings.Repeat("203.0.113.1\n", 100))
	if _, err := f.FetchFile(big); !errors.Is(err, ErrTooBig) {
		t.Errorf("over the cap: %v, want ErrTooBig", err)
	}
	bad := write("bad.txt", "203.0.113.1\nnope\n")
	if _, err := f.FetchFile(bad); err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Errorf("bad line: %v, want it named %s:2", err, bad)
	}
	if _, err := f.FetchFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://www.spamhaus.org/drop/drop.txt", true},
		{"http://127.0.0.1:8080/list", true},
		{"http://[::1]/list", true},
		{"http://localhost/list", true},
		{"http://www.spamhaus.org/drop/drop.txt", false},
		{"http://192.0.2.1/list", false},
		{"ftp://192.0.2.1/list", false},
		{"https://user:pw@192.0.2.1/list", false},
		{"https:///nohost", false},
		{"file:///etc/passwd", false},
	} {
		if err := CheckURL(c.url); (err == nil) != c.ok {
			t.Errorf("CheckURL(%s) = %v, want ok %v", c.url, err, c.ok)
		}
	}
}

func TestDescribe(t *testing.T) {
	if got := Describe("https://u:p@lists.example/x.netset?key=secret#f"); got != "https://lists.example/x.netset" {
		t.Errorf("Describe = %q", got)
	}
	if got := Describe("/etc/bansd/list.txt"); got != "/etc/bansd/list.txt" {
		t.Errorf("Describe = %q", got)
	}
}
