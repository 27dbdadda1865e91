package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/authcache"
	"github.com/hookrelay/hookrelay/netguard"
	"github.com/hookrelay/hookrelay/registry"
	"github.com/hookrelay/hookrelay/relay"
)

// unstorableKV is a registry bucket that holds nothing and stores nothing:
// a create that passes validation fails as the bucket being unavailable,
// so the registry's own checks run on whatever the decoders accept.
type unstorableKV struct {
	jetstream.KeyValue // any other method is not called; it would panic
}

func (unstorableKV) WatchAll(context.Context, ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w := &noWatcher{ch: make(chan jetstream.KeyValueEntry, 1)}
	w.ch <- nil // the end of the (no) initial values
	return w, nil
}

func (unstorableKV) Create(context.Context, string, []byte, ...jetstream.KVCreateOpt) (uint64, error) {
	return 0, errors.New("this bucket stores nothing")
}

type noWatcher struct{ ch chan jetstream.KeyValueEntry }

func (w *noWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.ch }
func (w *noWatcher) Stop() error                             { return nil }

// noEngine runs nothing.
type noEngine struct{}

func (noEngine) Put(*relay.Destination) error         { return nil }
func (noEngine) Remove(string)                        {}
func (noEngine) Forget(context.Context, string) error { return nil }

// fuzzRegistry opens a registry on unstorableKV with the settings a
// webhooks block gives by default: a seal key, the guard with no network
// allowed, a 10s minimum retry step and a 30-day maximum age.
func fuzzRegistry(f *testing.F) *registry.Registry {
	f.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		f.Fatal(err)
	}
	sealer, err := registry.NewSealer(base64.StdEncoding.EncodeToString(key))
	if err != nil {
		f.Fatal(err)
	}
	guard := netguard.New(nil)
	client := netguard.NewClient(guard, netguard.ClientOptions{})
	tokens, err := authcache.NewCache(0, client)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(tokens.Close)
	reg, err := registry.Open(context.Background(), unstorableKV{}, noEngine{}, registry.Settings{
		Sealer:        sealer,
		Guard:         guard,
		Client:        client,
		Tokens:        tokens,
		MinRetryDelay: registry.DefaultMinRetryDelay,
		MaxRetryAge:   DefaultMaxRetryAge,
	}, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(reg.Close)
	return reg
}

// envelopeStatuses are the statuses the API's envelope answers with.
var envelopeStatuses = map[int]bool{400: true, 401: true, 404: true, 405: true, 409: true, 413: true, 422: true, 503: true}

// FuzzWebhooksAPIDecode feeds any body to the API's decoders (Ventiapp's
// create and delete through the lenient pre-pass, the native create and
// merge patch strictly), then what they accept to the registry's
// validation. Nothing panics, and every refusal is an envelope status
// with at least one problem: 400 for a body that is not a JSON object,
// 422 with a JSON pointer on every entry for the members, never 500.
func FuzzWebhooksAPIDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "ventiapp", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for op := range byte(4) {
			f.Add(op, b)
		}
	}
	for _, s := range []string{
		`{"topic":"orders/created","address":"https://whatever.hostname.com/"}`,
		`{"topic":"orders/*","address":"https://whatever.hostname.com/","filter":"data.total > 100","headers":[{"X-A":"1"}],"params":[{"p":2}],"retry":{"schedule":["1m",60000000000],"max_age":"30d","on_4xx":"retry"}}`,
		`{"topic":null,"address":null,"secret":null,"retry":{"schedule":null}}`,
		`{"authorization":{"authType":"oauth","addressLogin":"https://127.0.0.1/","body":{"a":[1]},"headers":[{"Content-Type":"application/x-www-form-urlencoded"}]}}`,
		`{"webhook":{"id":1e3}}`, `{"webhook":{"id":18446744073709551616}}`, `{"webhook":null}`,
		`{"a":1}/**/`, `[`, `"\ud800"`, `{"topic":"\u0000"}`,
	} {
		for op := range byte(4) {
			f.Add(op, []byte(s))
		}
	}
	reg := fuzzRegistry(f)
	api := &WebhooksAPI{log: zap.NewNop()}
	f.Fuzz(func(t *testing.T, op byte, body []byte) {
		var fail *apiFailure
		var in registry.Input
		at := ""
		switch op % 4 {
		case 0:
			in, fail = decodeVentiappCreate(body)
			at = "/webhook"
		case 1:
			var id uint64
			id, fail = decodeVentiappDelete(body)
			if fail == nil && id == 0 {
				t.Fatal("a delete of id 0")
			}
		case 2:
			in, fail = decodeNativeCreate(body)
		case 3:
			var change func(*registry.Input)
			change, fail = decodeNativePatch(body)
			if fail == nil {
				in = registry.Input{Topic: "orders/created", Address: "https://whatever.hostname.com/"}
				change(&in)
			}
		}
		if fail != nil {
			checkFailure(t, fail)
			return
		}
		if op%4 == 1 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _, err := reg.Create(ctx, "tenant", in)
		if err == nil {
			t.Fatal("the unstorable bucket stored a webhook")
		}
		rf := api.registryFailure(err, at)
		checkFailure(t, rf)
		if rf.status != http.StatusUnprocessableEntity && rf.status != http.StatusServiceUnavailable {
			t.Fatalf("the registry answered %d: %v", rf.status, err)
		}
		if rf.status == http.StatusUnprocessableEntity {
			for _, p := range rf.problems {
				if !strings.HasPrefix(p.pointer, at+"/") {
					t.Fatalf("pointer %q outside %q", p.pointer, at)
				}
			}
		}
	})
}

// checkFailure checks a refusal: an envelope status, at least one
// problem, every problem with a detail, every 422 problem with a pointer
// and every 400 without one, and an envelope that encodes.
func checkFailure(t *testing.T, f *apiFailure) {
	t.Helper()
	if !envelopeStatuses[f.status] || len(f.problems) == 0 {
		t.Fatalf("refused with %d and %d problems", f.status, len(f.problems))
	}
	for _, p := range f.problems {
		if p.detail == "" {
			t.Fatal("a problem without a detail")
		}
		switch f.status {
		case http.StatusUnprocessableEntity:
			if !strings.HasPrefix(p.pointer, "/") {
				t.Fatalf("a 422 problem with pointer %q: %s", p.pointer, p.detail)
			}
		case http.StatusBadRequest:
			if p.pointer != "" {
				t.Fatalf("a 400 problem with pointer %q", p.pointer)
			}
		}
	}
	if status, _ := errorBody(f.status, f.problems...); status != f.status {
		t.Fatalf("the envelope of %d does not encode", f.status)
	}
}
