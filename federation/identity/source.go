package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Source gives a workload its own X.509-SVID and the bundles it knows.
type Source interface {
	x509svid.Source
	x509bundle.Source
	Close() error
}

// NewWorkloadSource connects to the SPIRE Workload API at addr (unix:///path; empty: the
// SPIFFE_ENDPOINT_SOCKET environment variable) and waits, until ctx ends, for the first SVID.
// SPIRE rotates the SVID and bundles; the source follows. When the agent offers the caller
// more than one SVID, want picks one by its ID; the zero ID takes the agent's default, the first.
func NewWorkloadSource(ctx context.Context, addr string, want spiffeid.ID) (Source, error) {
	var opts []workloadapi.X509SourceOption
	if addr != "" {
		opts = append(opts, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	}
	var (
		mu      sync.Mutex
		offered []string // the IDs of the latest update, for the error below
	)
	if !want.IsZero() {
		opts = append(opts, workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
			mu.Lock()
			defer mu.Unlock()
			offered = offered[:0]
			var picked *x509svid.SVID
			for _, s := range svids {
				offered = append(offered, s.ID.String())
				if s.ID == want {
					picked = s
				}
			}
			return picked
		}))
	}
	src, err := workloadapi.NewX509Source(ctx, opts...)
	if err != nil {
		return nil, workloadError(addr, err)
	}
	if _, err := src.GetX509SVID(); err != nil {
		src.Close()
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("the workload API %s offers %s, not %s: pick one of those, or ask the SPIRE admin for an entry for %s",
			addr, strings.Join(offered, ", "), want, want)
	}
	return src, nil
}

// WorkloadSocket is the Workload API address addr, or SPIFFE_ENDPOINT_SOCKET's when addr is
// empty, as a message shows it; and missing, the path of its unix socket when no file is there
// (yet), else "".
func WorkloadSocket(addr string) (shown, missing string) {
	shown = addr
	if addr == "" {
		addr = os.Getenv("SPIFFE_ENDPOINT_SOCKET")
		shown = addr + " (SPIFFE_ENDPOINT_SOCKET)"
	}
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if _, err := os.Stat(path); err != nil {
			return shown, path
		}
	}
	return shown, ""
}

// workloadError says why no SVID came from the Workload API at addr, and what to check: no
// socket there (the agent not running, or another socket_path), or an agent that gives this
// process nothing (no entry whose selectors match it: the agent's log says "No identity issued",
// with the process's selectors, which this names too).
func workloadError(addr string, err error) error {
	shown, missing := WorkloadSocket(addr)
	if missing != "" {
		return fmt.Errorf("workload API %s: no socket at %s: is the SPIRE agent running, and is this its socket_path? (%w)", shown, missing, err)
	}
	self := fmt.Sprintf("uid %d", os.Getuid())
	if u, uerr := user.Current(); uerr == nil {
		self += ", user " + u.Username
	}
	if exe, eerr := os.Executable(); eerr == nil {
		self += ", path " + exe
	}
	return fmt.Errorf("workload API %s gave this process no SVID in time: register a SPIRE entry whose selectors match it (%s), or check the agent's log for \"No identity issued\" (%w)", shown, self, err)
}

// FileSource reads an SVID and its trust domain's bundle from files and reloads them when they
// change, so certificates can be rotated under a running node. A file that is missing or broken
// on reload is logged and the last good material stays in use.
type FileSource struct {
	certFile, keyFile, bundleFile string
	log                           *slog.Logger

	mu     sync.RWMutex
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
	stamp  []byte
	want   spiffeid.ID // the SVID's ID a reload must keep (Require); zero: any

	stop chan struct{}
	done chan struct{}
}

// DefaultReloadInterval is how often a FileSource looks for changed files.
const DefaultReloadInterval = time.Second

