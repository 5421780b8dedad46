// Command knooppunt runs a Knooppunt node and is the command line of its users: records, imports,
// status and the demo. Run `knooppunt --help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signalContext()
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "knooppunt:", err)
		os.Exit(1)
	}
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

func run(ctx context.Context, args []string) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(interruptible(ctx, os.Stdin))
	return root.ExecuteContext(ctx)
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
