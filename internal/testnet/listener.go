package testnet

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// Listener counts the connections it accepts, so that a test can show
// that a refused request made none.
type Listener struct {
	net.Listener
	accepted atomic.Int64
}

// Listen listens on network ("tcp", "tcp4", "tcp6") at addr and counts.
func Listen(network, addr string) (*Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return &Listener{Listener: ln}, nil
}

// Accept accepts and counts a connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// AssertNoConnection fails the test unless the listener accepted no
// connection. It makes one itself and waits until it is accepted: a
// listener accepts in order, so a connection made before would have been
// accepted before it.
func (l *Listener) AssertNoConnection(t testing.TB) {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for l.accepted.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the probe connection was not accepted")
		}
		time.Sleep(time.Millisecond)
	}
	if n := l.accepted.Load(); n != 1 {
		t.Errorf("%s accepted %d connections before the probe, want none", l.Addr(), n-1)
	}
}
