package main

import "testing"

// TestAuditDetailPutsWhoGotItFirst: the table gives a disclosure's recipient and a retraction's
// reason before the other keys, which sort before them and pushed them past the cut.
func TestAuditDetailPutsWhoGotItFirst(t *testing.T) {
	for _, tc := range []struct{ detail, want string }{
		{`{"classification":"INTERNAL","crisis":"oekraine","kind":"sitrep","policies":["a@1"],"recipient":"vr-zeeland.crisis.test","version":2}`,
			`recipient=vr-zeeland.crisis.test version=2 policies=["a@1"] classification=INTERNAL crisis=oekraine kind=sitrep`},
		{`{"reason":"no longer granted: held under a@1 (revoked)","recipient":"ncc.crisis.test"}`,
			`recipient=ncc.crisis.test reason=no longer granted: held under a@1 (revoked)`},
		{``, ``},
		{`not json`, `not json`},
	} {
		if got := auditDetail(tc.detail); got != tc.want {
			t.Errorf("auditDetail(%s)\n = %s\nwant %s", tc.detail, got, tc.want)
		}
	}
}