// NewFileSource loads the SVID (certFile, keyFile) and the bundle of its trust domain
// (bundleFile), and checks them for changes every interval (0: DefaultReloadInterval).
func NewFileSource(certFile, keyFile, bundleFile string, interval time.Duration, log *slog.Logger) (*FileSource, error) {
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	if log == nil {
		log = slog.Default()
	}
	s := &FileSource{certFile: certFile, keyFile: keyFile, bundleFile: bundleFile, log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.load(); err != nil {
		return nil, err
	}
	go s.watch(interval)
	return s, nil
}

func (s *FileSource) fingerprint() []byte {
	var b bytes.Buffer
	for _, f := range []string{s.certFile, s.keyFile, s.bundleFile} {
		fi, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&b, "%s:missing;", f)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.Bytes()
}

// FileError is a file of a FileSource that cannot be used. Bundle is false for the SVID's
// certificate or key, true for the bundle.
type FileError struct {
	Bundle bool
	Err    error
}

func (e *FileError) Error() string { return "identity: " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

func (s *FileSource) load() error {
	stamp := s.fingerprint()
	svid, err := x509svid.Load(s.certFile, s.keyFile)
	if err != nil {
		return &FileError{Err: fmt.Errorf("SVID %s / %s: %w", s.certFile, s.keyFile, err)}
	}
	s.mu.RLock()
	want := s.want
	s.mu.RUnlock()
	if !want.IsZero() && svid.ID != want {
		return &FileError{Err: fmt.Errorf("SVID %s names %s, not %s, the identity this process has: %w", s.certFile, svid.ID, want, ErrOtherID)}
	}
	bundle, err := x509bundle.Load(svid.ID.TrustDomain(), s.bundleFile)
	if err != nil {
		return &FileError{Bundle: true, Err: fmt.Errorf("bundle %s: %w", s.bundleFile, err)}
	}
	// A bundle that does not verify the node's own SVID trusts none of its replicas, people or
	// apps either: every handshake would be refused, with the reason only in this node's log.
	// The chain is checked as of the SVID's start: its expiry has an alarm of its own.
	if _, _, err := x509svid.Verify(svid.Certificates, bundle, x509svid.WithTime(svid.Certificates[0].NotBefore)); err != nil {
		return &FileError{Bundle: true, Err: fmt.Errorf("bundle %s does not verify the SVID %s of %s (%w): use the bundle of the CA that issued it", s.bundleFile, svid.ID, s.certFile, err)}
	}
	s.mu.Lock()
	s.svid, s.bundle, s.stamp = svid, bundle, stamp
	s.mu.Unlock()
	return nil
}

func (s *FileSource) watch(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	var refused []byte // the files' fingerprint when a load last failed: not tried, nor said, again
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := s.fingerprint()
		s.mu.RLock()
		same := bytes.Equal(s.stamp, now)
		s.mu.RUnlock()
		if same || bytes.Equal(refused, now) {
			continue // as loaded, or as refused: said once (review AC, AC3)
		}
		refused = nil
		err := s.load()
		if err != nil {
			refused = now
		}
		if errors.Is(err, ErrOtherID) {
			// Another replica's or organisation's SVID would have this process act as that one
			// (review AA, AA7): the start refuses it, and so does a reload.
			s.log.Error("identity files changed to an SVID of another identity: keeping the last good one; issue this process its own SVID", "err", err)
			continue
		} else if err != nil {
			s.log.Warn("identity files changed but cannot be loaded: keeping the last good ones", "err", err)
			continue
		}
		svid, _ := s.GetX509SVID()
		s.log.Info("identity reloaded", "id", svid.ID.String(), "not_after", svid.Certificates[0].NotAfter)
	}
}

// ErrOtherID is a reloaded SVID that names another identity than Require set.
var ErrOtherID = errors.New("another identity's SVID")

// Require has every reload keep the last good files when the new SVID does not name id: a
// process that took one identity at start keeps it (another replica's SVID, issued to the wrong
// files, would have it act as that replica).
func (s *FileSource) Require(id spiffeid.ID) {
	s.mu.Lock()
	s.want = id
	s.mu.Unlock()
}

// GetX509SVID returns the current SVID.
func (s *FileSource) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.svid, nil
}

// GetX509BundleForTrustDomain returns the bundle of the SVID's own trust domain.
func (s *FileSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if td != s.bundle.TrustDomain() {
		return nil, fmt.Errorf("identity: no bundle for trust domain %q", td)
	}
	return s.bundle, nil
}

// Close stops watching the files.
func (s *FileSource) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return nil
}

// ErrNoBundle means no bundle is known for a trust domain.
var ErrNoBundle = errors.New("identity: no bundle for trust domain")
