package testutil

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
)

func TestFreePort(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialing a reserved port nobody listens on: %v, want connection refused", err)
	}
	// Whoever binds it by number, as a config or a child process does, can listen there.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on the reserved port: %v", err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing the reserved port once listened on: %v", err)
	}
	c.Close()
}

func TestClosedPort(t *testing.T) {
	cp := ClosedPort(t)
	if _, err := net.Dial("tcp", cp.Addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialing a closed port: %v, want connection refused", err)
	}
	if l, err := net.Listen("tcp", cp.Addr); err == nil {
		l.Close()
		t.Fatal("someone else could listen on a closed port")
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	srv.Listener.Close()
	srv.Listener = cp.Listen(t)
	srv.Start()
	resp, err := http.Get("http://" + cp.Addr + "/")
	if err != nil {
		t.Fatalf("GET once it listens: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("status %d", resp.StatusCode)
	}
	srv.Close()
	if _, err := net.Dial("tcp", cp.Addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dialing after the listener closed: %v, want connection refused", err)
	}
}
