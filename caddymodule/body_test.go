package caddymodule

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads what io.ReadAll reads, whatever length is announced and
// however the reader hands the bytes out, and fails where it fails.
func TestReadAllLikeIOReadAll(t *testing.T) {
	errBoom := errors.New("boom")
	for _, size := range []int{0, 1, 511, 512, 600, 4 << 10, sizedReadMax, sizedReadMax + 1, 200 << 10} {
		body := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		readers := map[string]func() io.Reader{
			"plain":     func() io.Reader { return bytes.NewReader(body) },
			"one byte":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(body)) },
			"data+EOF":  func() io.Reader { return iotest.DataErrReader(bytes.NewReader(body)) },
			"then fail": func() io.Reader { return io.MultiReader(bytes.NewReader(body), iotest.ErrReader(errBoom)) },
		}
		for name, reader := range readers {
			want, wantErr := io.ReadAll(reader())
			for _, length := range []int64{-1, 0, int64(size) / 2, int64(size), int64(size) + 1, 1 << 30} {
				got, err := readAll(reader(), length)
				if !errors.Is(err, wantErr) || wantErr == nil && !bytes.Equal(got, want) {
					t.Errorf("%s, %d bytes, %d announced: %d bytes, %v; want %d bytes, %v", name, size, length, len(got), err, len(want), wantErr)
				}
			}
		}
	}
}

// A body of known length is read with one allocation.
func TestReadLimitedSized(t *testing.T) {
	body := strings.Repeat("x", 600)
	w := httptest.NewRecorder()
	allocs := testing.AllocsPerRun(100, func() {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		got, status, _ := readLimited(w, r, 1<<20)
		if status != 0 || string(got) != body {
			t.Fatalf("status %d, %d bytes", status, len(got))
		}
	})
	base := testing.AllocsPerRun(100, func() { httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)) })
	if n := allocs - base; n > 2 { // the buffer and the MaxBytesReader
		t.Errorf("readLimited allocates %v times for a 600-byte body", n)
	}
}
