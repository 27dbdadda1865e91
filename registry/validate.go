package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/destination"
	"github.com/hookrelay/hookrelay/netguard"
	"github.com/hookrelay/hookrelay/relay"
)

// FieldError is one invalid field of a webhook: a JSON pointer relative
// to the webhook object ("/address", "/authorization/addressLogin") and
// what is wrong, in English, never holding a secret value.
type FieldError struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of a create or update.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Pointer + ": " + f.Message
	}
	return "invalid webhook: " + strings.Join(parts, "; ")
}

func (e *ValidationError) add(pointer, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Pointer: pointer, Message: fmt.Sprintf(format, args...)})
}

// Limits of what a tenant may register.
const (
	maxAddress    = 2048
	maxPairs      = 32
	maxPairValue  = 4096
	maxLoginBody  = 16 << 10
	maxFilter     = 1024
	maxSchedule   = 32
	maxKeyPathLen = 256
)

// reservedHeaders are set by the relay on every delivery; a webhook may
// not set them.
var reservedHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Host": true, "Transfer-Encoding": true,
	"Connection": true, "Webhook-Id": true, "Webhook-Timestamp": true, "Webhook-Signature": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Expect": true,
}

// Input is what a create gives, and what an update changes.
type Input struct {
	Topic         string
	Address       string
	Filter        string
	OrderBy       string
	Authorization *Authorization
	Headers       Pairs
	Params        Pairs
	// Secret is the signing secret; empty: one is generated.
	Secret string
	Retry  *destination.RetryConfig
}

// check validates in against the settings' rules; every problem becomes
// one field error.
func (s *Settings) check(in *Input) *ValidationError {
	ve := &ValidationError{}
	if in.Topic == "" {
		ve.add("/topic", "is required")
	} else if err := CheckTopic(in.Topic); err != nil {
		ve.add("/topic", "%v", err)
	}
	s.checkAddress(ve, "/address", in.Address, true)
	if in.Filter != "" {
		if len(in.Filter) > maxFilter {
			ve.add("/filter", "is longer than %d bytes", maxFilter)
		} else if _, err := CompileFilter(in.Filter); err != nil {
			ve.add("/filter", "%v", err)
		}
	}
	if _, err := relay.ParseOrderBy(in.OrderBy); err != nil {
		ve.add("/order_by", "%v", err)
	}
	checkPairs(ve, "/headers", in.Headers, true, true)
	checkPairs(ve, "/params", in.Params, false, false)
	if in.Secret != "" {
		if _, err := relay.NewSigner(in.Secret); err != nil {
			ve.add("/secret", "%v", err)
		}
	}
	if in.Retry != nil {
		s.checkRetry(ve, in.Retry)
	}
	if a := in.Authorization; a != nil {
		s.checkAuth(ve, a)
	}
	if len(ve.Fields) == 0 {
		return nil
	}
	return ve
}

func (s *Settings) checkAddress(ve *ValidationError, ptr, addr string, required bool) {
	switch {
	case addr == "":
		if required {
			ve.add(ptr, "is required")
		}
		return
	case len(addr) > maxAddress:
		ve.add(ptr, "is longer than %d bytes", maxAddress)
		return
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		ve.add(ptr, "must be an absolute https URL without user info or fragment")
		return
	}
	if u.Scheme != "https" && !(s.AllowHTTP && u.Scheme == "http") {
		ve.add(ptr, "must be an https:// URL")
		return
	}
	if err := netguard.CheckLiteral(addr, s.Guard); err != nil {
		ve.add(ptr, "%v", err)
	}
}

// checkPairs checks headers (header) or params; reserved refuses the
// headers the relay sets on deliveries.
func checkPairs(ve *ValidationError, ptr string, ps Pairs, header, reserved bool) {
	if len(ps) > maxPairs {
		ve.add(ptr, "has more than %d entries", maxPairs)
		return
	}
	for i, p := range ps {
		at := fmt.Sprintf("%s/%d", ptr, i)
		switch {
		case p.Name == "":
			ve.add(at, "has an empty name")
		case len(p.Value) > maxPairValue:
			ve.add(at, "value is longer than %d bytes", maxPairValue)
		case header && relay.CheckHeader(p.Name, p.Value) != nil:
			ve.add(at, "is not a valid header (name %q)", p.Name)
		case reserved && reservedHeaders[textproto.CanonicalMIMEHeaderKey(p.Name)]:
			ve.add(at, "header %q is set by the relay and cannot be set", p.Name)
		}
	}
}

