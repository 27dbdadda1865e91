package call

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	// The Caddyfile adapter.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// TestExamplesAdapt adapts every examples/*/Caddyfile and compares the
// result with the Caddyfile.json committed beside it, so the two never
// drift. Regenerate one from the repository root with
//
//	go run ./cmd/caddy adapt --config examples/<name>/Caddyfile --pretty > examples/<name>/Caddyfile.json
func TestExamplesAdapt(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d example Caddyfiles, want at least deuna-tip and ave-erp", len(files))
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, file := range files {
		name := filepath.Base(filepath.Dir(file))
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got, warnings, err := adapter.Adapt(src, map[string]any{"filename": file})
			if err != nil {
				t.Fatalf("adapting %s: %v", file, err)
			}
			for _, w := range warnings {
				t.Errorf("adapting %s: warning: %s", file, w.String())
			}
			want, err := os.ReadFile(file + ".json")
			if err != nil {
				t.Fatalf("%v (generate it with caddy adapt)", err)
			}
			var g, w bytes.Buffer
			if err := json.Indent(&g, got, "", "\t"); err != nil {
				t.Fatal(err)
			}
			if err := json.Indent(&w, want, "", "\t"); err != nil {
				t.Fatalf("%s.json is not JSON: %v", file, err)
			}
			if !bytes.Equal(bytes.TrimSpace(g.Bytes()), bytes.TrimSpace(w.Bytes())) {
				t.Errorf("%s.json is out of date; regenerate it with\n"+
					"go run ./cmd/caddy adapt --config examples/%s/Caddyfile --pretty > examples/%s/Caddyfile.json\ngot:\n%s",
					file, name, name, g.String())
			}
		})
	}
}
