package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestLogFormatJSON: log.format json writes one JSON object a line with the same attributes as
// the text format, and an unknown format is refused naming the field.
func TestLogFormatJSON(t *testing.T) {
	var text, js bytes.Buffer
	for _, l := range []struct {
		buf    *bytes.Buffer
		format string
	}{{&text, "text"}, {&js, "json"}} {
		log, err := newLogger(l.buf, "info", l.format)
		if err != nil {
			t.Fatal(err)
		}
		log = log.With("node", "vr-utrecht")
		log.Info("node serving", "org", "vr-utrecht.crisis.test", "replica", "r1")
		log.Warn("webhooks: delivery refused", "webhook", "wh_1", "err", errors.New("webhook: address refused"))
		log.Debug("not at info")
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	textLines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if len(lines) != 2 || len(textLines) != 2 {
		t.Fatalf("json %d lines, text %d: want 2 each (debug is below info)", len(lines), len(textLines))
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, line)
		}
		for _, field := range strings.Fields(textLines[i]) {
			key, val, ok := strings.Cut(field, "=")
			if !ok {
				continue // the rest of a quoted value
			}
			got, found := m[key]
			if !found {
				t.Errorf("line %d: text has %s, json has not: %s", i, key, line)
				continue
			}
			if key != "time" && !strings.HasPrefix(strings.Trim(val, `"`), strings.Fields(strings.Trim(jsonText(got), `"`))[0]) {
				t.Errorf("line %d: %s is %v in json, %s in text", i, key, got, val)
			}
		}
	}
	if _, err := newLogger(&js, "info", "xml"); err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Fatalf("format xml: %v, want an error naming log.format", err)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
