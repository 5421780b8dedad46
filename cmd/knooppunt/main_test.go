package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/knooppunt/knooppunt/node"
)

// The tests of this package run the knooppunt binary as a real process: the CLI end to end, and
// a node that is killed mid-write. The binary is built once, with the race detector when the
// tests run with it, so that races in a real node fail the test that saw them.

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// knooppuntBin builds the binary on first use and returns its path.
func knooppuntBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "kpbin"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "knooppunt")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// shortDir is a fresh directory whose socket path fits the 108-byte limit of unix sockets.
func shortDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(filepath.Join(dir, "data", node.SocketName)) > 100 {
		d, err := os.MkdirTemp("", "kp")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	return dir
}

// cleanEnv is the test's environment without the variables that pick a node or an identity, so
// that a developer's shell does not leak into the tests.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "KNOOPPUNT_NODE", "KNOOPPUNT_SVID_CERT", "KNOOPPUNT_SVID_KEY", "KNOOPPUNT_BUNDLE", "SPIFFE_ENDPOINT_SOCKET":
			continue
		}
		env = append(env, kv)
	}
	// A race-enabled binary sleeps a second when it exits normally, for late reports; the tests
	// read its output only after it exited, so that wait buys nothing.
	env = append(env, "GORACE=atexit_sleep_ms=20")
	return append(env, extra...)
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running knooppunt process.
type proc struct {
	cmd  *exec.Cmd
	out  syncBuffer // stdout and stderr
	done chan struct{}
	err  error // from Wait, once done is closed
}

// startProc starts the binary. When the test ends the process is killed if it still runs, and
// the test fails if the race detector reported anything in it.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(knooppuntBin(t), args...), done: make(chan struct{})}
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if strings.Contains(p.out.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector reported in knooppunt %s:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// exit waits for the process to end and returns its exit code.
func (p *proc) exit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("process did not exit within %s; output:\n%s", within, p.out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// serveNode runs `knooppunt serve` on dir/data and waits until it answers on its socket.
func serveNode(t *testing.T, dir string) (*proc, *grpc.ClientConn) {
	t.Helper()
	cfgFile := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfgFile, []byte("raft:\n  election_timeout: 100ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "serve", "--data-dir", filepath.Join(dir, "data"), "--config", cfgFile, "--log-level", "warn")
	return p, waitServing(t, p, filepath.Join(dir, "data", node.SocketName))
}

// waitServing waits, with a deadline, until the node behind sock answers a health check, and
// returns a connection to it. It gives up at once when the process exits.
func waitServing(t *testing.T, p *proc, sock string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 100 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("node on %s not serving: %v; output:\n%s", sock, err, p.out.String())
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("node on %s: health %s", sock, resp.Status)
	}
	return conn
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
