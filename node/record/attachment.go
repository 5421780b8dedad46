package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/knooppunt/knooppunt/policy"
)

// AttachmentsField is the body field in which a record names its files: an array of
// {"sha256", "size", "media_type", "filename"}. Every kind may carry it. A policy that redacts
// body.attachments keeps the files from the recipient: a source serves a file only to a
// recipient whose copy of the record names it.
const AttachmentsField = "attachments"

// MaxAttachments bounds the files one record names.
const MaxAttachments = 32

// Attachment is one file a record names.
type Attachment struct {
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
	Filename  string `json:"filename"`
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CheckSHA256 checks a lowercase hex SHA-256 in field.
func CheckSHA256(field, s string) error {
	if !sha256Hex.MatchString(s) {
		return invalid(field, "%q is not a SHA-256: use 64 lowercase hex digits", s)
	}
	return nil
}

// CheckFilename checks a file's name: 1 to 255 bytes of UTF-8, no path, and no character that
// a screen acts on or shows as nothing (policy.Hidden: control characters, the bidirectional
// controls that show factuur\u202efdp.hta as factuurath.pdf, zero-width characters).
func CheckFilename(field, name string) error {
	switch {
	case name == "":
		return invalid(field, "missing: name the file, such as handreiking.pdf")
	case len(name) > 255:
		return invalid(field, "%d bytes is over the limit of 255", len(name))
	case !utf8.ValidString(name):
		return invalid(field, "invalid UTF-8")
	case strings.ContainsAny(name, `/\`) || name == "." || name == "..":
		return invalid(field, "%q is a path: give the file's name only", name)
	}
	if i := strings.IndexFunc(name, policy.Hidden); i >= 0 {
		r, _ := utf8.DecodeRuneInString(name[i:])
		return invalid(field, "%q holds the invisible or control character U+%04X: name the file in visible characters", name, r)
	}
	return nil
}

// MayNameFiles says whether body may name files: false only when no key in it can read as
// attachments, neither as written nor escaped (a key "attachment\u0073" is attachments to every
// decoder, and JSON can escape a letter only as \u). A reader that would rather not decode every
// body asks this first; Attachments does.
func MayNameFiles(body []byte) bool {
	return bytes.Contains(body, []byte(`"`+AttachmentsField+`"`)) || bytes.Contains(body, []byte(`\u`))
}

// Attachments returns the files a body names, checked. A body without the field names none.
// It never fails on a body that is not a JSON object: such a body names nothing.
//
// The field is the member whose key is exactly attachments, once decoded (the last, should a
// peer's body give it twice), as the redactor and a policy's conditions read keys: "Attachments"
// is another field, which a policy that redacts body.attachments does not touch, so it names no
// file. Every reader of a record's files (the write check, the source's file grant, the
// recipient's fetches and the text search) reads them here.
func Attachments(body []byte) ([]Attachment, error) {
	if !MayNameFiles(body) {
		return nil, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, nil
	}
	raw := members[AttachmentsField]
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	const field = "record.body." + AttachmentsField
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalid(field, "must be an array of {sha256, size, media_type, filename}")
	}
	if len(list) > MaxAttachments {
		return nil, invalid(field, "%d files is over the limit of %d per record", len(list), MaxAttachments)
	}
	out := make([]Attachment, 0, len(list))
	seen := map[string]bool{}
	for i, raw := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		var a Attachment
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return nil, invalid(f, "must be {sha256, size, media_type, filename}: %v", err)
		}
		if err := CheckSHA256(f+".sha256", a.SHA256); err != nil {
			return nil, err
		}
		if a.Size <= 0 {
			return nil, invalid(f+".size", "%d: a file has at least one byte", a.Size)
		}
		if a.MediaType == "" || len(a.MediaType) > 128 || !utf8.ValidString(a.MediaType) {
			return nil, invalid(f+".media_type", "missing or malformed: use the media_type the upload answered")
		}
		if err := CheckFilename(f+".filename", a.Filename); err != nil {
			return nil, err
		}
		if seen[a.SHA256] {
			return nil, invalid(f+".sha256", "names the same file as an earlier attachment")
		}
		seen[a.SHA256] = true
		out = append(out, a)
	}
	return out, nil
}
