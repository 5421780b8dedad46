// Package proctest runs the knooppunt binary as real processes in end-to-end tests. It builds the
// binary once per test binary, with the race detector when the tests run with it, so that a race
// in a real node fails the test that saw it; it runs the binary in the test's environment without
// the variables that pick a node or an identity, so that a developer's shell does not leak into
// the tests; and it kills, when the test ends, every process a test left running.
//
// A package that uses Binary or Build calls Main from its TestMain, which removes the binary.
package proctest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// Build builds cmd/knooppunt on first use and returns the binary's path. It may be called from
// any goroutine; later calls wait for the first and return what it returned.
func Build() (string, error) {
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "kpbin"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "knooppunt")
		args := []string{"build", "-o", binPath}
		if race { // the tests run with the race detector: so does the binary
			args = append(args, "-race")
		}
		args = append(args, "github.com/knooppunt/knooppunt/cmd/knooppunt")
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		return "", buildErr
	}
	return binPath, nil
}

// Binary is Build for a test: it fails the test when the build fails.
func Binary(tb testing.TB) string {
	tb.Helper()
	bin, err := Build()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// Main runs the tests, removes the binary that Build made and exits with the tests' code.
func Main(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Env is the test's environment without the variables that pick a node or an identity, with
// extra added. A race-enabled binary sleeps a second when it exits, for late reports; the tests
// read a process's output after it exited, so that sleep is cut to 20 ms.
func Env(extra ...string) []string {
	var env []string
	gorace := ""
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "KNOOPPUNT_NODE", "KNOOPPUNT_SVID_CERT", "KNOOPPUNT_SVID_KEY", "KNOOPPUNT_BUNDLE", "SPIFFE_ENDPOINT_SOCKET":
			continue
		case "GORACE":
			gorace = v + " "
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GORACE="+gorace+"atexit_sleep_ms=20")
	return append(env, extra...)
}

// Raced reports whether a process's output holds a report of the race detector.
func Raced(out string) bool { return strings.Contains(out, "WARNING: DATA RACE") }

// Buffer collects a process's output while it runs; it is safe to read while written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Proc is a running knooppunt process.
type Proc struct {
	Cmd  *exec.Cmd
	Out  Buffer // stdout and stderr
	done chan struct{}
	err  error // from Wait, once done is closed
}

// Start starts the knooppunt binary with args and Env. Its stdout and stderr go to p.Out and, if
// log is not nil, to log too. When the test ends the process is killed if it still runs, and the
// test fails if the race detector reported in it.
func Start(tb testing.TB, log io.Writer, args ...string) *Proc {
	tb.Helper()
	p := &Proc{Cmd: exec.Command(Binary(tb), args...), done: make(chan struct{})}
	p.Cmd.Env = Env()
	var out io.Writer = &p.Out
	if log != nil {
		out = io.MultiWriter(&p.Out, log)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = out, out
	if err := p.Cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.Kill(tb)
		if Raced(p.Out.String()) {
			tb.Errorf("the race detector reported in knooppunt %s:\n%s", strings.Join(args, " "), p.Out.String())
		}
	})
	return p
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is what waiting for the process returned: nil for exit code 0. Call it after Done.
func (p *Proc) Err() error { return p.err }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL, unless the process has exited, and waits for it to end.
func (p *Proc) Kill(tb testing.TB) {
	tb.Helper()
	if p.Exited() {
		return
	}
	p.Cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		tb.Errorf("%s (pid %d) did not end 10s after SIGKILL", p.Cmd.Path, p.Cmd.Process.Pid)
	}
}

// Term sends SIGTERM, as an operator stops a node, and returns what the exit was (nil for a
// clean one). A process still running after within is killed, and the test fails.
func (p *Proc) Term(tb testing.TB, within time.Duration) error {
	tb.Helper()
	if !p.Exited() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		tb.Errorf("%s (pid %d) still running %s after SIGTERM: killed", p.Cmd.Path, p.Cmd.Process.Pid, within)
		p.Kill(tb)
		return p.err
	}
}

// ExitCode waits, at most within, for the process to exit and returns its exit code.
func (p *Proc) ExitCode(tb testing.TB, within time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		tb.Fatalf("%s (pid %d) did not exit within %s; output:\n%s", p.Cmd.Path, p.Cmd.Process.Pid, within, p.Out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		tb.Fatalf("wait: %v", p.err)
	}
	return 0
}

// Chromium finds Debian's chromium for a browser test, or $KNOOPPUNT_CHROMIUM. A missing browser
// fails the test: the browser tests are part of the suite, and `make test` installs it (or says
// how) before it runs them.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KNOOPPUNT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the browser tests need chromium: apt-get install -y chromium (or set KNOOPPUNT_CHROMIUM to its path)")
	return ""
}

// ChromiumOptions are the options of a browser test's headless chromium: Chromium found, no
// sandbox or GPU, and its profile and its own temporary files (a singleton socket it leaves when
// it is stopped) in the test's temporary directory, which the test removes.
func ChromiumOptions(t testing.TB, more ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	t.Helper()
	return append(append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.Env("TMPDIR="+t.TempDir())), more...)
}
