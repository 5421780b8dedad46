package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPolicyPreviewNamesLiftedRedactions: a draft for the same recipient and kind without redact
// would send the summary another approved policy withholds; the preview says so in its table
// output and in -o json.
func TestPolicyPreviewNamesLiftedRedactions(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	base := "purpose: beeld\nrecipients: [spiffe://" + b.TD.Name() + "]\nkinds: [sitrep]\nmax_classification: internal\n"
	a.Approve(t, "name: sitrep-kort\n"+base+"redact: [body.summary]\n")
	a.Put(t, fedtest.Sitrep("s1", "oekraine", pb.Classification_INTERNAL, "Beeld"))
	draft := filepath.Join(t.TempDir(), "draft.yaml")
	if err := os.WriteFile(draft, []byte("name: sitrep-heel\n"+base), 0o600); err != nil {
		t.Fatal(err)
	}
	node := "unix://" + a.SocketPath()
	r := cli(t, nil, "", "policy", "preview", draft, "--recipient", b.Name, "--node", node).want(t, 0)
	if want := "WARNING: body.summary, now withheld from " + b.Name + " by sitrep-kort@1, would be sent"; !strings.Contains(r.stdout, want) {
		t.Errorf("policy preview of a draft that lifts a redaction:\n%s\nwant %q", r.stdout, want)
	}
	r = cli(t, nil, "", "policy", "preview", draft, "--recipient", b.Name, "--node", node, "-o", "json").want(t, 0)
	var doc struct {
		Lifted []struct {
			Field      string   `json:"field"`
			WithheldBy []string `json:"withheld_by"`
		} `json:"lifted_redactions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Lifted) != 1 || doc.Lifted[0].Field != "body.summary" ||
		len(doc.Lifted[0].WithheldBy) != 1 || doc.Lifted[0].WithheldBy[0] != "sitrep-kort@1" {
		t.Errorf("policy preview -o json: %v %+v\n%s", err, doc, r.stdout)
	}
}
