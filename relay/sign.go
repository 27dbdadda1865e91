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
//
// During a secret's rotation a Signer holds the previous secret too,
// until its grace period ends, and every delivery carries both
// signatures, space-separated, as the scheme allows: receivers that still
// hold the old secret keep verifying while they switch.
type Signer struct {
	key []byte
	// prev is the previous secret's key, signed with until prevUntil.
	prev      []byte
	prevUntil time.Time
}

// ErrSecretFormat is returned for a secret that is not "whsec_<base64>".
var ErrSecretFormat = errors.New(`a Standard Webhooks secret must be "whsec_" followed by base64`)

// NewSigner parses a Standard Webhooks secret, "whsec_<base64 key>". The
// error never includes the secret.
func NewSigner(secret string) (*Signer, error) {
	key, err := secretKey(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key}, nil
}

// WithPrevious returns a Signer that also signs with the previous secret
// until the given time (the end of a rotation's grace period).
func (s *Signer) WithPrevious(secret string, until time.Time) (*Signer, error) {
	key, err := secretKey(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{key: s.key, prev: key, prevUntil: until}, nil
}

func secretKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, ErrSecretFormat
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, ErrSecretFormat
	}
	return key, nil
}

// Sign returns the webhook-timestamp and webhook-signature header values
// for a message id, time and body.
func (s *Signer) Sign(id string, at time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(at.Unix(), 10)
	signature = sign(s.key, id, timestamp, body)
	if s.prev != nil && at.Before(s.prevUntil) {
		signature += " " + sign(s.prev, id, timestamp, body)
	}
	return timestamp, signature
}

func sign(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
