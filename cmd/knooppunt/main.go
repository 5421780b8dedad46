// Command knooppunt runs a Knooppunt node and is the command line of its users: records, imports,
// status and the demo. Run `knooppunt --help` for the commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signalContext()
	cmd, err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		code := report(os.Stderr, err, jsonOutput(cmd, os.Args[1:], err))
		os.Exit(errorExit(cmd, err, code))
	}
}

// errorExitAnnotation marks a command whose exit code 1 says a finding (policy diff: the two
// differ; audit verify: the chain is broken; lint: a problem): any error of it, a node that
// cannot be reached or a flag it cannot read, exits with the annotation's code instead, so that
// a script tells the finding from a failure (review Z, Z2 and Z3).
const errorExitAnnotation = "knooppunt-error-exit"

// errorExit is the exit code of err, which report said and gave code for: the command's own
// for an error of a command marked with errorExitAnnotation, else code.
func errorExit(cmd *cobra.Command, err error, code int) int {
	var ee exitError
	if errors.As(err, &ee) || cmd == nil {
		return code
	}
	if own, perr := strconv.Atoi(cmd.Annotations[errorExitAnnotation]); perr == nil {
		return own
	}
	return code
}

// report says err on w, the one place every command's error is said, and is the exit code: an
// exitError's own, else 1. A command asked for -o json says it as one JSON document,
// {"error": {...}} (see errorBody), for the script that asked; otherwise as a line for a person.
func report(w io.Writer, err error, asJSON bool) int {
	var ee exitError
	if errors.As(err, &ee) {
		return int(ee) // the command said why
	}
	if asJSON {
		// One line: a script that reads standard error line by line gets the whole document.
		json.NewEncoder(w).Encode(map[string]any{"error": errorOf(err)})
	} else {
		fmt.Fprintln(w, "knooppunt:", err)
	}
	return 1
}

// signalContext is a context that the first SIGINT or SIGTERM cancels, for the command to stop
// on. That signal's handler is then removed, so that a second one gets the default action and
// ends the program at once, whatever the command does.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// exitError ends the program with a code after the command already said why.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// run runs the command args name, and returns it with its error.
func run(ctx context.Context, args []string) (*cobra.Command, error) {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(interruptible(ctx, os.Stdin))
	cmd, err := root.ExecuteContextC(ctx)
	return cmd, requiredFlags(err)
}

// cobraRequired is cobra's refusal of required flags left out: required flag(s) "body", "kind"
// not set.
var (
	cobraRequired = regexp.MustCompile(`^required flag\(s\) ((?:"[\w-]+"(?:, )?)+) not set$`)
	quotedName    = regexp.MustCompile(`"([\w-]+)"`)
)

// requiredFlags says cobra's refusal of required flags left out as the other refusals name a
// flag, with its dashes (review Z, Z8); any other error as it is.
func requiredFlags(err error) error {
	if err == nil {
		return nil
	}
	m := cobraRequired.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	names := quotedName.FindAllStringSubmatch(m[1], -1)
	flags := make([]string, len(names))
	for i, n := range names {
		flags[i] = "--" + n[1]
	}
	if len(flags) == 1 {
		return invalid(fmt.Errorf("%s: missing: give it", flags[0]))
	}
	return invalid(fmt.Errorf("%s: missing: give them", strings.Join(flags, ", ")))
}

// interruptible reads r until ctx ends, and then fails at once, even in the middle of a read that
// waits (a person who has not answered a prompt yet): a read of a terminal does not end by
// itself when the program is told to stop. Each read runs in a goroutine that one left behind
// by the end of ctx may finish later; by then the program is ending.
func interruptible(ctx context.Context, r io.Reader) io.Reader {
	return &ctxStdin{ctx: ctx, r: r}
}

type ctxStdin struct {
	ctx context.Context
	r   io.Reader
}

type readResult struct {
	b   []byte
	err error
}

func (c *ctxStdin) Read(p []byte) (int, error) {
	if c.ctx.Err() != nil {
		return 0, c.stopped()
	}
	done := make(chan readResult, 1)
	go func() {
		// At most 64 KiB a read: io.ReadAll hands in buffers of megabytes, and this copy is
		// made for every read.
		b := make([]byte, min(len(p), 64<<10))
		n, err := c.r.Read(b)
		done <- readResult{b[:n], err}
	}()
	select {
	case res := <-done:
		return copy(p, res.b), res.err
	case <-c.ctx.Done():
		return 0, c.stopped()
	}
}

func (c *ctxStdin) stopped() error {
	return fmt.Errorf("stopped while reading standard input: %w", context.Cause(c.ctx))
}
