package control

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strconv"
	"time"
)

// The list of bans has its own encoder and decoder: 100,000 bans must list
// in well under a second, and reflection-based encoding/json spends most
// of that. Both handle exactly the shape of Ban's JSON tags without
// evidence; the decoder falls back to encoding/json for anything else.

// countHeader tells the client how many bans follow, so it can size its
// slice once.
const countHeader = "X-Bans-Count"

// maxPrealloc bounds what a count header can make the client allocate.
const maxPrealloc = 10_000_000

// encodeBanList streams the list, flushing every 60 KiB.
func encodeBanList(w io.Writer, bans []Ban) error {
	buf := make([]byte, 0, 64<<10)
	buf = append(buf, `{"bans":[`...)
	for i := range bans {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendBan(buf, &bans[i])
		if len(buf) > 60<<10 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, "]}\n"...)
	_, err := w.Write(buf)
	return err
}

func appendBan(buf []byte, b *Ban) []byte {
	buf = append(buf, `{"target":"`...)
	buf = b.Target.AppendTo(buf)
	buf = append(buf, `","jail":`...)
	buf = appendString(buf, b.Jail)
	buf = append(buf, `,"reason":`...)
	buf = appendString(buf, b.Reason)
	buf = append(buf, `,"since":"`...)
	buf = b.Since.AppendFormat(buf, time.RFC3339)
	if !b.Until.IsZero() {
		buf = append(buf, `","until":"`...)
		buf = b.Until.AppendFormat(buf, time.RFC3339)
	}
	buf = append(buf, `","level":`...)
	buf = strconv.AppendInt(buf, int64(b.Level), 10)
	buf = append(buf, `,"manual":`...)
	buf = strconv.AppendBool(buf, b.Manual)
	if b.Permanent {
		buf = append(buf, `,"permanent":true`...)
	}
	if b.Origin != "" {
		buf = append(buf, `,"origin":`...)
		buf = appendString(buf, b.Origin)
	}
	return append(buf, '}')
}

// plainASCII says whether c goes into a JSON string as itself.
func plainASCII(c byte) bool { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' }

// appendString appends s as a JSON string; anything beyond printable
// ASCII goes through encoding/json, which also repairs invalid UTF-8.
func appendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainASCII(s[i]) {
			q, _ := json.Marshal(s)
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// decodeBanList decodes a list of n (a hint) bans into l.
func decodeBanList(data []byte, n int, l *BanList) error {
	if n > 0 && n <= maxPrealloc {
		l.Bans = make([]Ban, 0, n)
	}
	if fastBanList(data, l) {
		return nil
	}
	l.Bans = l.Bans[:0]
	return json.Unmarshal(data, l)
}

// fastBanList parses what encodeBanList writes; false for anything else.
func fastBanList(data []byte, l *BanList) bool {
	p := wireParser{data: bytes.TrimSpace(data)}
	if !p.lit(`{"bans":[`) {
		return false
	}
	for !p.lit("]}") {
		if len(l.Bans) > 0 && !p.lit(",") {
			return false
		}
		var b Ban
		if !p.ban(&b) {
			return false
		}
		l.Bans = append(l.Bans, b)
	}
	return p.i == len(p.data)
}

type wireParser struct {
	data []byte
	i    int
}

func (p *wireParser) lit(s string) bool {
	if !bytes.HasPrefix(p.data[p.i:], []byte(s)) {
		return false
	}
	p.i += len(s)
	return true
}

// until returns the bytes up to the next c (printable ASCII only) and
// moves past c.
func (p *wireParser) until(c byte) ([]byte, bool) {
	for j := p.i; j < len(p.data); j++ {
		if p.data[j] == c {
			v := p.data[p.i:j]
			p.i = j + 1
			return v, true
		}
		if !plainASCII(p.data[j]) {
			return nil, false
		}
	}
	return nil, false
}

func (p *wireParser) str() (string, bool) {
	if !p.lit(`"`) {
		return "", false
	}
	v, ok := p.until('"')
	return string(v), ok
}

func (p *wireParser) time(t *time.Time) bool {
	v, ok := p.until('"')
	if !ok {
		return false
	}
	tt, err := time.Parse(time.RFC3339, string(v))
	*t = tt
	return err == nil
}

func (p *wireParser) ban(b *Ban) bool {
	if !p.lit(`{"target":"`) {
		return false
	}
	v, ok := p.until('"')
	if !ok {
		return false
	}
	var err error
	if b.Target, err = netip.ParsePrefix(string(v)); err != nil {
		return false
	}
	if !p.lit(`,"jail":`) {
		return false
	}
	if b.Jail, ok = p.str(); !ok || !p.lit(`,"reason":`) {
		return false
	}
	if b.Reason, ok = p.str(); !ok || !p.lit(`,"since":"`) || !p.time(&b.Since) {
		return false
	}
	if p.lit(`,"until":"`) && !p.time(&b.Until) || !p.lit(`,"level":`) {
		return false
	}
	j := p.i
	for j < len(p.data) && (p.data[j] == '-' || p.data[j] >= '0' && p.data[j] <= '9') {
		j++
	}
	if b.Level, err = strconv.Atoi(string(p.data[p.i:j])); err != nil {
		return false
	}
	p.i = j
	switch {
	case p.lit(`,"manual":true`):
		b.Manual = true
	case p.lit(`,"manual":false`):
	default:
		return false
	}
	b.Permanent = p.lit(`,"permanent":true`)
	if p.lit(`,"origin":`) {
		if b.Origin, ok = p.str(); !ok {
			return false
		}
	}
	return p.lit("}")
}
