package identitytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Log is a slog logger whose JSON records a test can inspect, to check that a refusal was
// logged with the caller's SPIFFE ID and the reason.
type Log struct {
	*slog.Logger
	mu  sync.Mutex
	buf bytes.Buffer
}

// NewLog returns a logger that keeps every record, at every level.
func NewLog() *Log {
	l := &Log{}
	l.Logger = slog.New(slog.NewJSONHandler(writerFunc(l.write), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (l *Log) write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Entry is one logged record: "msg", "level" and every attribute, by key.
type Entry map[string]any

// Str is the attribute key as text, or "".
func (e Entry) Str(key string) string {
	switch v := e[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// Entries are the records logged so far.
func (l *Log) Entries() []Entry {
	l.mu.Lock()
	data := append([]byte(nil), l.buf.Bytes()...)
	l.mu.Unlock()
	var out []Entry
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// Count is how many records with message msg match.
func (l *Log) Count(msg string, match func(Entry) bool) int {
	n := 0
	for _, e := range l.Entries() {
		if e.Str("msg") == msg && (match == nil || match(e)) {
			n++
		}
	}
	return n
}

// Refusal matches a record whose "caller" is exactly caller and whose "reason" contains every
// one of reason.
func Refusal(caller string, reason ...string) func(Entry) bool {
	return func(e Entry) bool {
		if e.Str("caller") != caller {
			return false
		}
		for _, r := range reason {
			if !strings.Contains(e.Str("reason"), r) {
				return false
			}
		}
		return true
	}
}

// Wait waits, at most within, until a record with message msg matches, and returns it. On
// failure it shows the end of the log.
func (l *Log) Wait(tb testing.TB, within time.Duration, msg string, match func(Entry) bool) Entry {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, e := range l.Entries() {
			if e.Str("msg") == msg && (match == nil || match(e)) {
				return e
			}
		}
		if time.Now().After(deadline) {
			all := l.String()
			if len(all) > 4096 {
				all = "..." + all[len(all)-4096:]
			}
			tb.Fatalf("identitytest: no matching log record %q within %s; the log:\n%s", msg, within, all)
		}
		time.Sleep(10 * time.Millisecond) // polling the log, bounded by the deadline
	}
}

// String is everything logged, for failure messages.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
