package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
// log hears when the Workload API stops answering, once an outage, and when it answers again
// (nil: slog.Default); the source's Renewal says the same (review AK, AK1).
func NewWorkloadSource(ctx context.Context, addr string, want spiffeid.ID, log *slog.Logger) (Source, error) {
	if log == nil {
		log = slog.Default()
	}
	shown, _ := WorkloadSocket(addr)
	w := &workloadWatch{log: log, shown: shown, want: want}
	client := []workloadapi.ClientOption{workloadapi.WithLogger(watchLog{w})}
	if addr != "" {
		client = append(client, workloadapi.WithAddr(addr))
	}
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(client...), workloadapi.WithDefaultX509SVIDPicker(w.pick))
	if err != nil {
		return nil, workloadError(addr, w.lastError(), err)
	}
	if _, err := src.GetX509SVID(); err != nil {
		src.Close()
		return nil, fmt.Errorf("the workload API %s offers %s, not %s: pick one of those, or ask the SPIRE admin for an entry for %s",
			addr, strings.Join(w.offers(), ", "), want, want)
	}
	return &workloadSource{src, w}, nil
}

// workloadSource is the Workload API's X509Source, with what its watch met (Renewal).
type workloadSource struct {
	*workloadapi.X509Source
	w *workloadWatch
}

// Renewal says since when the Workload API has not renewed the SVID (it does not answer, or no
// longer offers the SVID's ID) and why; the zero time while it answers.
func (s *workloadSource) Renewal() (since time.Time, why string) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.w.failingSince, s.w.why
}

// workloadWatch follows what the Workload API gives a source: each update it picks the SVID
// from, and each failure of its watch, which go-spiffe logs and retries (watchLog).
type workloadWatch struct {
	log   *slog.Logger
	shown string      // the address, as messages show it
	want  spiffeid.ID // zero: the agent's default

	mu           sync.Mutex
	offered      []string       // the IDs of the latest update
	last         *x509svid.SVID // the SVID picked last
	failingSince time.Time      // zero while the API answers with the SVID
	why          string         // why not, since failingSince
	err          error          // the watch's last failure, for the error of a start that got none
}

// pick is the SVID of an update: the wanted one, or the agent's default. An update that no
// longer holds the wanted ID (its entry deleted, while another entry still matches the process)
// keeps the last SVID until it expires, as a watch that fails does: go-spiffe would serve none
// at once, and every new handshake of the replica would fail without a word (review AK, AK3).
func (w *workloadWatch) pick(svids []*x509svid.SVID) *x509svid.SVID {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.offered = w.offered[:0]
	var picked *x509svid.SVID
	for _, s := range svids {
		w.offered = append(w.offered, s.ID.String())
		if picked == nil && (w.want.IsZero() || s.ID == w.want) {
			picked = s
		}
	}
	if picked != nil {
		if !w.failingSince.IsZero() && w.last != nil {
			w.log.Info("the Workload API renews this replica's SVID again", "workload_api", w.shown, "id", picked.ID.String(),
				"failed_for", time.Since(w.failingSince).Round(time.Second))
		}
		w.last, w.failingSince, w.why = picked, time.Time{}, ""
		return picked
	}
	if w.last == nil {
		return nil // at start: NewWorkloadSource says what it offers
	}
	why := fmt.Sprintf("the SPIRE agent no longer offers %s (it offers %s): check the SPIRE entries whose selectors match this process", w.want, orNone(w.offered))
	w.failed(why, nil)
	return w.last
}

// failed notes that the SVID is not renewed, for why (err, the watch's, when it failed), and says
// so at the first failure of an outage: an SVID that is not renewed expires, and partners and
// replicas refuse it then. The failures after it, which go-spiffe retries with a backoff, are
// said at debug level. Called with mu held.
func (w *workloadWatch) failed(why string, err error) {
	if err != nil {
		w.err = err
	}
	if !w.failingSince.IsZero() {
		w.why = why
		w.log.Debug("the Workload API still gives no SVID", "workload_api", w.shown, "why", why)
		return
	}
	w.failingSince, w.why = time.Now(), why
	if w.last == nil {
		// At start, before the first SVID: the wait for it says how long it waits.
		w.log.Warn("the Workload API gives this process no SVID yet", "workload_api", w.shown, "why", why)
		return
	}
	w.log.Warn("the Workload API gives this replica no SVID now: the one it has is not renewed, and partners and replicas refuse it once it expires",
		"workload_api", w.shown, "why", why, "id", w.last.ID.String(), "expires", w.last.Certificates[0].NotAfter)
}

