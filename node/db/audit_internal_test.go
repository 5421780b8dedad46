package db

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// marshalCanonical is the canonical encoding as it was first written: json.Marshal of the struct.
func marshalCanonical(e *AuditEntry) []byte {
	b, _ := json.Marshal(struct {
		Seq     int64  `json:"seq"`
		At      int64  `json:"at"`
		Actor   string `json:"actor"`
		Action  string `json:"action"`
		Subject string `json:"subject"`
		Detail  string `json:"detail"`
	}{e.Seq, e.At.UnixNano(), e.Actor, e.Action, e.Subject, e.Detail})
	return b
}

var canonicalStrings = []string{
	"", "plain", `"quoted"`, `back\slash`, "<script>&amp;</script>", "\x00\x01\x1f\x7f", "\b\f\n\r\t",
	"é ß 中文 😀", "\u2028\u2029", "\xff", "a\xc3", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	`{"policies":["p@1"],"recipient":"ncc.crisis.test","version":3,"via":"Query"}`,
}

// TestCanonicalIsJSON holds the hand-built canonical encoding to json.Marshal's, on strings that
// every escaping rule of encoding/json touches: a byte of difference would make every entry
// written from now on fail `audit verify` under an older build, and the reverse.
func TestCanonicalIsJSON(t *testing.T) {
	for _, s := range canonicalStrings {
		for _, seq := range []int64{0, 1, -7, 1 << 62} {
			e := &AuditEntry{Seq: seq, At: time.Unix(0, seq*1000+17), Actor: s, Action: "a" + s, Subject: s + "z", Detail: s}
			if got, want := e.appendCanonical(nil), marshalCanonical(e); !bytes.Equal(got, want) {
				t.Errorf("canonical of %q:\n got %s\nwant %s", s, got, want)
			}
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range canonicalStrings {
		f.Add(int64(1), int64(2), s, s)
	}
	f.Fuzz(func(t *testing.T, seq, at int64, subject, detail string) {
		e := &AuditEntry{Seq: seq, At: time.Unix(0, at), Actor: subject + detail, Action: "x", Subject: subject, Detail: detail}
		if got, want := e.appendCanonical(nil), marshalCanonical(e); !bytes.Equal(got, want) {
			t.Errorf("canonical:\n got %s\nwant %s", got, want)
		}
	})
}
