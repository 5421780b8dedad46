package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
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

// CheckFilename checks a file's name: 1 to 255 bytes of UTF-8, no path, no control characters.
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
	case strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return invalid(field, "%q holds a control character", name)
	}
	return nil
}

// Attachments returns the files a body names, checked. A body without the field names none.
// It never fails on a body that is not a JSON object: such a body names nothing.
func Attachments(body []byte) ([]Attachment, error) {
	if !bytes.Contains(body, []byte(`"`+AttachmentsField+`"`)) {
		return nil, nil
	}
	var b struct {
		Attachments json.RawMessage `json:"attachments"`
	}
	if err := json.Unmarshal(body, &b); err != nil || len(b.Attachments) == 0 || string(b.Attachments) == "null" {
		return nil, nil
	}
	const field = "record.body." + AttachmentsField
	var list []json.RawMessage
	if err := json.Unmarshal(b.Attachments, &list); err != nil {
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