// lastError is the watch's last failure, nil when it had none.
func (w *workloadWatch) lastError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// offers are the IDs of the latest update.
func (w *workloadWatch) offers() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.offered)
}

func orNone(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// watchLog is go-spiffe's logger for a source's Workload API client: a failed watch goes to the
// source's workloadWatch, which says it once an outage; the rest is debug, or a warning as
// go-spiffe rates it. go-spiffe's own default logs nothing, so an agent that stopped was heard
// of only when the SVID expired, up to half its life later.
type watchLog struct{ w *workloadWatch }

func (l watchLog) Debugf(format string, args ...any) {
	l.w.log.Debug(fmt.Sprintf(format, args...), "component", "workloadapi")
}
func (l watchLog) Infof(format string, args ...any) {
	l.w.log.Debug(fmt.Sprintf(format, args...), "component", "workloadapi")
}
func (l watchLog) Warnf(format string, args ...any) {
	l.w.log.Warn(fmt.Sprintf(format, args...), "component", "workloadapi")
}

func (l watchLog) Errorf(format string, args ...any) {
	// go-spiffe v2.9.0: "Failed to watch the Workload API: %v", then it retries.
	if err, ok := singleError(args); ok && strings.HasPrefix(format, "Failed to watch the Workload API") {
		l.w.mu.Lock()
		l.w.failed(workloadWhy(err), err)
		l.w.mu.Unlock()
		return
	}
	if strings.HasPrefix(format, "Canceling watch") {
		l.Debugf(format, args...) // the source closing
		return
	}
	l.Warnf(format, args...)
}

func singleError(args []any) (error, bool) {
	if len(args) != 1 {
		return nil, false
	}
	err, ok := args[0].(error)
	return err, ok
}

// workloadWhy says what a failed watch of the Workload API means, and what to check.
func workloadWhy(err error) string {
	msg := err.Error()
	switch {
	case status.Code(err) == codes.PermissionDenied:
		return "the SPIRE agent issues this process no identity (no entry's selectors match it, " + selfSelectors() + "): " + msg
	case strings.Contains(msg, "connection refused"):
		return "the socket is there, but no SPIRE agent answers on it: is the agent running? (" + msg + ")"
	case strings.Contains(msg, "no such file or directory"):
		return "no socket: is the SPIRE agent running, and is this its socket_path? (" + msg + ")"
	}
	return msg
}

// selfSelectors are what SPIRE's unix workload attestor sees of this process.
func selfSelectors() string {
	self := fmt.Sprintf("uid %d", os.Getuid())
	if u, err := user.Current(); err == nil {
		self += ", user " + u.Username
	}
	if exe, err := os.Executable(); err == nil {
		self += ", path " + exe
	}
	return self
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
// socket there (the agent not running, or another socket_path), a socket no agent answers on
// (one a killed agent left), or an agent that gives this process nothing (no entry whose
// selectors match it: the agent's log says "No identity issued", with the process's selectors,
// which this names too). last is the watch's last failure, nil when it saw none.
func workloadError(addr string, last, err error) error {
	shown, missing := WorkloadSocket(addr)
	if missing != "" {
		return fmt.Errorf("workload API %s: no socket at %s: is the SPIRE agent running, and is this its socket_path? (%w)", shown, missing, err)
	}
	if last != nil && status.Code(last) != codes.PermissionDenied {
		return fmt.Errorf("workload API %s gave this process no SVID in time: %s (%w)", shown, workloadWhy(last), err)
	}
	return fmt.Errorf("workload API %s gave this process no SVID in time: register a SPIRE entry whose selectors match it (%s), or check the agent's log for \"No identity issued\" (%w)", shown, selfSelectors(), err)
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
