package dynamic

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/testutil"
)

// TestDeunaDynamicExampleRuns runs examples/deuna-dynamic as it is
// shipped, on this package's ports: each merchant registers its webhook
// from the example's JSON file (with its demo token, in merchant_token)
// and executes it over the example's orders; the merchants are the stubs
// the same Caddy serves, over plain http on loopback. try.sh does the
// same with curl.
func TestDeunaDynamicExampleRuns(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "deuna-dynamic"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(dir, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	try := string(example(t, "try.sh"))

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("HOOKRELAY_SEAL_KEY", base64.StdEncoding.EncodeToString(key))
	for _, v := range []string{"KFC_WEB_TOKEN", "KFC_VE_TOKEN", "WOW_TOKEN"} {
		testutil.UnsetEnv(t, v)
	}

	shops := testutil.FreePort(t)
	move := strings.NewReplacer(
		"admin localhost:2019", fmt.Sprintf("admin %s\n\thttp_port %d\n\thttps_port %d", caddyAt.AdminAddr(), caddyAt.HTTPPort, caddyAt.HTTPSPort),
		"storage embedded", "storage embedded "+queueDir(t),
		":8080 {", fmt.Sprintf(":%d {", caddyAt.HTTPPort),
		"127.0.0.1:8084", fmt.Sprintf("127.0.0.1:%d", shops),
	)
	caddyfile := move.Replace(string(src))
	for _, line := range strings.Split(caddyfile, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, moved := range []string{"localhost:2019", ":8080", ":8084"} {
			if strings.Contains(line, moved) {
				t.Fatalf("the example still holds %q after moving it to this package's ports:\n%s", moved, caddyfile)
			}
		}
	}
	caddyAt.Load(t, caddyAt.NewTester(t), caddyfile)

	for _, c := range []struct {
		merchant merchant
		file     string
		event    string
		orders   map[string]string // order file → the answer
	}{
		{merchant{id: "kfc-web", token: "kfc-web-demo-token"}, "kfc-web-tip.json", "set_tip", map[string]string{
			"order-kfc-web.json": `{"order":{"custom_fields":{"tip":"1.20"},"order_id":"A1","total":"11.30"}}`,
		}},
		{merchant{id: "kfc-ve", token: "kfc-ve-demo-token"}, "kfc-venezuela-tax.json", "cash_tax", map[string]string{
			"order-kfc-venezuela-cash.json": `{"order":{"custom_fields":{"tax":"1.00"},"order_id":"V-7","payment_method":"CASH","total":"34.33"}}`,
			"order-kfc-venezuela-card.json": `{"order":{"order_id":"V-8","payment_method":"CARD","total":"33.33"}}`,
		}},
		{merchant{id: "wow", token: "wow-demo-token"}, "wow-points.json", "pay_with_points", map[string]string{
			"order-wow.json": `{"order":{"custom_fields":{"points_amount":"5.00","points_used":500},"order_id":"W-1","total":"5.10"}}`,
		}},
	} {
		t.Run(c.event, func(t *testing.T) {
			if !strings.Contains(try, "@$DIR/"+c.file+` "$API/`+c.merchant.id+`/webhooks"`) {
				t.Errorf("try.sh does not register %s as %s", c.file, c.merchant.id)
			}
			reg := move.Replace(string(example(t, c.file)))
			whsec := c.merchant.register(t, reg, http.StatusCreated)
			for file, want := range c.orders {
				if !strings.Contains(try, "@$DIR/"+file+` "$API/`+c.merchant.id+"/webhooks/"+c.event+`/execute"`) {
					t.Errorf("try.sh does not execute %s over %s", c.event, file)
				}
				got := c.merchant.mustExecute(t, c.event, whsec, example(t, file))
				if string(got) != want {
					t.Errorf("%s over %s answered %s, want %s", c.event, file, got, want)
				}
			}
		})
	}
}
