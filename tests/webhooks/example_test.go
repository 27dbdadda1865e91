package webhooks

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestWebhooksExampleRuns runs examples/webhooks as it is shipped, on this
// package's ports: the create request of its try.sh registers a webhook
// with an OAuth authorization, a hub event is relayed to it, and the
// tenant's receiver (which answers 401 without the token its login
// endpoint hands out) takes it.
func TestWebhooksExampleRuns(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "webhooks"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	try, err := os.ReadFile(filepath.Join(dir, "try.sh"))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("HOOKRELAY_SEAL_KEY", base64.StdEncoding.EncodeToString(key))
	t.Setenv("HOOKRELAY_DEV_SECRET", "")
	t.Setenv("ACME_API_TOKEN", "")

	const hub, app = 9784, 9785
	move := strings.NewReplacer(
		"admin localhost:2019", fmt.Sprintf("admin %s\n\thttp_port %d\n\thttps_port %d", caddyAt.AdminAddr(), caddyAt.HTTPPort, caddyAt.HTTPSPort),
		"storage embedded", "storage embedded "+queueDir(t),
		":8080 {", fmt.Sprintf(":%d {", hub),
		"127.0.0.1:8083", fmt.Sprintf("127.0.0.1:%d", app),
	)
	caddyfile := move.Replace(string(src))
	for _, line := range strings.Split(caddyfile, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, moved := range []string{"localhost:2019", ":8080", ":8083"} {
			if strings.Contains(line, moved) {
				t.Fatalf("the example still holds %q after moving it to this package's ports:\n%s", moved, caddyfile)
			}
		}
	}
	tc := caddyAt.NewTester(t)
	caddyAt.Load(t, tc, caddyfile)

	// try.sh's create request, as it is written.
	_, rest, ok := strings.Cut(string(try), "--data '")
	body, _, ok2 := strings.Cut(rest, "' \"$API/api/webhooks/create\"")
	if !ok || !ok2 {
		t.Fatal("try.sh no longer holds its create request")
	}
	body = move.Replace(body)
	base := fmt.Sprintf("http://127.0.0.1:%d", hub)
	header := http.Header{"Authorization": {"Bearer acme-demo-token"}, "Content-Type": {"application/json"}}
	status, resp := testutil.Post(t, base+"/api/webhooks/create", header, []byte(body))
	if status != http.StatusOK {
		t.Fatalf("create: %d %s", status, resp)
	}
	var created struct {
		Webhook struct {
			ID uint64 `json:"id"`
		} `json:"webhook"`
	}
	if err := json.Unmarshal(resp, &created); err != nil || created.Webhook.ID == 0 {
		t.Fatalf("create answered %s", resp)
	}

	ave, err := os.ReadFile(filepath.Join(dir, "..", "ave-tracking.json"))
	if err != nil {
		t.Fatal(err)
	}
	token := testutil.HS256(t, "hookrelay-development-secret-change-me", nil)
	status, resp = testutil.Post(t, base+"/webhooks/ave", http.Header{"Ave-Hub-signature": {token}}, ave)
	if status != http.StatusCreated {
		t.Fatalf("hub event: %d %s", status, resp)
	}

	name := webhookName(created.Webhook.ID)
	testutil.WaitFor(t, 15*time.Second, "the example's webhook to take the event", func() bool {
		_, b := admin(t, http.MethodGet, "/hookrelay/destinations/"+name, "")
		var st struct {
			LastStatus int `json:"last_status"`
		}
		return json.Unmarshal(b, &st) == nil && st.LastStatus == http.StatusOK
	})
	if dl := deadLetters(t, name); len(dl) != 0 {
		t.Fatalf("the example's webhook dead-lettered: %+v", dl)
	}
}
