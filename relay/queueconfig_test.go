package relay

import (
	"errors"
	"testing"
	"time"
)

func TestQueueConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  QueueConfig
		ok   bool
	}{
		{"zero", QueueConfig{}, true},
		{"cluster with mutual TLS", QueueConfig{URLs: []string{"nats://a:4222"}, TLSCA: "ca.pem", TLSCert: "c.pem", TLSKey: "k.pem"}, true},
		{"negative sync interval", QueueConfig{SyncInterval: -time.Second}, false},
		{"negative dedupe window", QueueConfig{DedupeWindow: -1}, false},
		{"negative retention", QueueConfig{DeadLetterRetention: -1}, false},
		{"negative replicas", QueueConfig{Replicas: -1}, false},
		{"negative queue limit", QueueConfig{MaxBytes: -1}, false},
		{"negative dead-letter limit", QueueConfig{DeadLetterMaxBytes: -1}, false},
		{"cert without key", QueueConfig{TLSCert: "c.pem"}, false},
		{"key without cert", QueueConfig{TLSKey: "k.pem"}, false},
	} {
		err := c.cfg.Validate()
		if c.ok != (err == nil) || err != nil && !errors.Is(err, ErrQueueConfig) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// Open refuses a bad configuration before it starts anything.
	if _, err := Open(Options{Queue: QueueConfig{Dir: t.TempDir(), Replicas: -1}}); !errors.Is(err, ErrQueueConfig) {
		t.Errorf("Open = %v, want ErrQueueConfig", err)
	}
}
