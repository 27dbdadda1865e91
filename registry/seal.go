package registry

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sealer seals and opens webhooks' credentials with AES-256-GCM. It may
// hold older keys, which open what they sealed while a key is rotated;
// the first key seals.
type Sealer struct {
	keys []sealKey
}

type sealKey struct {
	id   [4]byte // first bytes of the key's SHA-256: which key sealed a blob
	aead cipher.AEAD
}

// sealVersion starts every sealed blob: version, key id, nonce, sealed data.
const sealVersion = 1

// ErrSealKey is returned for a seal key that is not 32 bytes in base64.
var ErrSealKey = errors.New("a seal key is 32 random bytes in standard base64 (openssl rand -base64 32)")

// ErrUnseal is returned when a blob cannot be opened: sealed under a key
// the Sealer does not hold, for another webhook, or damaged.
var ErrUnseal = errors.New("the webhook's credentials cannot be opened with the configured seal keys")

// NewSealer parses base64 keys; the first seals, every one opens. The
// errors never hold a key.
func NewSealer(keys ...string) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, ErrSealKey
	}
	s := &Sealer{}
	for i, k := range keys {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("seal key %d: %w", i+1, ErrSealKey)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("seal key %d: %w", i+1, ErrSealKey)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(raw)
		var sk sealKey
		copy(sk.id[:], sum[:4])
		sk.aead = aead
		s.keys = append(s.keys, sk)
	}
	return s, nil
}

// Seal encrypts plain, bound to aad (a webhook's tenant and id), so that
// a blob moved to another webhook does not open.
func (s *Sealer) Seal(plain, aad []byte) ([]byte, error) {
	k := s.keys[0]
	out := make([]byte, 5, 5+k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	out[0] = sealVersion
	copy(out[1:5], k.id[:])
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plain, aad), nil
}

// Open decrypts a blob made by Seal with one of the Sealer's keys.
func (s *Sealer) Open(blob, aad []byte) ([]byte, error) {
	if len(blob) < 5 || blob[0] != sealVersion {
		return nil, ErrUnseal
	}
	for _, k := range s.keys {
		if [4]byte(blob[1:5]) != k.id {
			continue
		}
		ns := k.aead.NonceSize()
		if len(blob) < 5+ns {
			return nil, ErrUnseal
		}
		plain, err := k.aead.Open(nil, blob[5:5+ns], blob[5+ns:], aad)
		if err != nil {
			return nil, ErrUnseal
		}
		return plain, nil
	}
	return nil, ErrUnseal
}

// Sealed reports whether the newest key sealed blob; a blob sealed under
// an older key is sealed again when its webhook next changes.
func (s *Sealer) Sealed(blob []byte) bool {
	return len(blob) >= 5 && [4]byte(blob[1:5]) == s.keys[0].id
}
