package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/template"

	"github.com/bansd/bansd/configs"
)

const (
	maxRedirects    = 3
	maxAnswer       = 64 << 10 // bytes of a webhook's answer read
	maxTemplateBody = 64 << 10
)

type webhookSender struct {
	cfg    configs.Webhook
	client *http.Client
	tmpl   *template.Template
}

func newWebhookSender(cfg configs.Webhook, transport http.RoundTripper) (*webhookSender, error) {
	s := &webhookSender{cfg: cfg}
	s.client = &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects (a redirect loop?)", maxRedirects)
			}
			return nil
		},
	}
	if cfg.Preset == "template" {
		t, err := template.New(cfg.Name).Option("missingkey=error").Parse(cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("webhook %s: template: %w", cfg.Name, err)
		}
		s.tmpl = t
	}
	return s, nil
}

func (s *webhookSender) describe() string {
	return fmt.Sprintf("webhook %s (%s)", s.cfg.URLHost(), s.cfg.Preset)
}

// priority maps a kind to ntfy's and Gotify's scales (1..5 and 0..10).
func priority(k Kind) (ntfy, gotify int) {
	switch k {
	case KindAlarm:
		return 5, 8
	case KindAlarmCleared, KindFolded, KindTest, KindDaemon:
		return 3, 5
	default:
		return 2, 2
	}
}

// request builds the preset's request for one message.
func (s *webhookSender) request(ctx context.Context, m Message) (*http.Request, error) {
	u := s.cfg.URL.Reveal()
	token := s.cfg.Token.Reveal()
	ctype := "application/json"
	var body []byte
	var err error
	hdr := http.Header{}
	bearer := token != ""
	np, gp := priority(m.Kind)
	switch s.cfg.Preset {
	case "json", "":
		body, err = json.Marshal(m)
	case "ntfy":
		body = []byte(m.Text)
		ctype = "text/plain; charset=utf-8"
		hdr.Set("Title", mime.QEncoding.Encode("utf-8", m.Title))
		hdr.Set("Priority", fmt.Sprint(np))
		tag := "shield"
		if m.Kind == KindAlarm {
			tag = "rotating_light"
		}
		hdr.Set("Tags", tag)
	case "gotify":
		bearer = false
		pu, perr := url.Parse(u)
		if perr != nil {
			return nil, errors.New("bad url")
		}
		if !strings.HasSuffix(pu.Path, "/message") {
			pu.Path = strings.TrimSuffix(pu.Path, "/") + "/message"
		}
		q := pu.Query()
		q.Set("token", token)
		pu.RawQuery = q.Encode()
		u = pu.String()
		body, err = json.Marshal(map[string]any{"title": m.Title, "message": m.Text, "priority": gp})
	case "slack":
		body, err = json.Marshal(map[string]string{"text": "*" + m.Title + "*\n" + m.Text})
	case "matrix":
		bearer = false
		html := "<strong>" + template.HTMLEscapeString(m.Title) + "</strong><br><pre>" + template.HTMLEscapeString(m.Text) + "</pre>"
		fields := map[string]string{"text": m.Title + "\n" + m.Text, "body": m.Title + "\n" + m.Text, "html": html}
		if token != "" {
			fields["key"] = token
		}
		body, err = json.Marshal(fields)
	case "template":
		var b bytes.Buffer
		lw := &limitWriter{w: &b, n: maxTemplateBody}
		if err := s.tmpl.Execute(lw, m); err != nil {
			return nil, fmt.Errorf("template: %w", err)
		}
		body = b.Bytes()
		ctype = "text/plain; charset=utf-8"
	default:
		return nil, fmt.Errorf("unknown preset %q", s.cfg.Preset)
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("bad url")
	}
	req.Header = hdr
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "bansd")
	if bearer {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v.Reveal())
	}
	return req, nil
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("template output longer than %d bytes", maxTemplateBody)
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// errHugeAnswer marks a delivered message whose answer was cut: the
// server took it (2xx), so it is not sent again, but status shows it.
var errHugeAnswer = errors.New("answer body longer than 64 KiB, rest not read")

func (s *webhookSender) send(ctx context.Context, m Message) (string, error) {
	req, err := s.request(ctx, m)
	if err != nil {
		return "", fmt.Errorf("webhook %s: %w", s.cfg.Name, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error prints the URL, which may hold a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("POST %s: %w", s.cfg.URLHost(), err)
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	huge := len(data) > maxAnswer
	if huge {
		data = data[:maxAnswer]
	}
	answer := fmt.Sprintf("HTTP %s", resp.Status)
	if snip := strings.TrimSpace(clean(string(data), 300, false)); snip != "" {
		answer += ": " + snip
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answer, fmt.Errorf("POST %s: %s", s.cfg.URLHost(), answer)
	}
	if rerr != nil {
		return answer, nil // the status line says it was taken
	}
	if huge {
		return answer, errHugeAnswer
	}
	return answer, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
