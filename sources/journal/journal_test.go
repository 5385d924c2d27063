package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bansd/bansd/sources"
)

var services = []string{"front", "admin", "smtp", "antispam"}

func readAll(t testing.TB, in []byte, maxLine int) ([]sources.Line, Counts, error) {
	t.Helper()
	var lines []sources.Line
	c, err := Read(context.Background(), bytes.NewReader(in), Options{MaxLine: maxLine, Services: services}, func(l sources.Line) error {
		lines = append(lines, l)
		return nil
	})
	return lines, c, err
}

// The samples are real journalctl output (testdata/mksamples.sh): both
// formats give the same lines, with service, container, time and text.
func TestSamples(t *testing.T) {
	var got [][]sources.Line
	for _, name := range []string{"sample.export", "sample.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		lines, c, err := readAll(t, b, 65536)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Records != 18 || c.Lines != 16 || c.Other["sshd"] != 1 || len(c.Other) != 1 || c.Cut != 0 || c.Omitted != 0 {
			t.Fatalf("%s: counts %+v", name, c)
		}
		first := lines[0]
		if first.Service != "admin" || first.Container != "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90" ||
			!first.Time.Equal(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)) || !strings.HasPrefix(first.Text, "[2026-11-20 00:00:00,000] INFO in nginx: Login attempt for: x@") {
			t.Fatalf("%s: first line %+v", name, first)
		}
		if l := lines[1]; l.Service != "front" || !l.Time.Equal(time.Date(2026, 11, 20, 0, 0, 10, 123000, time.UTC)) {
			t.Fatalf("%s: second line %+v", name, l)
		}
		if l := lines[13]; l.Service != "front" || !strings.Contains(l.Text, "user=<\xff\xfe@example.com>") {
			t.Fatalf("%s: binary MESSAGE gave %+v", name, l)
		}
		if l := lines[14]; !strings.HasSuffix(l.Text, "user=<split@example.com>, method=PLAIN, rip=203.0.113.11, rport=5001, lip=192.168.203.5, lport=993, TLS") ||
			!strings.HasPrefix(l.Text, "Nov 20 00:00:32 imap-login:") || !l.Time.Equal(time.Date(2026, 11, 20, 0, 0, 32, 0, time.UTC)) {
			t.Fatalf("%s: the split line was not joined with its first piece's time: %+v", name, l)
		}
		if l := lines[15]; l.Service != "smtp" || !strings.Contains(l.Text, "SASL LOGIN authentication failed") {
			t.Fatalf("%s: compose v1 name with the default tag gave %+v", name, l)
		}
		got = append(got, lines)
	}
	if fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
		t.Fatalf("export and JSON differ:\n%v\n%v", got[0], got[1])
	}
}

func TestServiceOf(t *testing.T) {
	known := map[string]bool{"front": true, "admin": true, "smtp": true}
	for _, c := range []struct {
		tag, name, want string
	}{
		{"mailu-front", "", "front"},
		{"mailu-admin", "whatever", "admin"},
		{"", "mailu-front-1", "front"},
		{"", "mailu_front_1", "front"},
		{"", "/mailu_smtp_1", "smtp"},
		{"4f1d2c3b4a59", "my-mail-stack-front-2", "front"},
		{"front", "", "front"},
		{"mailu-webmail", "mailu-webmail-1", ""},
		{"", "mailu-front-1-old", ""},
		{"", "", ""},
		{"-_-", "123", ""},
	} {
		got, ok := serviceOf(known, c.tag, c.name)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("serviceOf(%q, %q) = %q, %v; want %q", c.tag, c.name, got, ok, c.want)
		}
	}
}

// binField is an export-format binary field.
func binField(name string, v []byte) []byte {
	b := append([]byte(name+"\n"), binary.LittleEndian.AppendUint64(nil, uint64(len(v)))...)
	return append(append(b, v...), '\n')
}

const rec = "__REALTIME_TIMESTAMP=1795651200000000\nCONTAINER_TAG=mailu-front\nMESSAGE=hello\n\n"

