package main

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/proctest"
)

// hostilePDF writes a PDF of the objects given, numbered from 1, with its cross-reference table.
func hostilePDF(objs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	var offs []int
	for i, o := range objs {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

func flateStream(dict string, data []byte) string {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write(data)
	w.Close()
	return fmt.Sprintf("<< %s /Length %d >>\nstream\n%s\nendstream", dict, z.Len(), z.Bytes())
}

// TestExtractTextInAChild: a node reads each PDF in a child process of its own binary
// (knooppunt extract-text), so that a hostile PDF ends that process and not the node (review22
// H1, H2): one whose predictor asks for terabytes, one of 2^62 pages that never ends (or ends
// at the child's memory bound). Each is a broken file, or one given up on, and this process goes
// on; a plain PDF still gives its text.
func TestExtractTextInAChild(t *testing.T) {
	extract := attach.ExtractIn(2*time.Second, proctest.Binary(t), "extract-text")
	text, err := extract(attach.PDF, attach.SimplePDF("Handreiking opvang", []string{"De tewerkstellingsvergunning."}))
	if err != nil || !strings.Contains(text, "tewerkstellingsvergunning") {
		t.Fatalf("a plain PDF: %q, %v", text, err)
	}
	page := "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>"
	columns := hostilePDF("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", page,
		flateStream("/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 4398046511104 >>", []byte("BT (x) Tj ET")))
	// The child ends at its memory bound; on a loaded machine the timeout may come first.
	if _, err := extract(attach.PDF, columns); !errors.Is(err, attach.ErrExtractTimeout) && (err == nil || !strings.Contains(err.Error(), "malformed PDF: its reader stopped")) {
		t.Errorf("a predictor of 2^42 columns: %v, want the child's end as a malformed PDF, or its timeout", err)
	}
	pages := hostilePDF("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 4611686018427387904 >>", "<< /Type /Page /Parent 2 0 R >>")
	// The child ends at its memory bound or at the timeout, whichever comes first.
	start := time.Now()
	if _, err := extract(attach.PDF, pages); !errors.Is(err, attach.ErrExtractTimeout) && (err == nil || !strings.Contains(err.Error(), "its reader stopped")) {
		t.Errorf("2^62 pages: %v, want ErrExtractTimeout or the child's end", err)
	} else if took := time.Since(start); took > 10*time.Second {
		t.Errorf("2^62 pages took %s: the child was not stopped at its timeout", took)
	}
}

// TestExtractTextEndsItself: the child that reads a PDF ends itself when its reader does not
// (2^62 pages), though no parent kills it: a node killed mid-extraction leaves no child to spin
// on a core (review24 M1). It runs for twice the extraction timeout.
func TestExtractTextEndsItself(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for twice the extraction timeout")
	}
	pages := hostilePDF("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 4611686018427387904 >>", "<< /Type /Page /Parent 2 0 R >>")
	cmd := exec.Command(proctest.Binary(t), "extract-text")
	cmd.Stdin = bytes.NewReader(pages)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("the child read 2^62 pages and ended well: %s", stderr.String())
		}
	case <-time.After(4 * attach.ExtractTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the child still ran %s after it started", 4*attach.ExtractTimeout)
	}
}
