package record_test

import (
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const fileEntry = `{"sha256":"d79b0e2a57f6c4d1e1ec0e2d9b1a5d6f1f4f2c7f8d8e6a9b0c1d2e3f4a5b6c7d","size":765,"media_type":"application/pdf","filename":"bijlage.pdf"}`

// TestAttachmentsKeyIsExact: a body names files under the key attachments exactly, once decoded,
// as the redactor reads keys (review 18 M1, review 20 L3). "Attachments" is another field, which
// a policy that redacts body.attachments leaves in place, so it names no file; an escaped
// spelling of attachments is attachments, and is checked.
func TestAttachmentsKeyIsExact(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		files      int
	}{
		{"plain key", `{"attachments":[` + fileEntry + `]}`, 1},
		{"another case", `{"Attachments":[` + fileEntry + `],"note":"attachments"}`, 0},
		{"upper case", `{"ATTACHMENTS":[` + fileEntry + `],"note":"attachments"}`, 0},
		{"last letter escaped", `{"attachment\u0073":[` + fileEntry + `]}`, 1},
		{"first letter escaped", `{"\u0061ttachments":[` + fileEntry + `]}`, 1},
		{"nested, not the body's field", `{"x":{"attachments":[` + fileEntry + `]}}`, 0},
		{"none", `{"title":"attachments"}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := record.Attachments([]byte(tc.body))
			if err != nil || len(files) != tc.files {
				t.Fatalf("Attachments(%s) = %v, %v; want %d files", tc.body, files, err, tc.files)
			}
			if got := record.MayNameFiles([]byte(tc.body)); tc.files > 0 && !got {
				t.Fatalf("MayNameFiles(%s) = false for a body that names files", tc.body)
			}
		})
	}

	// An escaped key is checked like the plain one: CheckPut refuses what it names.
	c := newChecker(t)
	bad := strings.Replace(fileEntry, `"size":765`, `"size":-5`, 1)
	for _, key := range []string{`attachment\u0073`, `\u0061ttachments`} {
		r := with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte(`{"title":"t","`+key+`":[`+bad+`]}`) })
		err := c.CheckPut(r)
		if err == nil || !strings.HasPrefix(err.Error(), "record.body.attachments[0].size: ") {
			t.Errorf("CheckPut of %s: %v, want a refusal at record.body.attachments[0].size", r.Body, err)
		}
	}
}
