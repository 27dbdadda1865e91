package relay

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// roundTrip answers as client.Do does for a delivery client: the same
// response, the same errors once redacted, Basic credentials of the URL.
func TestRoundTripAnswersAsClientDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/hang":
			// Read the body, so that the server notices the client
			// leaving, then hang until it does.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			user, pass, ok := r.BasicAuth()
			if ok {
				w.Header().Set("X-User", user+":"+pass)
			}
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	defer srv.Close()
	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/"
	}()
	client := NewClient()
	send := func(via func(*http.Request) (*http.Response, error), target string, timeout time.Duration) (int, string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := via(req)
		if err != nil {
			return 0, "", RedactURLError(err).Error()
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-User"), ""
	}
	userURL := strings.Replace(srv.URL, "http://", "http://ann:s3cret@", 1) + "/"
	for _, tc := range []struct {
		name, target string
		timeout      time.Duration
	}{
		{"answer", srv.URL + "/", time.Second},
		{"redirect kept", srv.URL + "/redirect", time.Second},
		{"credentials of the URL", userURL, time.Second},
		{"refused", refused, time.Second},
		{"timeout", srv.URL + "/hang", 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, wu, we := send(client.Do, tc.target, tc.timeout)
			gs, gu, ge := send(func(r *http.Request) (*http.Response, error) { return roundTrip(client, r) }, tc.target, tc.timeout)
			if gs != ws || gu != wu || ge != we {
				t.Errorf("roundTrip = (%d, %q, %q), client.Do = (%d, %q, %q)", gs, gu, ge, ws, wu, we)
			}
			if tc.name == "credentials of the URL" && gu != "ann:s3cret" {
				t.Errorf("the URL's credentials were not sent: %q", gu)
			}
			if strings.Contains(ge, "s3cret") {
				t.Errorf("error %q holds the URL's password", ge)
			}
		})
	}
}
