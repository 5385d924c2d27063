package docker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// socketPair is a real unix stream connection: the client end as the
// Docker client's dialer returns it, and the server end.
func socketPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

func pacedPair(t *testing.T) (*pacedConn, net.Conn) {
	t.Helper()
	c, server := socketPair(t)
	p, ok, err := pace(c)
	if err != nil || !ok {
		t.Fatalf("pace a unix socket: ok %v, %v", ok, err)
	}
	t.Cleanup(func() { p.Close() })
	return p, server
}

func TestPacedConnCarriesTheStream(t *testing.T) {
	p, server := pacedPair(t)
	if _, err := io.WriteString(p, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	req := make([]byte, 18)
	if _, err := io.ReadFull(server, req); err != nil || string(req) != "GET / HTTP/1.0\r\n\r\n" {
		t.Fatalf("server got %q, %v", req, err)
	}
	// Many small writes, as dockerd writes messages, then the end.
	var want bytes.Buffer
	go func() {
		for i := range 2000 {
			msg := fmt.Sprintf("message %d\n", i)
			server.Write([]byte(msg))
		}
		server.Close()
	}()
	for i := range 2000 {
		fmt.Fprintf(&want, "message %d\n", i)
	}
	got, err := io.ReadAll(p)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read %d bytes, want the %d written, in order", len(got), want.Len())
	}
	if n, err := p.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("after the end: %d, %v; want io.EOF", n, err)
	}
}

func TestPacedConnInterrupt(t *testing.T) {
	p, _ := pacedPair(t)
	// A read blocked on a silent engine ends when the stream is stopped.
	res := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 64))
		res <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it block in read(2)
	p.interrupt()
	select {
	case err := <-res:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("interrupted read: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("interrupt did not end a blocked read")
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after interrupt: %v, want net.ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Both are idempotent, and an interrupt after Close touches no
	// descriptor (its number may belong to someone else by then).
	p.interrupt()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
}

func TestPacedConnEngineGone(t *testing.T) {
	p, server := pacedPair(t)
	io.WriteString(server, "partial")
	server.Close()
	got, err := io.ReadAll(p)
	if err != nil || string(got) != "partial" {
		t.Fatalf("read %q, %v; want what was written, then the end", got, err)
	}
}

func TestPaceKeepsOtherConnections(t *testing.T) {
	// A connection that is no socket (net.Pipe) is read as it is.
	a, b := net.Pipe()
	defer b.Close()
	p, ok, err := pace(a)
	if p != nil || ok || err != nil {
		t.Fatalf("pace(net.Pipe): %v, %v, %v; want it kept as it is", p, ok, err)
	}
	go b.Write([]byte("still open"))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(a, buf); err != nil {
		t.Fatalf("the kept connection: %v", err)
	}
	a.Close()
}
