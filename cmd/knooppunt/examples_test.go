package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestExamplesUseTheirCommandsFlags: every knooppunt line of every command's examples names flags
// its command has, and gives those it requires: a reader copies them.
func TestExamplesUseTheirCommandsFlags(t *testing.T) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		for _, line := range strings.Split(strings.ReplaceAll(c.Example, "\\\n", " "), "\n") {
			words := shellWords(line)
			if len(words) < 2 || words[0] != "knooppunt" {
				continue
			}
			// A fresh tree for each line: parsed flags stay set on a command.
			cmd, rest, err := newRootCmd().Find(words[1:])
			if err == nil {
				err = cmd.ParseFlags(rest)
			}
			if err == nil {
				err = cmd.ValidateRequiredFlags()
			}
			if err != nil {
				t.Errorf("%s example %q: %v", c.CommandPath(), strings.TrimSpace(line), err)
			}
		}
	}
	walk(newRootCmd())
}

// shellWords splits a shell command line into its words, as far as the examples need: quotes,
// and the end of the command at a comment, a pipe, a redirection or a list.
func shellWords(line string) []string {
	var (
		words []string
		cur   strings.Builder
		in    bool
		quote rune
	)
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case !in && strings.ContainsRune("#|;&<>", r):
			return words
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}
