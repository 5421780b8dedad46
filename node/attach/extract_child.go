package attach

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"time"

	"github.com/knooppunt/knooppunt/node/db"
)

// childMemory bounds the address space of the process that reads one PDF (ServeExtract): the PDF
// library, given a hostile file, asks for terabytes (a predictor of 2^42 columns) or builds
// gigabytes of text from a small compressed stream. In its own process such a file ends that
// process, not the node.
const childMemory = 1 << 30

// ExtractIn is a db.Extractor that reads each PDF's text in a child process: command, the node's
// own binary with its extract-text command, which runs ServeExtract. The child is killed after
// timeout, and whatever makes it fail (a fatal error of the PDF library, its memory bound, the
// timeout) marks the file as broken, as a malformed PDF is: the node goes on, and never reads
// that file again. A plain-text or CSV file is read as it stands, in the node's process; other
// types hold no text it reads.
func ExtractIn(timeout time.Duration, command ...string) db.Extractor {
	return func(mediaType string, data []byte) (string, error) {
		if text, ok := plainText(mediaType, data); ok {
			return text, nil
		}
		if mediaType != PDF {
			return "", db.ErrNoText
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, command[0], command[1:]...)
		cmd.Stdin = bytes.NewReader(data)
		out, errOut := &capped{max: MaxTextBytes}, &capped{max: 4 << 10}
		cmd.Stdout, cmd.Stderr = out, errOut
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		switch {
		case ctx.Err() != nil:
			return "", ErrExtractTimeout
		case err != nil:
			why := strings.TrimSpace(errOut.b.String())
			if i := strings.IndexByte(why, '\n'); i >= 0 {
				why = why[:i] // a fatal error's first line; the stack is the library's
			}
			return "", fmt.Errorf("attach: malformed PDF: its reader stopped (%v): %s", err, why)
		}
		return string(bytes.ToValidUTF8(out.b.Bytes(), nil)), nil
	}
}

// capped keeps at most max bytes of what is written to it, and takes the rest without keeping it.
type capped struct {
	b   bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if n := c.max - c.b.Len(); n > 0 {
		c.b.Write(p[:min(n, len(p))])
	}
	return len(p), nil
}

// ServeExtract is the child of ExtractIn: it bounds its own memory to childMemory and its own
// time, reads a PDF of at most MaxExtractBytes from in, and writes at most MaxTextBytes of its
// text to out. The child ends itself at twice ExtractTimeout, and the system ends it at as many
// seconds of CPU, whatever became of the node that started it: a node killed while it read a
// hostile PDF leaves no child to spin on.
func ServeExtract(in io.Reader, out io.Writer) error {
	limitMemory(childMemory)
	limitCPU(2 * ExtractTimeout)
	time.AfterFunc(2*ExtractTimeout, func() {
		fmt.Fprintln(os.Stderr, "attach: text extraction took too long: the reader stops itself")
		os.Exit(3)
	})
	debug.SetMemoryLimit(childMemory / 2)
	data, err := io.ReadAll(io.LimitReader(in, MaxExtractBytes+1))
	if err != nil {
		return err
	}
	if len(data) > MaxExtractBytes {
		return errors.New("attach: the PDF is larger than a node reads the text of")
	}
	text, err := pdfText(data)
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, text)
	return err
}
