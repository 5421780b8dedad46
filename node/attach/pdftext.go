package attach

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ledongthuc/pdf"

	"github.com/knooppunt/knooppunt/node/db"
)

// Bounds of text extraction: a PDF larger than MaxExtractBytes is not read, at most
// MaxTextBytes of text is kept, and a PDF that takes longer than ExtractTimeout is given up on.
const (
	MaxExtractBytes = 20 << 20
	MaxTextBytes    = 1 << 20
	ExtractTimeout  = 10 * time.Second
)

// ErrExtractTimeout is a PDF whose text took longer than ExtractTimeout.
var ErrExtractTimeout = errors.New("attach: text extraction took too long")

// Extract is the node's db.Extractor: the text of a PDF, read with github.com/ledongthuc/pdf
// (pure Go; it parses the file's objects and content streams and runs nothing in them), and of a
// plain-text or CSV file as it stands. Other types hold no text it reads.
func Extract(mediaType string, data []byte) (string, error) {
	if text, ok := plainText(mediaType, data); ok {
		return text, nil
	}
	if mediaType != PDF {
		return "", db.ErrNoText
	}
	type result struct {
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		text, err := pdfText(data)
		done <- result{text, err}
	}()
	select {
	case r := <-done:
		return r.text, r.err
	case <-time.After(ExtractTimeout):
		// The goroutine finishes on its own; its result is dropped.
		return "", ErrExtractTimeout
	}
}

// pdfText reads a PDF's plain text. The library panics on some malformed files: that is a
// broken PDF, not a broken node.
func pdfText(data []byte) (text string, err error) {
	defer func() {
		if p := recover(); p != nil {
			text, err = "", fmt.Errorf("attach: malformed PDF: %v", p)
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", fmt.Errorf("attach: malformed PDF: %w", err)
	}
	plain, err := r.GetPlainText()
	if err != nil {
		return "", fmt.Errorf("attach: malformed PDF: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(plain, MaxTextBytes))
	if err != nil {
		return "", fmt.Errorf("attach: malformed PDF: %w", err)
	}
	return string(bytes.ToValidUTF8(b, nil)), nil
}

// plainText is the text of a plain-text or CSV file (as Sniff names them), at most MaxTextBytes
// of it: there is nothing to parse, so it is read in the node's own process. ok is false for
// every other type.
func plainText(mediaType string, data []byte) (text string, ok bool) {
	if !strings.HasPrefix(mediaType, "text/plain") && mediaType != "text/csv" {
		return "", false
	}
	return string(bytes.ToValidUTF8(data[:min(len(data), MaxTextBytes)], nil)), true
}
