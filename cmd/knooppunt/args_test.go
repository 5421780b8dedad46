package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestMissingArgumentIsNamed: a command run without an argument it needs says which, by its
// usage, rather than cobra's "accepts 1 arg(s), received 0"; one too many is named too.
func TestMissingArgumentIsNamed(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"record", "get"}, "give ID: knooppunt record get ID"},
		{[]string{"policy", "show"}, "give ID: knooppunt policy show ID"},
		{[]string{"import"}, "give FILE|-: knooppunt import FILE|-"},
		{[]string{"backup"}, "give FILE: knooppunt backup FILE"},
		{[]string{"restore", "--data-dir", "x"}, "give FILE: knooppunt restore FILE --data-dir DIR"},
		{[]string{"record", "attachment", "get", "some-id"}, "give SHA256: knooppunt record attachment get ID SHA256 -o FILE"},
		{[]string{"policy", "diff"}, "give ID1 ID2: knooppunt policy diff ID1 ID2"},
		{[]string{"record", "get", "a", "b"}, `"b": one argument too many: knooppunt record get ID`},
		{[]string{"peer", "show", "a", "b", "c"}, `"b" "c": 2 arguments too many: knooppunt peer show NAME`},
	} {
		if err := execute(c.args); err == nil || err.Error() != c.want {
			t.Errorf("knooppunt %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	// Every command that takes arguments says so.
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if len(argNames(c.Use)) == 0 || c.Args == nil {
			return
		}
		if err := c.Args(c, nil); err == nil || !strings.HasPrefix(err.Error(), "give ") {
			t.Errorf("%s without arguments: %v, want give …", c.CommandPath(), err)
		}
	}
	walk(newRootCmd())
}
