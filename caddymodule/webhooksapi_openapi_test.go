package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"go.yaml.in/yaml/v3"
)

// openAPICheck is an http.RoundTripper that checks every exchange against
// the API's OpenAPI document: the answer must be documented for its
// operation and status and match its schema, and a request the document
// refuses must not be answered with a success. A mismatch fails the
// exchange (the client gets an error), and so the test. It keeps every
// answer's body, for the tests that look for secrets in them.
type openAPICheck struct {
	base   http.RoundTripper
	doc    *openapi3.T
	router routers.Router

	mu      sync.Mutex
	bodies  [][]byte
	checked int
}

// newOpenAPICheck loads and validates the document the API served.
func newOpenAPICheck(t *testing.T, docJSON []byte, base http.RoundTripper) *openAPICheck {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(docJSON)
	if err != nil {
		t.Fatalf("loading the served OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served OpenAPI document is not valid: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("the document is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &openAPICheck{base: base, doc: doc, router: router}
}

func (c *openAPICheck) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	c.mu.Lock()
	c.bodies = append(c.bodies, respBody)
	c.checked++
	c.mu.Unlock()
	if err := c.check(req, reqBody, resp, respBody); err != nil {
		return nil, fmt.Errorf("%s %s answered %d %s: does not match the OpenAPI document: %w",
			req.Method, req.URL.Path, resp.StatusCode, respBody, err)
	}
	return resp, nil
}

// credentialPresent is the document's security schemes as a client sees
// them: a request that carries no Bearer credential does not satisfy
// bearer, one without a merchant_token header does not satisfy
// merchantToken.
func credentialPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	header := in.RequestValidationInput.Request.Header
	switch s := in.SecurityScheme; {
	case s.Type == "http" && s.Scheme == "bearer":
		h := header.Get("Authorization")
		if len(h) <= len("bearer ") || !strings.EqualFold(h[:len("bearer ")], "bearer ") {
			return errors.New("no Bearer credential")
		}
		return nil
	case s.Type == "apiKey" && s.In == "header":
		// By any case: a client may send merchant_token as it is, which
		// is not the canonical form Header.Get looks for.
		for k, v := range header {
			if strings.EqualFold(k, s.Name) && len(v) > 0 && strings.TrimSpace(v[0]) != "" {
				return nil
			}
		}
		return fmt.Errorf("no %s header", s.Name)
	}
	return fmt.Errorf("security scheme %s of type %s is not known to the check", in.SecuritySchemeName, in.SecurityScheme.Type)
}

func (c *openAPICheck) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	ctx := context.Background()
	body := reqBody
	if strings.Contains(req.URL.Path, "/api/webhooks/") && body != nil {
		// Ventiapp's bodies may carry comments and trailing commas,
		// which the document describes as removed: check what the API
		// decodes, after the same pre-pass.
		if lb, err := lenientJSON(body); err == nil {
			body = lb
		}
	}
	vreq := req.Clone(ctx)
	vreq.Body = io.NopCloser(bytes.NewReader(body))
	vreq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	vreq.ContentLength = int64(len(body))
	route, params, err := c.router.FindRoute(vreq)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		// Not a path of the document: 404 in the envelope (or 401 for a
		// caller without a credential, who learns nothing of the paths).
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("a path the document does not have answered %d", resp.StatusCode)
		}
		return c.envelope(respBody)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		switch resp.StatusCode {
		case http.StatusMethodNotAllowed:
			if resp.Header.Get("Allow") == "" {
				return errors.New("a 405 without Allow")
			}
		case http.StatusUnauthorized:
		default:
			return fmt.Errorf("a method the document does not have answered %d", resp.StatusCode)
		}
		return c.envelope(respBody)
	case err != nil:
		return err
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    vreq,
		PathParams: params,
		Route:      route,
		Options:    &openapi3filter.Options{AuthenticationFunc: credentialPresent, MultiError: true},
	}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && resp.StatusCode < 400 {
		return fmt.Errorf("the API accepted a request the document refuses: %w", reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(respBody)
	return openapi3filter.ValidateResponse(ctx, out)
}

// envelope checks an answer outside the document's operations against
// the error envelope's schema.
func (c *openAPICheck) envelope(body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	return c.doc.Components.Schemas["ErrorEnvelope"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

// answers returns the bodies of every answer so far.
func (c *openAPICheck) answers() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.bodies...)
}

// count returns how many exchanges were checked.
func (c *openAPICheck) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checked
}

// TestOpenAPIDocument: the embedded document renders for any prefix, in
// YAML and in JSON that say the same (anchors and merge keys expanded),
// and is a valid OpenAPI 3.1 document whose error responses are the
// envelope writeErrors writes.
func TestOpenAPIDocument(t *testing.T) {
	for _, prefix := range []string{"", "/hooks", `/a "quoted" path`} {
		y, j, err := openAPIDocument(prefix)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := openapi3.NewLoader().LoadFromData(j)
		if err != nil {
			t.Fatal(err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		want := prefix
		if want == "" {
			want = "/"
		}
		if len(doc.Servers) != 1 || doc.Servers[0].URL != want {
			t.Errorf("prefix %q: servers %v", prefix, doc.Servers)
		}
		// The YAML says what the JSON says.
		var fromYAML, fromJSON any
		if err := yaml.Unmarshal(y, &fromYAML); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j, &fromJSON); err != nil {
			t.Fatal(err)
		}
		yj, err := json.Marshal(fromYAML)
		if err != nil {
			t.Fatal(err)
		}
		jj, _ := json.Marshal(fromJSON)
		if !bytes.Equal(yj, jj) {
			t.Errorf("prefix %q: the YAML and the JSON differ", prefix)
		}
	}

	// Every error status the API answers is described by the envelope,
	// with and without a pointer.
	_, j, _ := openAPIDocument("")
	doc, _ := openapi3.NewLoader().LoadFromData(j)
	env := doc.Components.Schemas["ErrorEnvelope"].Value
	for _, status := range []int{400, 401, 404, 405, 409, 413, 422, 500, 503} {
		_, body := errorBody(status, problem{detail: "d"}, problem{detail: "e", pointer: "/webhook/topic"})
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		if err := env.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("%d: %s does not match the envelope's schema: %v", status, body, err)
		}
	}
	// Each operation documents the statuses it can answer.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Responses.Status(405) == nil {
				t.Errorf("%s %s does not document 405", method, path)
			}
			if strings.HasPrefix(path, "/openapi.") {
				continue
			}
			for _, s := range []int{401, 503} {
				if op.Responses.Status(s) == nil {
					t.Errorf("%s %s does not document %d", method, path, s)
				}
			}
			if op.RequestBody != nil {
				for _, s := range []int{400, 413, 422} {
					if op.Responses.Status(s) == nil {
						t.Errorf("%s %s takes a body but does not document %d", method, path, s)
					}
				}
			}
		}
	}
}
