// Package doctable reads the tables of the Markdown documentation, for the tests that keep the
// documentation and the code in step.
package doctable

import (
	"fmt"
	"os"
	"strings"
)

// Rows returns the rows of the table in the Markdown file at path whose header line is header:
// every line after the header and its separator, up to the first line that is no table row.
func Rows(path, header string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rows []string
	in := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if line == header {
			in = true
			continue
		}
		if !in || strings.HasPrefix(line, "| ---") {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		rows = append(rows, line)
	}
	if !in {
		return nil, fmt.Errorf("%s: no table with the header %q", path, header)
	}
	return rows, nil
}
