// Package captest checks CAP 1.2 documents in tests against the OASIS schema
// (node/cap/testdata/CAP-v1.2.xsd) with xmllint, from Debian's libxml2-utils.
package captest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/knooppunt/knooppunt/node/cap"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Install is the command that installs xmllint.
const Install = "apt-get install -y libxml2-utils"

// Schema is the path of the OASIS CAP 1.2 schema.
func Schema(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("captest: cannot locate the CAP schema")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata", "CAP-v1.2.xsd")
}

// Validate fails the test unless doc is valid against the CAP 1.2 schema. A machine without
// xmllint fails it too, with the command that installs it: the check is never skipped.
func Validate(tb testing.TB, name string, doc []byte) {
	tb.Helper()
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		tb.Fatalf("xmllint is not installed, and every CAP document the node writes is checked with it: run %s", Install)
	}
	f := filepath.Join(tb.TempDir(), "alert.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", Schema(tb), f).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s is not valid CAP 1.2 (%v):\n%s\n%s", name, err, out, doc)
	}
}

// Export writes a record as CAP 1.2, as `knooppunt export` does, and fails the test unless the
// document is valid against the schema. It returns the alert and the document.
func Export(tb testing.TB, r *pb.Record) (*cap.Alert, []byte) {
	tb.Helper()
	return ExportWith(tb, r, cap.ExportOptions{})
}

// ExportWith is Export with options, such as the version before a sitrep's.
func ExportWith(tb testing.TB, r *pb.Record, opts cap.ExportOptions) (*cap.Alert, []byte) {
	tb.Helper()
	a, err := cap.FromRecord(r, opts)
	if err != nil {
		tb.Fatal(err)
	}
	doc, err := a.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	Validate(tb, "record "+r.Id+" as CAP", doc)
	return a, doc
}
