package blocklist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ErrTooBig: the list is larger than the size cap.
var ErrTooBig = errors.New("list too big")

// ErrNoEntries: a list without a single entry is taken as a failed
// download (an empty or truncated body), never as "lift every ban".
var ErrNoEntries = errors.New("no entries")

// Validators are what a conditional GET sends back: the server's ETag and
// Last-Modified of the list last read.
type Validators struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// Fetcher reads lists from https:// URLs and local files.
type Fetcher struct {
	// Client does the GETs (http.DefaultClient when nil). Its redirects
	// are followed only to https:// (or loopback, see CheckURL).
	Client *http.Client
	// MaxBytes caps a list's size; a bigger one is refused unread (by its
	// Content-Length) or as soon as the cap is crossed.
	MaxBytes int64
	// MaxEntries caps its entries (0: no cap beyond MaxBytes).
	MaxEntries int
	// Timeout bounds one fetch, download included (0: none but ctx's).
	Timeout time.Duration
	// UserAgent is sent with each GET.
	UserAgent string
}

// Result is one fetch.
type Result struct {
	// NotModified: the server answered 304 to the conditional GET; Parsed
	// is empty and the previous list stands.
	NotModified bool
	Parsed      Parsed
	Validators  Validators
	// Bytes is the size of the body read.
	Bytes int64
}

// CheckURL says whether u may be fetched: https://, or http:// to a
// loopback host (a mirror on the same machine, or a test server in the
// test's network namespace), where nobody on the path can change the list.
func CheckURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("bad URL %q: %v", u, err)
	}
	switch p.Scheme {
	case "https":
	case "http":
		if !loopbackHost(p.Hostname()) {
			return fmt.Errorf("%q: plain http only to a loopback host (127.0.0.1, ::1, localhost); use https://", u)
		}
	default:
		return fmt.Errorf("%q: want an https:// URL", u)
	}
	if p.Host == "" {
		return fmt.Errorf("%q: no host", u)
	}
	if p.User != nil {
		return fmt.Errorf("%q: credentials in the URL are not supported", u)
	}
	return nil
}

// Local reports whether u points at a loopback host (no remote server to
// spare from frequent fetches).
func Local(u string) bool {
	p, err := url.Parse(u)
	return err == nil && loopbackHost(p.Hostname())
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// FetchURL GETs the list at u. With prev set it asks conditionally
// (If-None-Match, If-Modified-Since); a 304 is NotModified. Anything but
// 200 or 304, a body over the cap, a read error, a bad line or a list
// without entries is an error: the caller keeps its previous list.
func (f *Fetcher) FetchURL(ctx context.Context, u string, prev Validators) (Result, error) {
	if err := CheckURL(u); err != nil {
		return Result{}, err
	}
	if f.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", u, err)
	}
	if prev.ETag != "" {
		req.Header.Set("If-None-Match", prev.ETag)
	}
	if prev.LastModified != "" {
		req.Header.Set("If-Modified-Since", prev.LastModified)
	}
	if f.UserAgent != "" {
		req.Header.Set("User-Agent", f.UserAgent)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return Result{NotModified: true, Validators: prev}, nil
	case http.StatusOK:
	default:
		// Drain a little so the connection can be reused; never the lot.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return Result{}, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if f.MaxBytes > 0 && resp.ContentLength > f.MaxBytes {
		return Result{}, fmt.Errorf("GET %s: %w: Content-Length %d is over the cap of %d bytes (max_size)", u, ErrTooBig, resp.ContentLength, f.MaxBytes)
	}
	res, err := f.read(resp.Body, "GET "+u)
	if err != nil {
		return Result{}, err
	}
	res.Validators = Validators{ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	return res, nil
}

// FetchFile reads the list in a local file, with the same caps and checks
// as FetchURL.
func (f *Fetcher) FetchFile(path string) (Result, error) {
	fh, err := os.Open(path)
	if err != nil {
		return Result{}, err
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err == nil && f.MaxBytes > 0 && fi.Mode().IsRegular() && fi.Size() > f.MaxBytes {
		return Result{}, fmt.Errorf("%s: %w: %d bytes is over the cap of %d bytes (max_size)", path, ErrTooBig, fi.Size(), f.MaxBytes)
	}
	return f.read(fh, path)
}

// read parses a body, stopping at the first byte over the cap.
func (f *Fetcher) read(r io.Reader, name string) (Result, error) {
	cr := &countingReader{r: r}
	var body io.Reader = cr
	if f.MaxBytes > 0 {
		body = io.LimitReader(cr, f.MaxBytes+1)
	}
	p, err := Parse(body, Limits{Entries: f.MaxEntries})
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	if f.MaxBytes > 0 && cr.n > f.MaxBytes {
		return Result{}, fmt.Errorf("%s: %w: more than the cap of %d bytes (max_size)", name, ErrTooBig, f.MaxBytes)
	}
	if p.BadCount > 0 {
		return Result{}, fmt.Errorf("%s: %d bad line(s), the list is refused:\n%s", name, p.BadCount, p.BadReport(name))
	}
	if len(p.Entries) == 0 {
		return Result{}, fmt.Errorf("%s: %w (%d lines read)", name, ErrNoEntries, p.Lines)
	}
	return Result{Parsed: p, Bytes: cr.n}, nil
}

func (f *Fetcher) client() *http.Client {
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	// A redirect is held to the same rule as the configured URL.
	cc := *c
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("more than 5 redirects")
		}
		if err := CheckURL(req.URL.String()); err != nil {
			return fmt.Errorf("redirect: %w", err)
		}
		return nil
	}
	return &cc
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Describe is how a source is shown: the URL without its query (which
// may hold a key) or the file.
func Describe(source string) string {
	if u, err := url.Parse(source); err == nil && u.Scheme != "" {
		u.RawQuery, u.Fragment, u.User = "", "", nil
		return u.String()
	}
	return strings.TrimSpace(source)
}
