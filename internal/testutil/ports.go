package testutil

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 reserved for the test until it
// ends: a socket bound to it, which does not listen, holds it. Connections
// to it are refused until someone listens there. A program that binds the
// port by number with SO_REUSEADDR (every Go program, so Caddy and
// nats-server; net.Listen in the test itself) can listen on it, so the port
// can be written into a config or handed to a child process; meanwhile the
// OS never hands it out to someone asking for any free port, as it could a
// port that was merely free a moment ago.
//
// For an address that must refuse connections for the whole test, use
// ClosedPort: nothing else can listen there.
func FreePort(t testing.TB) int {
	t.Helper()
	return holdPort(t, true).port
}

// Closed is a TCP address on 127.0.0.1 that refuses connections: the test
// holds a socket bound to it that does not listen, and no other socket can
// be bound to it, so nothing else can start listening there by chance.
type Closed struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	// Port is its port.
	Port int
	h    *held
}

// ClosedPort returns an address that refuses connections until the test
// calls its Listen, and is released when the test ends.
func ClosedPort(t testing.TB) *Closed {
	t.Helper()
	h := holdPort(t, false)
	return &Closed{Addr: fmt.Sprintf("127.0.0.1:%d", h.port), Port: h.port, h: h}
}

// Listen starts listening on the address (the same socket, so the port
// cannot have been taken meanwhile) and returns the listener, which the
// caller closes (an httptest.Server that takes it does).
func (c *Closed) Listen(t testing.TB) net.Listener {
	t.Helper()
	if err := syscall.Listen(c.h.fd, syscall.SOMAXCONN); err != nil {
		t.Fatalf("listening on %s: %v", c.Addr, err)
	}
	f := os.NewFile(uintptr(c.h.fd), c.Addr)
	l, err := net.FileListener(f) // dups the descriptor
	if err != nil {
		t.Fatalf("listening on %s: %v", c.Addr, err)
	}
	// The listener owns the socket now: closing it stops the listening.
	c.h.released = true
	f.Close()
	return l
}

type held struct {
	fd       int
	port     int
	released bool // the descriptor was handed on; the cleanup leaves it
}

// holdPort binds a socket to a port of 127.0.0.1 the OS picks, without
// listening, and closes it when the test ends. With reuse, other sockets
// with SO_REUSEADDR may still bind the port and listen there.
func holdPort(t testing.TB, reuse bool) *held {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("reserving a port: %v", err)
	}
	syscall.CloseOnExec(fd)
	fail := func(err error) {
		syscall.Close(fd)
		t.Fatalf("reserving a port: %v", err)
	}
	if reuse {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			fail(err)
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		fail(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		fail(err)
	}
	h := &held{fd: fd, port: sa.(*syscall.SockaddrInet4).Port}
	t.Cleanup(func() {
		if !h.released {
			syscall.Close(fd)
		}
	})
	return h
}
