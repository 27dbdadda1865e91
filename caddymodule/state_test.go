package caddymodule

import (
	"errors"
	"testing"
)

// TestRuntimeStateRunningEngine: the running engine is that of the most
// recently started app that has not stopped, across the overlaps of a
// reload and a reload that fails to start.
func TestRuntimeStateRunningEngine(t *testing.T) {
	e1, e2 := &pooledEngine{}, &pooledEngine{}
	type step struct {
		op   string // start or stop
		app  int    // 1 or 2
		want *pooledEngine
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"one config", []step{{"start", 1, e1}, {"stop", 1, nil}}},
		{"reload: new starts, then old stops", []step{{"start", 1, e1}, {"start", 2, e2}, {"stop", 1, e2}, {"stop", 2, nil}}},
		{"failed reload: new stops, old runs on", []step{{"start", 1, e1}, {"start", 2, e2}, {"stop", 2, e1}}},
		{"new never started", []step{{"start", 1, e1}, {"stop", 2, e1}}},
		{"restarted app is the newest again", []step{{"start", 1, e1}, {"start", 2, e2}, {"start", 1, e1}, {"stop", 1, e2}}},
		{"stop twice", []step{{"start", 1, e1}, {"stop", 1, nil}, {"stop", 1, nil}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := newRuntimeState()
			if got := rs.engine(); got != nil {
				t.Fatalf("engine before any start = %p, want nil", got)
			}
			apps := map[int]*App{1: {engine: e1}, 2: {engine: e2}}
			for i, s := range c.steps {
				if s.op == "start" {
					rs.start(apps[s.app])
				} else {
					rs.stop(apps[s.app])
				}
				if got := rs.engine(); got != s.want {
					t.Fatalf("after step %d (%s app %d): engine %p, want %p", i, s.op, s.app, got, s.want)
				}
			}
		})
	}
}

// TestRuntimeStateAcquire: the first acquire of a queue opens its engine,
// the next ones share it, and a failed open leaves nothing behind.
func TestRuntimeStateAcquire(t *testing.T) {
	rs := newRuntimeState()
	opened := 0
	eng := &pooledEngine{}
	open := func() (*pooledEngine, error) {
		opened++
		return eng, nil
	}
	got, loaded, err := rs.acquire("q", open)
	if err != nil || got != eng || loaded {
		t.Fatalf("first acquire = %p, %v, %v; want the new engine, not loaded", got, loaded, err)
	}
	got, loaded, err = rs.acquire("q", open)
	if err != nil || got != eng || !loaded || opened != 1 {
		t.Fatalf("second acquire = %p, %v, %v (opened %d); want the same engine, loaded, opened once", got, loaded, err, opened)
	}
	if err := rs.release("q"); err != nil {
		t.Fatal(err)
	}

	boom := errors.New("boom")
	if _, _, err := rs.acquire("bad", func() (*pooledEngine, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("failed open: %v, want %v", err, boom)
	}
	got, loaded, err = rs.acquire("bad", open)
	if err != nil || got != eng || loaded {
		t.Fatalf("acquire after a failed open = %p, %v, %v; want a fresh open", got, loaded, err)
	}
}
