// Package attach is how a node takes in files: it sniffs a file's media type from its content,
// checks it against the node's limits, writes the file through Raft in chunks, and takes the
// text out of PDFs for the full-text index. It never executes or renders a file.
package attach

import (
	"bytes"
	"net/http"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/node/record"
)

// Media types that http.DetectContentType does not tell apart, recognised here by their magic
// numbers and, for the zip-based office formats, their first entries.
const (
	PDF        = "application/pdf"
	DOCX       = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	XLSX       = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	PPTX       = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	ODT        = "application/vnd.oasis.opendocument.text"
	ODS        = "application/vnd.oasis.opendocument.spreadsheet"
	OLE        = "application/x-ole-storage" // legacy .doc, .xls, .ppt
	Zip        = "application/zip"
	Executable = "application/x-executable"
)

// DefaultMediaTypes are the types a node accepts unless its config says otherwise: documents
// and images.
var DefaultMediaTypes = []string{PDF, DOCX, XLSX, PPTX, ODT, ODS, OLE, "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain; charset=utf-8", "text/csv"}

// DefaultMaxBytes is the largest file a node accepts unless its config says otherwise.
const DefaultMaxBytes = 50 << 20

// SniffBytes is how much of a file's start Sniff reads.
const SniffBytes = 4096

// executables are the magic numbers of programs: ELF, PE (MZ), Mach-O and fat binaries, and
// scripts with a #! line. They are never stored, whatever the name says.
var executables = [][]byte{
	[]byte("\x7fELF"), []byte("MZ"), []byte("#!"),
	{0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf}, {0xce, 0xfa, 0xed, 0xfe}, {0xcf, 0xfa, 0xed, 0xfe}, {0xca, 0xfe, 0xba, 0xbe},
}

// Sniff returns the media type of content that starts with head (at least SniffBytes of it, or
// all of a smaller file).
func Sniff(head []byte) string {
	for _, m := range executables {
		if bytes.HasPrefix(head, m) {
			return Executable
		}
	}
	switch {
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return PDF
	case bytes.HasPrefix(head, []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}):
		return OLE
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return sniffZip(head)
	}
	t := http.DetectContentType(head)
	if t == "text/plain; charset=utf-8" && looksCSV(head) {
		return "text/csv"
	}
	return t
}

// sniffZip tells the office formats from a plain zip by the names of the first entries: an
// OpenDocument file starts with its mimetype entry, an Office Open XML file names
// [Content_Types].xml and its main part's folder near the start.
func sniffZip(head []byte) string {
	switch {
	case bytes.Contains(head, []byte("mimetypeapplication/vnd.oasis.opendocument.text")):
		return ODT
	case bytes.Contains(head, []byte("mimetypeapplication/vnd.oasis.opendocument.spreadsheet")):
		return ODS
	case bytes.Contains(head, []byte("word/")):
		return DOCX
	case bytes.Contains(head, []byte("xl/")):
		return XLSX
	case bytes.Contains(head, []byte("ppt/")):
		return PPTX
	}
	return Zip
}

func looksCSV(head []byte) bool {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	return bytes.Count(line, []byte(",")) >= 2 || bytes.Count(line, []byte(";")) >= 2
}

// byExtension is the media type a file name promises.
var byExtension = map[string]string{
	".pdf": PDF, ".docx": DOCX, ".xlsx": XLSX, ".pptx": PPTX, ".odt": ODT, ".ods": ODS,
	".doc": OLE, ".xls": OLE, ".ppt": OLE,
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
	".txt": "text/plain; charset=utf-8", ".csv": "text/csv", ".zip": Zip,
}

// Limits are what a node accepts as a file.
type Limits struct {
	// MaxBytes is the largest file. Default DefaultMaxBytes.
	MaxBytes int64
	// MediaTypes are the accepted types, as Sniff names them. Default DefaultMediaTypes.
	MediaTypes []string
}

func (l Limits) maxBytes() int64 {
	if l.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return l.MaxBytes
}

func (l Limits) mediaTypes() []string {
	if len(l.MediaTypes) == 0 {
		return DefaultMediaTypes
	}
	return l.MediaTypes
}

// Check decides on a file by its sniffed type and its name: an executable is never accepted,
// the type must be allowed, and a name whose extension promises another type (a .pdf that is
// a program) is refused. The error is a *record.FieldError naming field.
func (l Limits) Check(field, filename, sniffed string) error {
	if sniffed == Executable {
		return &record.FieldError{Field: field, Code: codes.InvalidArgument, Reason: "the content is an executable program (" + filename + "): programs are never stored"}
	}
	if want, ok := byExtension[strings.ToLower(filepath.Ext(filename))]; ok && want != sniffed {
		return &record.FieldError{Field: field, Code: codes.InvalidArgument, Reason: "the name " + filename + " promises " + want + ", but the content is " + sniffed + ": name the file for what it is"}
	}
	if !slices.Contains(l.mediaTypes(), sniffed) {
		return &record.FieldError{Field: field, Code: codes.InvalidArgument, Reason: "the content is " + sniffed + ", which this node does not accept: use one of " + strings.Join(l.mediaTypes(), ", ")}
	}
	return nil
}
