package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hookrelay/hookrelay/destination"
)

// Webhook is one registered webhook as the bucket stores it: what is not
// secret in clear, the credentials sealed.
type Webhook struct {
	// ID is the webhook's number, unique across tenants; its destination
	// is relay.WebhookName(ID).
	ID uint64 `json:"id"`
	// Tenant owns the webhook: only its API calls see it, and only
	// events stamped with it (or with no tenant) reach it.
	Tenant string `json:"tenant"`
	// Topic is a topic or a pattern ("orders/*") of the events it gets.
	Topic string `json:"topic"`
	// Address receives the events: https.
	Address string `json:"address"`
	// Filter is an optional CEL expression over the event.
	Filter string `json:"filter,omitempty"`
	// OrderBy, when set, delivers the events that share the value at this
	// path one at a time, in the order stored (relay.Destination.OrderBy).
	OrderBy string `json:"order_by,omitempty"`
	// Retry is the webhook's own schedule, within the registry's bounds;
	// nil: the registry's default.
	Retry *destination.RetryConfig `json:"retry,omitempty"`
	// Auth is the non-secret part of its authorization; nil: none.
	Auth *AuthSummary `json:"auth,omitempty"`
	// HeaderNames and ParamNames name its custom headers and params,
	// whose values are sealed.
	HeaderNames []string  `json:"header_names,omitempty"`
	ParamNames  []string  `json:"param_names,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	APIVersion  string    `json:"api_version"`
	// PreviousSecretUntil, after a rotation, is when the previous
	// signing secret stops signing.
	PreviousSecretUntil time.Time `json:"previous_secret_until,omitzero"`
	// Sealed holds the Secrets, sealed.
	Sealed []byte `json:"sealed"`
}

// AuthSummary is what the API may show of an authorization.
type AuthSummary struct {
	AuthType     string   `json:"authType"`
	AddressLogin string   `json:"addressLogin,omitempty"`
	TokenKey     string   `json:"tokenKey,omitempty"`
	ExpiresKey   string   `json:"expiresKey,omitempty"`
	TokenType    string   `json:"tokenType,omitempty"`
	HeaderNames  []string `json:"headerNames,omitempty"`
}

// Secrets is the sealed part of a webhook.
type Secrets struct {
	Authorization *Authorization `json:"authorization,omitempty"`
	Headers       Pairs          `json:"headers,omitempty"`
	Params        Pairs          `json:"params,omitempty"`
	// Secret is the Standard Webhooks signing secret (whsec_...).
	Secret string `json:"secret"`
	// PreviousSecret signs too until Webhook.PreviousSecretUntil.
	PreviousSecret string `json:"previous_secret,omitempty"`
}

// Auth types of an Authorization, as Ventiapp spells them.
const (
	AuthOAuth  = "oauth"
	AuthAPIKey = "api-key"
)

// Authorization is Ventiapp's authorization object (seed 000), as a tenant
// gives it. Null members are as absent.
type Authorization struct {
	AuthType string `json:"authType"`
	// Headers: for oauth, the login request's; for api-key, the
	// delivery's.
	Headers Pairs `json:"headers,omitempty"`
	// Params are the login URL's params (oauth).
	Params Pairs `json:"params,omitempty"`
	// AddressLogin is the token endpoint (oauth): https.
	AddressLogin string `json:"addressLogin,omitempty"`
	// Body is the login request's body (oauth): a JSON object.
	Body       json.RawMessage `json:"body,omitempty"`
	TokenKey   string          `json:"tokenKey,omitempty"`
	ExpiresKey string          `json:"expiresKey,omitempty"`
	TokenType  string          `json:"tokenType,omitempty"`
}

// Summary is the authorization without its secrets.
func (a *Authorization) Summary() *AuthSummary {
	if a == nil {
		return nil
	}
	return &AuthSummary{
		AuthType:     a.AuthType,
		AddressLogin: a.AddressLogin,
		TokenKey:     a.TokenKey,
		ExpiresKey:   a.ExpiresKey,
		TokenType:    a.TokenType,
		HeaderNames:  a.Headers.Names(),
	}
}

// Pair is one name and value.
type Pair struct {
	Name, Value string
}

// Pairs are names and values in order, in JSON an array of one-key
// objects as the seed writes them: [{"API-KEY":"x"},{"API-USER":"u"}].
// null is no pairs. A value must be a string, a number or a boolean
// (the latter two are kept as their JSON text).
type Pairs []Pair

// ErrPairs is returned for a pairs array that is not one of one-key
// objects of scalar values.
var ErrPairs = errors.New(`must be an array of one-key objects such as [{"name":"value"}]`)

// UnmarshalJSON reads [{"name":"value"}, ...] or null.
func (p *Pairs) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*p = nil
		return nil
	}
	var objs []json.RawMessage
	if err := json.Unmarshal(b, &objs); err != nil {
		return ErrPairs
	}
	out := make(Pairs, 0, len(objs))
	for _, raw := range objs {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil || len(obj) != 1 {
			return ErrPairs
		}
		for k, v := range obj {
			var s string
			switch v := v.(type) {
			case string:
				s = v
			case json.Number:
				s = v.String()
			case bool:
				s = strconv.FormatBool(v)
			default:
				return fmt.Errorf("%q %w", k, ErrPairs)
			}
			out = append(out, Pair{Name: k, Value: s})
		}
	}
	*p = out
	return nil
}

// MarshalJSON writes the seed's shape.
func (p Pairs) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("[]"), nil
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, kv := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv.Name)
		v, _ := json.Marshal(kv.Value)
		b.WriteByte('{')
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// Names returns the pairs' names, in order.
func (p Pairs) Names() []string {
	if len(p) == 0 {
		return nil
	}
	out := make([]string, len(p))
	for i, kv := range p {
		out[i] = kv.Name
	}
	return out
}

func (p Pairs) keyValues() []destination.KeyValue {
	out := make([]destination.KeyValue, len(p))
	for i, kv := range p {
		out[i] = destination.KeyValue{Name: kv.Name, Value: kv.Value}
	}
	return out
}