// Malformed input is an error naming the record and what was wrong.
func TestMalformed(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"lower-case name", rec + "message=x\n\n", "record 2: bad byte 'm' in field name"},
		{"long name", rec + strings.Repeat("A", 65) + "=x\n\n", "record 2: field name \"AAAA"},
		{"no name", rec + "=x\n\n", "record 2: a field without a name"},
		{"cut in name", rec + "MESS", "record 2: input ends inside field name \"MESS\""},
		{"cut in text", rec + "MESSAGE=abc", "record 2: field MESSAGE: input ends before the value's line feed"},
		{"cut in length", rec + "MESSAGE\n\x05\x00", "record 2: field MESSAGE: input ends inside the 8-byte length"},
		{"cut in binary", rec + "MESSAGE\n\x05\x00\x00\x00\x00\x00\x00\x00ab", "record 2: field MESSAGE: input ends after 2 of the value's 5 bytes"},
		{"wrong length", rec + "MESSAGE\n\x02\x00\x00\x00\x00\x00\x00\x00abc\n\n", "record 2: field MESSAGE: byte 'c' after a 2-byte binary value"},
		{"absurd length", rec + "MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\xff", "record 2: field MESSAGE: binary value claims 18446744073709551615 bytes"},
		{"bad time", rec + "__REALTIME_TIMESTAMP=yesterday\nCONTAINER_TAG=mailu-front\nMESSAGE=x\n\n", "record 2 (front): __REALTIME_TIMESTAMP \"yesterday\""},
		{"no message", rec + "CONTAINER_TAG=mailu-admin\n\n", "record 2 (admin): no MESSAGE field"},
		{"json not object", `{"MESSAGE":"a","CONTAINER_TAG":"mailu-front"}` + "\n[1]\n", "journal json: record 2: want a JSON object"},
		{"json bad", `{"MESSAGE":"a","CONTAINER_TAG":"mailu-front"}` + "\n{\"MESSAGE\":\n", "journal json: record 2: bad JSON"},
		{"json bad value", `{"MESSAGE":"a","CONTAINER_TAG":"mailu-front"}` + "\n" + `{"MESSAGE":true,"CONTAINER_TAG":"mailu-front"}` + "\n", "journal json: record 2: field MESSAGE: want a string, an array of bytes or null"},
		{"json bytes out of range", `{"MESSAGE":[300],"CONTAINER_TAG":"mailu-front"}` + "\n", "journal json: record 1: field MESSAGE: want a string, an array of bytes or null"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := readAll(t, []byte(c.in), 256)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
}

// Records are read as the format says: binary fields may hold line feeds
// and anything else, the last entry may lack its empty line, other units'
// entries are counted, long messages cut, JSON nulls counted as omitted,
// a field given twice keeps its last value.
func TestRecords(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1000)
	for _, c := range []struct {
		name      string
		in        []byte
		want      []string
		cut, omit int64
		other     string
	}{
		{"text", []byte(rec), []string{"front|hello"}, 0, 0, ""},
		{"no final empty line", []byte(strings.TrimSuffix(rec, "\n")), []string{"front|hello"}, 0, 0, ""},
		{"blank lines between", []byte("\n\n" + rec + "\n\n" + rec), []string{"front|hello", "front|hello"}, 0, 0, ""},
		{"binary with line feed", append([]byte("CONTAINER_NAME=mailu-admin-1\n"), append(binField("MESSAGE", []byte("one\ntwo\r\n")), '\n')...), []string{"admin|one", "admin|two"}, 0, 0, ""},
		{"binary name field skipped", append(binField("OTHER", []byte("a\n\nb")), []byte("CONTAINER_TAG=mailu-smtp\nMESSAGE=m\n\n")...), []string{"smtp|m"}, 0, 0, ""},
		{"long text cut", []byte("CONTAINER_TAG=mailu-front\nMESSAGE=" + string(big) + "\n\n"), []string{"front|" + string(big[:300])}, 1, 0, ""},
		{"long binary cut", append([]byte("CONTAINER_TAG=mailu-front\n"), append(binField("MESSAGE", big), '\n')...), []string{"front|" + string(big[:300])}, 1, 0, ""},
		{"twice", []byte("CONTAINER_TAG=mailu-front\nMESSAGE=a\nMESSAGE=b\n\n"), []string{"front|b"}, 0, 0, ""},
		{"other unit", []byte("SYSLOG_IDENTIFIER=sshd\nMESSAGE=x\n\n"), nil, 0, 0, "sshd"},
		{"other container", []byte("CONTAINER_TAG=mailu-webmail\nMESSAGE=x\n\n"), nil, 0, 0, "mailu-webmail"},
		{"partial never ended", []byte("CONTAINER_TAG=mailu-front\nCONTAINER_ID=abc\nCONTAINER_PARTIAL_MESSAGE=true\nMESSAGE=a\n\n"), []string{"front|a"}, 0, 0, ""},
		{"partials of two containers", []byte("CONTAINER_TAG=mailu-front\nCONTAINER_ID=f\nCONTAINER_PARTIAL_MESSAGE=true\nMESSAGE=f1\n\n" +
			"CONTAINER_TAG=mailu-admin\nCONTAINER_ID=a\nCONTAINER_PARTIAL_MESSAGE=true\nMESSAGE=a1\n\n" +
			"CONTAINER_TAG=mailu-admin\nCONTAINER_ID=a\nMESSAGE=a2\n\n" +
			"CONTAINER_TAG=mailu-front\nCONTAINER_ID=f\nMESSAGE=f2\n\n"), []string{"admin|a1a2", "front|f1f2"}, 0, 0, ""},
		{"partial cut", []byte("CONTAINER_TAG=mailu-front\nCONTAINER_PARTIAL_MESSAGE=true\nMESSAGE=" + string(big[:200]) + "\n\nCONTAINER_TAG=mailu-front\nMESSAGE=" + string(big[:200]) + "\n\n"), []string{"front|" + string(big[:300])}, 1, 0, ""},
		{"json", []byte(`{"MESSAGE":"a\"b","CONTAINER_TAG":"mailu-front","__REALTIME_TIMESTAMP":"1795651200000001"}` + "\n"), []string{"front|a\"b"}, 0, 0, ""},
		{"json bytes", []byte(`{"MESSAGE":[104,255,10,105],"CONTAINER_NAME":"mailu_admin_1"}`), []string{"admin|h\xff", "admin|i"}, 0, 0, ""},
		{"json null", []byte(`{"MESSAGE":null,"CONTAINER_TAG":"mailu-front"}` + "\n"), nil, 0, 1, ""},
		{"json twice", []byte(`{"MESSAGE":["a","b"],"CONTAINER_TAG":"mailu-front"}` + "\n"), []string{"front|b"}, 0, 0, ""},
		{"json partial", []byte(`{"MESSAGE":"a","CONTAINER_TAG":"mailu-front","CONTAINER_PARTIAL_MESSAGE":"true"}` + "\n" + `{"MESSAGE":"b","CONTAINER_TAG":"mailu-front"}` + "\n"), []string{"front|ab"}, 0, 0, ""},
		{"json long cut", []byte(`{"MESSAGE":"` + string(big) + `","CONTAINER_TAG":"mailu-front"}`), []string{"front|" + string(big[:300])}, 1, 0, ""},
		{"empty", nil, nil, 0, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			lines, cnt, err := readAll(t, c.in, 300)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range lines {
				got = append(got, l.Service+"|"+l.Text)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) || cnt.Cut != c.cut || cnt.Omitted != c.omit || (c.other != "") != (cnt.Other[c.other] == 1) {
				t.Fatalf("got %q, counts %+v; want %q, cut %d, omitted %d, other %q", got, cnt, c.want, c.cut, c.omit, c.other)
			}
		})
	}
}

