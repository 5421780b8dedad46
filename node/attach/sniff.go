// Package attach is how a node takes in files: it sniffs a file's media type from its content,
// checks it against the node's limits, writes the file through Raft in chunks, and takes the
// text out of PDFs for the full-text index. It never executes or renders a file.
package attach

import (
	"bytes"
	"fmt"
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

// byExtension is the media type a file name promises. For these types it is also the list of
// names a file may have: a text file is a .txt, never a .bat, whatever else it could be.
var byExtension = map[string]string{
	".pdf": PDF, ".docx": DOCX, ".xlsx": XLSX, ".pptx": PPTX, ".odt": ODT, ".ods": ODS,
	".doc": OLE, ".xls": OLE, ".ppt": OLE,
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
	".txt": "text/plain; charset=utf-8", ".text": "text/plain; charset=utf-8", ".log": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8",
	".csv": "text/csv", ".zip": Zip,
}

// active are the extensions of programs, installers, scripts, shortcuts and content that a
// browser or a desktop runs when it is opened (HTML and SVG run their scripts in a browser, an
// Office file with macros runs them). A file so named is never stored, whatever its content:
// a text file named instructies.bat is a program once it is saved.
var active = map[string]bool{}

func init() {
	for _, e := range strings.Fields(`
		.exe .com .bat .cmd .msi .msp .mst .msc .msh .msh1 .msh2 .mshxml .ps1 .ps1xml .ps2 .ps2xml .psc1 .psc2 .psd1 .psm1
		.hta .vb .vbe .vbs .js .jse .mjs .cjs .ws .wsc .wsf .wsh .sct .scr .pif .cpl .dll .ocx .sys .drv .lnk .url .scf
		.inf .ins .isp .reg .job .jar .jnlp .class .application .appref-ms .gadget .xbap .appx .appxbundle .msix .msixbundle
		.chm .hlp .library-ms .search-ms .searchconnector-ms .settingcontent-ms .iso .img .vhd .vhdx .cab
		.svg .svgz .html .htm .xhtml .xht .shtml .mht .mhtml .xml .xsl .xslt .swf
		.docm .dotm .xlsm .xltm .xlam .xla .pptm .potm .ppam .ppsm .sldm
		.sh .bash .zsh .csh .ksh .command .app .pkg .dmg .deb .rpm .apk .desktop .run .py .pyw .pl .rb .php .wasm`) {
		active[e] = true
	}
}

// Extension is the extension that a desktop goes by when it opens a file of name: the last
// one, in lower case, after the dots and spaces that Windows drops from a name's end
// ("setup.exe. " opens as setup.exe).
func Extension(name string) string {
	return strings.ToLower(filepath.Ext(strings.TrimRight(name, ". ")))
}

// CheckActive refuses a file's name that ends in the extension of a program or of active
// content, before its content is known. The error is a *record.FieldError naming field.
func CheckActive(field, filename string) error {
	if ext := Extension(filename); active[ext] {
		return &record.FieldError{Field: field, Code: codes.InvalidArgument, Reason: fmt.Sprintf("the name %q ends in %s, a program or active content: such files are never stored", filename, ext)}
	}
	return nil
}

// CheckName decides on a file's name for the media type of its content: a program's or active
// content's extension is never accepted, and a type that byExtension knows must be named with
// one of its own extensions, or with none. The error is a *record.FieldError naming field.
func CheckName(field, filename, mediaType string) error {
	if err := record.CheckFilename(field, filename); err != nil {
		return err
	}
	if err := CheckActive(field, filename); err != nil {
		return err
	}
	ext := Extension(filename)
	if ext == "" {
		return nil
	}
	if want, ok := byExtension[ext]; ok && want != mediaType {
		return &record.FieldError{Field: field, Code: codes.InvalidArgument, Reason: fmt.Sprintf("the name %q promises %s, but the content is %s: name the file for what it is", filename, want, mediaType)}
	}
	if own := ExtensionsOf(mediaType); len(own) > 0 && !slices.Contains(own, ext) {
		return &record.FieldError{Field: field, Code: codes.InvalidArgument, Reason: fmt.Sprintf("the name %q ends in %s, but the content is %s: name the file for what it is (%s)", filename, ext, mediaType, strings.Join(own, ", "))}
	}
	return nil
}

// ExtensionsOf are the extensions a file of mediaType may have, sorted; none for a type this
// package gives no extension.
func ExtensionsOf(mediaType string) []string {
	var out []string
	for e, t := range byExtension {
		if t == mediaType {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

// Accept is the value of a file input's accept attribute for mediaTypes: the extensions
// byExtension gives each type, and a type it gives none by its own name, so that a browser's
// file dialog offers the files the node would take.
func Accept(mediaTypes []string) string {
	var out []string
	for _, t := range mediaTypes {
		own := ExtensionsOf(t)
		if len(own) == 0 {
			own = []string{t}
		}
		for _, e := range own {
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	return strings.Join(out, ",")
}

// Limits are what a node accepts as a file.
type Limits struct {
	// MaxBytes is the largest file. Default DefaultMaxBytes.
	MaxBytes int64
	// MediaTypes are the accepted types, as Sniff names them. Default DefaultMediaTypes.
	MediaTypes []string
}

// Filled is l with its defaults in place of the fields it leaves zero: the limits as the node
// applies them, for a caller that shows or checks them itself (the web form).
func (l Limits) Filled() Limits {
	return Limits{MaxBytes: l.maxBytes(), MediaTypes: l.mediaTypes()}
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
// the type must be allowed, and the name must suit the type (see CheckName). The error is a
// *record.FieldError naming field, or filename for the name.
func (l Limits) Check(field, filename, sniffed string) error {
	if sniffed == Executable {
		return &record.FieldError{Field: field, Code: codes.InvalidArgument, Reason: "the content is an executable program (" + filename + "): programs are never stored"}
	}
	if err := CheckName("filename", filename, sniffed); err != nil {
		return err
	}
	return l.checkType(field, sniffed)
}

func (l Limits) checkType(field, mediaType string) error {
	if !slices.Contains(l.mediaTypes(), mediaType) {
		return &record.FieldError{Field: field, Code: codes.InvalidArgument, Reason: "the content is " + mediaType + ", which this node does not accept: use one of " + strings.Join(l.mediaTypes(), ", ")}
	}
	return nil
}

// CheckNamed decides on a file as a record names it, before any of its content is read: a
// partner's file that this node would refuse as an upload (too large, a type it does not
// accept, or a name that does not suit its type) is not fetched. The error is a
// *record.FieldError naming field.
func (l Limits) CheckNamed(field string, a record.Attachment) error {
	if a.Size > l.maxBytes() {
		return &record.FieldError{Field: field + ".size", Code: codes.ResourceExhausted,
			Reason: fmt.Sprintf("%d bytes is over this node's limit of %d bytes per file (attachments.max_bytes)", a.Size, l.maxBytes())}
	}
	if a.MediaType == Executable {
		return &record.FieldError{Field: field + ".media_type", Code: codes.InvalidArgument, Reason: "an executable program: programs are never stored"}
	}
	if err := l.checkType(field+".media_type", a.MediaType); err != nil {
		return err
	}
	return CheckName(field+".filename", a.Filename, a.MediaType)
}