func (s *Settings) checkRetry(ve *ValidationError, rc *destination.RetryConfig) {
	if len(rc.Schedule) > maxSchedule {
		ve.add("/retry/schedule", "has more than %d steps", maxSchedule)
	}
	for i, d := range rc.Schedule {
		if time.Duration(d) < s.MinRetryDelay {
			ve.add(fmt.Sprintf("/retry/schedule/%d", i), "is shorter than the %s this relay allows", s.MinRetryDelay)
		}
	}
	if s.MaxRetryAge > 0 && time.Duration(rc.MaxAge) > s.MaxRetryAge {
		ve.add("/retry/max_age", "is longer than the %s this relay allows", s.MaxRetryAge)
	}
	if _, err := rc.Policy(); err != nil {
		ve.add("/retry", "%v", err)
	}
}

func (s *Settings) checkAuth(ve *ValidationError, a *Authorization) {
	switch a.AuthType {
	case AuthAPIKey:
		if len(a.Headers) == 0 {
			ve.add("/authorization/headers", "api-key needs at least one header")
		}
		checkPairs(ve, "/authorization/headers", a.Headers, true, true)
	case AuthOAuth:
		if a.AddressLogin == "" {
			ve.add("/authorization/addressLogin", "is required for oauth")
		} else {
			s.checkAddress(ve, "/authorization/addressLogin", a.AddressLogin, true)
		}
		checkPairs(ve, "/authorization/headers", a.Headers, true, false)
		checkPairs(ve, "/authorization/params", a.Params, false, false)
		for _, k := range []struct{ ptr, v string }{{"/authorization/tokenKey", a.TokenKey}, {"/authorization/expiresKey", a.ExpiresKey}} {
			if len(k.v) > maxKeyPathLen {
				ve.add(k.ptr, "is longer than %d bytes", maxKeyPathLen)
			}
		}
		if a.TokenType != "" && (strings.ContainsAny(a.TokenType, " \t\r\n") || relay.CheckHeader("Authorization", a.TokenType) != nil) {
			ve.add("/authorization/tokenType", "must be one word, such as Bearer")
		}
		if len(a.Body) > 0 && !bytes.Equal(bytes.TrimSpace(a.Body), []byte("null")) {
			if len(a.Body) > maxLoginBody {
				ve.add("/authorization/body", "is larger than %d bytes", maxLoginBody)
			} else if _, err := loginBody(a); err != nil {
				ve.add("/authorization/body", "%v", err)
			}
		}
	case "":
		ve.add("/authorization/authType", `is required: "oauth" or "api-key"`)
	default:
		ve.add("/authorization/authType", `must be "oauth" or "api-key"`)
	}
}

// loginBody says how an oauth authorization's body is sent: form pairs
// when its login headers ask for a form (every value must then be a
// scalar), or the JSON object as it is.
func loginBody(a *Authorization) (form []destination.KeyValue, err error) {
	if len(a.Body) == 0 || bytes.Equal(bytes.TrimSpace(a.Body), []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(a.Body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, fmt.Errorf("must be a JSON object")
	}
	if !formLogin(a) {
		return nil, nil
	}
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			form = append(form, destination.KeyValue{Name: k, Value: v})
		case json.Number:
			form = append(form, destination.KeyValue{Name: k, Value: v.String()})
		case bool:
			form = append(form, destination.KeyValue{Name: k, Value: fmt.Sprint(v)})
		default:
			return nil, fmt.Errorf("member %q is not a string or number, and the login's Content-Type is a form", k)
		}
	}
	return form, nil
}

// formLogin reports whether the login headers ask for a form body.
func formLogin(a *Authorization) bool {
	for _, h := range a.Headers {
		if textproto.CanonicalMIMEHeaderKey(h.Name) == "Content-Type" {
			return strings.Contains(strings.ToLower(h.Value), "x-www-form-urlencoded")
		}
	}
	return false
}