// A 64 MiB message costs at most MaxLine of memory in either format, and
// a JSON record over the limit is skipped and counted, not fatal.
func TestHugeRecordsBounded(t *testing.T) {
	huge := bytes.Repeat([]byte("y"), 64<<20)
	export := append([]byte("CONTAINER_TAG=mailu-front\n"), append(binField("MESSAGE", huge), []byte("\n"+rec)...)...)
	js := append(append([]byte(`{"CONTAINER_TAG":"mailu-front","MESSAGE":"`), huge...), []byte("\"}\n"+`{"MESSAGE":"hello","CONTAINER_TAG":"mailu-front"}`+"\n")...)
	for _, c := range []struct {
		name  string
		in    []byte
		lines int
	}{{"export", export, 2}, {"json", js, 1}} {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			lines, cnt, err := readAll(t, c.in, 1024)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != c.lines || lines[len(lines)-1].Text != "hello" {
				t.Fatalf("%d lines, counts %+v", len(lines), cnt)
			}
			if c.name == "json" && cnt.Other[oversize] != 1 {
				t.Fatalf("oversize record not counted: %+v", cnt)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 24<<20 {
				t.Fatalf("allocated %d MiB for a 64 MiB record", alloc>>20)
			}
		})
	}
}

func fuzzRead(t *testing.T, in []byte) {
	const maxLine = 512
	n := 0
	_, err := Read(context.Background(), bytes.NewReader(in), Options{MaxLine: maxLine, Services: services}, func(l sources.Line) error {
		n++
		if len(l.Text) > maxLine || strings.Contains(l.Text, "\n") {
			t.Fatalf("line of %d bytes (limit %d) or with a line feed: %q", len(l.Text), maxLine, l.Text)
		}
		if l.Service == "" {
			t.Fatal("line without service")
		}
		return nil
	})
	if err != nil && !strings.Contains(err.Error(), "record ") {
		t.Fatalf("error without a record number: %v", err)
	}
	if n > len(in) {
		t.Fatalf("%d lines out of %d bytes", n, len(in))
	}
}

func FuzzExport(f *testing.F) {
	b, err := os.ReadFile("testdata/sample.export")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(rec))
	f.Add(append([]byte("CONTAINER_TAG=mailu-front\n"), binField("MESSAGE", []byte("a\nb"))...))
	f.Fuzz(fuzzRead)
}

func FuzzJSON(f *testing.F) {
	b, err := os.ReadFile("testdata/sample.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"MESSAGE":[1,2,3],"CONTAINER_NAME":"mailu_front_1","CONTAINER_PARTIAL_MESSAGE":"true"}`))
	f.Fuzz(fuzzRead)
}
