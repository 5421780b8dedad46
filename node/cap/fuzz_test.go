package cap_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/knooppunt/knooppunt/node/cap"
)

// FuzzParse: no document makes Parse panic, and whatever it accepts it writes back as a document
// that it accepts again, unchanged.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.xml")
	files = append(files, "testdata/full.xml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		a, err := cap.Parse(bytes.NewReader(doc), 64<<10)
		if err != nil {
			return
		}
		out, err := a.Marshal()
		if err != nil {
			t.Fatalf("an accepted alert does not write: %v", err)
		}
		same(t, "parse, write, parse", parse(t, out), a)
	})
}
