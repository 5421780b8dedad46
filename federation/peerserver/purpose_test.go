package peerserver

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCheckPurposeRefusesHiddenCharacters: a purpose a peer states is kept in the audit log as
// stated, and officers read it in their audit list table; a newline in it wrote a line there
// that looked like another entry (review O, O3). Controls and invisible formatting are refused
// as INVALID_ARGUMENT naming the field; plain text of any script passes.
func TestCheckPurposeRefusesHiddenCharacters(t *testing.T) {
	for _, ok := range []string{"", "crisisbeheer", "spreiding en opvang vluchtelingen", "Ïnformatie-uitwisseling (VR09)"} {
		if err := CheckPurpose("purpose", ok); err != nil {
			t.Errorf("CheckPurpose(%q): %v, want it taken", ok, err)
		}
	}
	for _, tc := range []struct{ purpose, want string }{
		{"crisisbeheer\n53   2026-12-06T15:20:02Z  local socket  policy.revoke", "purpose: holds a control or invisible character (U+000A) at byte 12: state the purpose as plain text on one line"},
		{"crisis\rbeheer", "purpose: holds a control or invisible character (U+000D) at byte 6"},
		{"crisis\tbeheer", "purpose: holds a control or invisible character (U+0009) at byte 6"},
		{"crisis\x1b[2Abeheer", "purpose: holds a control or invisible character (U+001B) at byte 6"},
		{"crisis\u2028beheer", "purpose: holds a control or invisible character (U+2028) at byte 6"},
		{"crisis\u202ebeheer", "purpose: holds a control or invisible character (U+202E) at byte 6"},
		{"crisis\u200bbeheer", "purpose: holds a control or invisible character (U+200B) at byte 6"},
	} {
		err := CheckPurpose("purpose", tc.purpose)
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), tc.want) {
			t.Errorf("CheckPurpose(%q): %v, want INVALID_ARGUMENT beginning %q", tc.purpose, err, tc.want)
		}
	}
}
