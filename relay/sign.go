package relay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Signer signs outbound bodies per the Standard Webhooks v1 scheme
// (https://www.standardwebhooks.com): webhook-signature is
// "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>".
type Signer struct {
	key []byte
}

// ErrSecretFormat is returned for a secret that is not "whsec_<base64>".
var ErrSecretFormat = errors.New(`a Standard Webhooks secret must be "whsec_" followed by base64`)

// NewSigner parses a Standard Webhooks secret, "whsec_<base64 key>". The
// error never includes the secret.
func NewSigner(secret string) (*Signer, error) {
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, ErrSecretFormat
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, ErrSecretFormat
	}
	return &Signer{key: key}, nil
}

// Sign returns the webhook-timestamp and webhook-signature header values
// for a message id, time and body.
func (s *Signer) Sign(id string, at time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return timestamp, "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
