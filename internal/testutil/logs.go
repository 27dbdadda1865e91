package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// LogEntry is one JSON line of a Caddy log file.
type LogEntry struct {
	Level  string `json:"level"`
	Logger string `json:"logger"`
	Msg    string `json:"msg"`
}

// ReadLog returns the entries of a JSON log file written so far; none when
// the file does not exist yet.
func ReadLog(t testing.TB, path string) []LogEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var entries []LogEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e LogEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			entries = append(entries, e)
		}
	}
	return entries
}

// Logged returns the entries of a JSON log file that logger wrote with a
// message containing msg.
func Logged(t testing.TB, path, logger, msg string) []LogEntry {
	t.Helper()
	var out []LogEntry
	for _, e := range ReadLog(t, path) {
		if e.Logger == logger && strings.Contains(e.Msg, msg) {
			out = append(out, e)
		}
	}
	return out
}
