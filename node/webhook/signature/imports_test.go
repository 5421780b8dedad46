package signature_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsStandardLibraryAlone: the package imports nothing but the standard library, so that
// a receiver builds with it alone, also with CGO_ENABLED=0, without the node's SQLite and Raft
// (review X, X4). The standard library's import paths have no dot in their first element.
func TestImportsStandardLibraryAlone(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	read := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		read++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s, which is not of the standard library", name, path)
			}
		}
	}
	if read == 0 {
		t.Fatal("no source file of the package read")
	}
}
