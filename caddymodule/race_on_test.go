//go:build race

package caddymodule

// raceEnabled: the race detector makes sync.Pool drop some of what it is
// given, so pooled things allocate now and then.
const raceEnabled = true
