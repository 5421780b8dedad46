package node

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/invite"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/peers"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// identityParts are the node's SVID source, its trust store, its bundle endpoint, and one bundle
// watcher per peer that has a bundle endpoint.
type identityParts struct {
	trustDomain spiffeid.TrustDomain
	source      identity.Source
	trust       *identity.TrustStore
	endpoint    *identity.BundleEndpoint
	log         *slog.Logger

	mu       sync.Mutex
	watchers map[string]peerWatch   // by trust domain
	known    map[string]config.Peer // the peers of the running config, by trust domain
}

type peerWatch struct {
	peer   config.Peer
	cancel context.CancelFunc
	done   chan struct{}
}

// workloadWait is how long a starting node waits for its first SVID from the Workload API.
const workloadWait = 30 * time.Second

// logWorkloadWait says, before the node waits for its first SVID, where it waits and how long:
// the wait is otherwise silent. A socket that is not there (yet) is a warning: the SPIRE agent
// is not running, or it is another socket_path.
func logWorkloadWait(log *slog.Logger, addr string, wait time.Duration) {
	shown, missing := identity.WorkloadSocket(addr)
	if missing != "" {
		log.Warn("no Workload API socket yet: waiting for the SPIRE agent to make it; is the agent running, and is this its socket_path?",
			"workload_api", shown, "socket", missing, "up_to", wait)
		return
	}
	log.Info("waiting for the node's SVID from the Workload API", "workload_api", shown, "up_to", wait)
}

func startIdentity(ctx context.Context, cfg *config.Config, log *slog.Logger) (*identityParts, error) {
	var (
		src identity.Source
		err error
	)
	switch cfg.Identity.Source {
	case config.SourceFiles:
		src, err = identity.NewFileSource(cfg.Identity.CertFile, cfg.Identity.KeyFile, cfg.Identity.BundleFile, 0, log)
	default:
		var want spiffeid.ID
		if cfg.Identity.SpiffeID != "" {
			if want, err = spiffeid.FromString(cfg.Identity.SpiffeID); err != nil {
				return nil, fmt.Errorf("node: identity.spiffe_id: %w", err)
			}
		}
		// No address at all: nothing to wait for, and the wait's error would send the operator to
		// the SPIRE entries (review AL, AL2).
		if cfg.Identity.WorkloadAPI == "" && os.Getenv("SPIFFE_ENDPOINT_SOCKET") == "" {
			return nil, errors.New("node: identity.workload_api: missing, and SPIFFE_ENDPOINT_SOCKET is not set either: give the SPIRE agent's socket, such as unix:///run/spire/agent/public/api.sock, or identity.source: files with cert_file, key_file and bundle_file")
		}
		logWorkloadWait(log, cfg.Identity.WorkloadAPI, workloadWait)
		wctx, cancel := context.WithTimeout(ctx, workloadWait)
		src, err = identity.NewWorkloadSource(wctx, cfg.Identity.WorkloadAPI, want, log)
		cancel()
	}
	if fe, ok := errors.AsType[*identity.FileError](err); ok {
		field := "identity.cert_file and key_file"
		if fe.Bundle {
			field = "identity.bundle_file"
		}
		return nil, fmt.Errorf("node: %s: %w", field, fe.Err)
	}
	if err != nil {
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	svid, err := src.GetX509SVID()
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("node: identity: %w", err)
	}
	if svid.ID.TrustDomain().Name() != cfg.Org {
		src.Close()
		unset := ""
		if cfg.Org == config.DefaultOrg {
			unset = " (" + config.DefaultOrg + " is the org of a config that sets none: set org to your trust domain)"
		}
		return nil, fmt.Errorf("node: identity: the SVID %s is not of this org's trust domain %s%s", svid.ID, cfg.Org, unset)
	}
	if !identity.IsReplica(svid.ID.TrustDomain(), svid.ID) {
		src.Close()
		return nil, fmt.Errorf("node: identity: the SVID %s is not a replica's: a node needs spiffe://%s/node/%s (check the SPIRE entries that match this process)", svid.ID, cfg.Org, cfg.ReplicaID)
	}
	if want := "/node/" + cfg.ReplicaID; svid.ID.Path() != want {
		// Another replica's SVID would make this one act, in Raft, in forwarded writes and in
		// the audit log, as that replica: removing it from the group would take this one's role
		// away too. A replica needs its own.
		src.Close()
		how := "set identity.cert_file and key_file to r's own SVID files"
		if cfg.Identity.Source != "files" {
			how = "set identity.spiffe_id to spiffe://" + cfg.Org + want + " and register a SPIRE entry for it"
		}
		return nil, fmt.Errorf("node: identity: the SVID %s names another replica than this one (replica_id %s): each replica needs its own, spiffe://%s%s: %s",
			svid.ID, cfg.ReplicaID, cfg.Org, want, strings.Replace(how, "r's", cfg.ReplicaID+"'s", 1))
	}
	if fs, ok := src.(*identity.FileSource); ok {
		fs.Require(svid.ID) // and so at every reload
	}
	p := &identityParts{trustDomain: svid.ID.TrustDomain(), source: src, trust: identity.NewTrustStore(src), log: log, watchers: map[string]peerWatch{}}
	if err := p.setPeers(cfg.Peers); err != nil {
		p.close()
		return nil, err
	}
	if cfg.BundleEndpoint.Listen != "" {
		lis, err := net.Listen("tcp", cfg.BundleEndpoint.Listen)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("node: bundle_endpoint.listen %s: %w", cfg.BundleEndpoint.Listen, err)
		}
		if p.endpoint, err = identity.ServeBundleEndpoint(lis, svid.ID.TrustDomain(), src, cfg.BundleEndpoint.RefreshHint, log); err != nil {
			lis.Close()
			p.close()
			return nil, err
		}
	}
	log.Info("identity ready", "id", svid.ID.String(), "source", cfg.Identity.Source)
	return p, nil
}

// setPeers brings the trust store and the bundle watchers in line with the configured peers. A
// peer's bundle file is read only when the peer is new: after that, its bundle endpoint keeps it
// current.
func (p *identityParts) setPeers(peers []config.Peer) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[string]config.Peer{}
	for _, peer := range peers {
		want[peer.TrustDomain] = peer
	}
	for td, w := range p.watchers {
		if np, ok := want[td]; !ok || np.BundleEndpoint != w.peer.BundleEndpoint || np.EndpointID != w.peer.EndpointID {
			w.cancel()
			<-w.done
			delete(p.watchers, td)
		}
	}
	for _, b := range p.trustedPeers() {
		if _, ok := want[b.String()]; !ok {
			p.trust.RemovePeer(b)
			p.log.Info("peer removed", "peer_trust_domain", b.String())
		}
	}
	for td, peer := range want {
		ptd, err := spiffeid.TrustDomainFromString(td)
		if err != nil {
			return err
		}
		// A peer's bundle from a file is read only when the peer is new. One that came with an
		// invitation is set again when a replaced invitation brings another.
		switch old, known := p.known[td]; {
		case !p.trust.HasPeer(ptd) && peer.BundleFile != "":
			b, err := loadBundleFile(ptd, peer)
			if err != nil {
				return err
			}
			p.trust.SetPeerBundle(b)
			p.log.Info("peer added", "peer", peer.Name, "peer_trust_domain", td, "source", peer.Source)
		case len(peer.Bundle) > 0 && (!p.trust.HasPeer(ptd) || !known || !bytes.Equal(old.Bundle, peer.Bundle)):
			b, err := x509bundle.Parse(ptd, peer.Bundle)
			if err != nil {
				return fmt.Errorf("node: peer %s: bundle: %w", peer.Name, err)
			}
			p.trust.SetPeerBundle(b)
			p.log.Info("peer added", "peer", peer.Name, "peer_trust_domain", td, "source", peer.Source)
		}
		if _, running := p.watchers[td]; running || peer.BundleEndpoint == "" {
			continue
		}
		eid, err := spiffeid.FromString(peer.EndpointID)
		if err != nil {
			return fmt.Errorf("node: peer %s: endpoint_id: %w", peer.Name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		w := peerWatch{peer: peer, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(w.done)
			identity.WatchPeerBundle(ctx, p.trust, identity.PeerEndpoint{
				TrustDomain: ptd, URL: peer.BundleEndpoint, EndpointID: eid,
			}, p.log)
		}()
		p.watchers[td] = w
	}
	p.known = want
	return nil
}

// bundleOf refuses a peer's bundle file that holds the CA of another trust domain: one whose
// certificate names a SPIFFE ID (spiffe://TD) of another trust domain. Taken in, it failed
// every call later with "x509: certificate signed by unknown authority", which does not say
// what to fix (review O, O9). A CA that names no SPIFFE ID is taken: SPIRE's upstream CAs may
// name none.
// checkNewBundles reads the bundle file of each peer of peers that the trust store does not hold
// yet, as setPeers will, and checks it: a reload refused for a bad file must be refused before
// it changes anything (review Q, Q4: peers dropped in the same edit had left already).
func (p *identityParts) checkNewBundles(peers []config.Peer) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, peer := range peers {
		ptd, err := spiffeid.TrustDomainFromString(peer.TrustDomain)
		if err != nil || peer.BundleFile == "" || p.trust.HasPeer(ptd) {
			continue
		}
		if _, err := loadBundleFile(ptd, peer); err != nil {
			return err
		}
	}
	return nil
}

// loadBundleFile reads a peer's bundle_file and checks that its CAs are the peer's (bundleOf).
func loadBundleFile(td spiffeid.TrustDomain, peer config.Peer) (*x509bundle.Bundle, error) {
	b, err := x509bundle.Load(td, peer.BundleFile)
	if err != nil {
		return nil, fmt.Errorf("node: peer %s: bundle_file: %w", peer.Name, err)
	}
	if err := bundleOf(peer, b); err != nil {
		return nil, err
	}
	return b, nil
}

func bundleOf(peer config.Peer, b *x509bundle.Bundle) error {
	for _, ca := range b.X509Authorities() {
		for _, u := range ca.URIs {
			id, err := spiffeid.FromURI(u)
			if err != nil || id.TrustDomain().Name() == peer.TrustDomain {
				continue
			}
			return fmt.Errorf("node: bundle_file of peer %s (%s) holds the CA of %s, not of %s: is it the right file? Give the bundle that %s handed over at onboarding",
				peer.Name, peer.BundleFile, id.TrustDomain().Name(), peer.TrustDomain, peer.Name)
		}
	}
	return nil
}

func (p *identityParts) trustedPeers() []spiffeid.TrustDomain {
	var out []spiffeid.TrustDomain
	for td := range p.known {
		if ptd, err := spiffeid.TrustDomainFromString(td); err == nil {
			out = append(out, ptd)
		}
	}
	return out
}

func (p *identityParts) close() {
	p.mu.Lock()
	for _, w := range p.watchers {
		w.cancel()
		<-w.done
	}
	p.watchers = nil
	p.mu.Unlock()
	if p.endpoint != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		p.endpoint.Close(ctx)
		cancel()
	}
	p.source.Close()
}

// configStamp tells one state of the config file at path from another; "" when it cannot be read.
func configStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
}

// watchConfig reloads roles and peers when the config file changes from its state last (the
// caller stamps it before the watcher starts, so that a change made meanwhile is not missed). A
// file that does not load is logged and the running config stays.
func (n *Node) watchConfig(path, last string, interval time.Duration, stop <-chan struct{}) {
	if interval <= 0 {
		interval = time.Second
	}
	stamp := func() string { return configStamp(path) }
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if s := stamp(); s == last || s == "" {
			continue
		} else {
			last = s
		}
		if err := n.Reload(path); err != nil {
			metrics.ConfigBroken.Set(1)
			n.setConfigState(func(c *configState) {
				if c.broken == "" {
					c.since = time.Now()
				}
				c.broken = err.Error()
			})
			n.log.Warn("config changed but not reloaded: the running config stays, and the node would not start with this file", "err", err)
		} else {
			metrics.ConfigBroken.Set(0)
			n.setConfigState(func(c *configState) { c.broken = "" })
		}
	}
}

// configState is what the last look at the config file found (Node.cfgState).
type configState struct {
	broken     string // why the file does not load; "" when it does
	since      time.Time
	restartFor []string
}

// setConfigState changes a copy of the config file's state with f and keeps it. Only the config
// watcher and Reload call it, one at a time.
func (n *Node) setConfigState(f func(*configState)) {
	var c configState
	if old := n.cfgState.Load(); old != nil {
		c = *old
	}
	f(&c)
	n.cfgState.Store(&c)
}

// configState is the config file's state for status.
func (n *Node) configState() (string, time.Time, []string) {
	c := n.cfgState.Load()
	if c == nil {
		return "", time.Time{}, nil
	}
	return c.broken, c.since, c.restartFor
}

// Reload applies the roles and peers of the config file at path. Other settings need a restart.
func (n *Node) Reload(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if cfg.Org != n.opts.Config.Org {
		return fmt.Errorf("org changed from %s to %s: that needs a restart", n.opts.Config.Org, cfg.Org)
	}
	if n.ident != nil {
		if err := n.ident.checkNewBundles(cfg.Peers); err != nil {
			return err
		}
	}
	n.leaveDropped(cfg)
	before := n.fileCfg.Load()
	if err := n.applyPeers(cfg); err != nil {
		return err
	}
	n.auditReload(before, cfg)
	later := config.RestartKeys(n.opts.Config, cfg)
	n.setConfigState(func(c *configState) { c.restartFor = later })
	if len(later) > 0 {
		metrics.ConfigRestartPending.Set(1)
		n.log.Warn("config reloaded, but some of its changes apply only after a restart: the running node keeps their old values",
			"restart_for", later, "roles", len(cfg.Roles), "peers", len(n.cfg.Load().Peers))
		return nil
	}
	metrics.ConfigRestartPending.Set(0)
	n.log.Info("config reloaded", "roles", len(cfg.Roles), "peers", len(n.cfg.Load().Peers))
	return nil
}

// auditReload writes into the audit log, on the leader, what a reload of the config file changed
// that decides who gets what: a peer added to the file or placed in other groups (with the
// approved policies that now grant it records, as peer accept says), and roles given or taken.
// Such a change widened sharing with no trace but a log line (review L, L5). A peer the file
// no longer lists leaves through Raft, which audits it (leaveDropped). Each replica reloads its
// own file, and decides by it what it discloses to partners that ask it: each audits its own
// reload, naming itself, a follower through its leader.
func (n *Node) auditReload(before, after *config.Config) {
	if before == nil || n.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entries := n.configChanges(ctx, before, after, "config file of replica "+after.ReplicaID, false)
	if len(entries) > 0 {
		if err := n.appendAudit(ctx, entries); err != nil {
			// Kept as it was, the next start audits them.
			n.log.Warn("a reload of the config file changed peers or roles, and the audit log could not take it", "entries", len(entries), "err", err)
			return
		}
	}
	n.seenMu.Lock()
	defer n.seenMu.Unlock()
	if n.seenPending {
		// The start's audit is not taken yet: kept once it is (keepStarted), and a stop before
		// leaves the file as it was, for the next start to audit all.
		n.seenLater = after
		return
	}
	n.writeConfigSeen(after)
}

// configChanges are the audit entries (config.reload, by actor) of what the config file changed
// from before to after that decides who gets what: peers added or placed in other groups, and,
// when removed is set, peers the file no longer lists (a reload audits those as they leave);
// and roles given or taken.
func (n *Node) configChanges(ctx context.Context, before, after *config.Config, actor string, removed bool) []*pb.AuditEntry {
	var entries []*pb.AuditEntry
	add := func(subject string, detail map[string]any) {
		b, _ := json.Marshal(detail)
		entries = append(entries, &pb.AuditEntry{At: timestamppb.Now(), Actor: actor, Action: db.AuditConfigReload, Subject: subject, Detail: string(b)})
	}
	for _, p := range after.Peers {
		i := slices.IndexFunc(before.Peers, func(q config.Peer) bool { return q.TrustDomain == p.TrustDomain })
		var was []string
		if i >= 0 {
			was = before.Peers[i].Groups
			if slices.Equal(was, p.Groups) {
				continue
			}
		}
		granting, err := peers.Granting(ctx, n.db, p.Groups, was)
		if err != nil {
			n.log.Warn("could not list the policies a peer's new groups grant, for the audit log", "peer", p.Name, "err", err)
		}
		what := map[string]any{"name": p.Name, "groups": p.Groups, "groups_before": was, "granting": granting, "added": i < 0}
		add(p.TrustDomain, what)
		if len(granting) > 0 {
			n.log.Warn("the config file placed a peer in groups that approved policies name: they grant it records from now on", "peer", p.Name, "groups", p.Groups, "policies", granting)
		}
	}
	if removed {
		for _, p := range before.Peers {
			if !slices.ContainsFunc(after.Peers, func(q config.Peer) bool { return q.TrustDomain == p.TrustDomain }) {
				add(p.TrustDomain, map[string]any{"name": p.Name, "groups": []string{}, "groups_before": p.Groups, "removed": true})
			}
		}
	}
	binding := func(r config.RoleBinding) string { return cmp.Or(r.ID, r.Prefix+"*") + " " + r.Role }
	var given, taken []string
	for _, r := range after.Roles {
		if !slices.Contains(before.Roles, r) {
			given = append(given, binding(r))
		}
	}
	for _, r := range before.Roles {
		if !slices.Contains(after.Roles, r) {
			taken = append(taken, binding(r))
		}
	}
	if len(given)+len(taken) > 0 {
		add("roles", map[string]any{"given": given, "taken": taken})
	}
	return entries
}

// leaveDropped makes each peer that the new config file no longer lists leave, as `peer remove`
// does: the leader writes it into the peers table through Raft as leaving, with its bundle, so
// that every replica keeps trusting it, and grants it nothing, until its subscription has
// retracted what it holds and the leader refuses it (peers.RunLeaving). Only the leader takes
// the step; a follower that reloads first refuses the peer until the step commits.
func (n *Node) leaveDropped(file *config.Config) {
	if n.store == nil || !n.store.IsLeader() {
		return
	}
	old := n.fileCfg.Load()
	if old == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raft, err := n.db.Peers(ctx)
	if err != nil {
		n.log.Warn("could not read the peers to see which left the config file", "err", err)
		return
	}
	for _, p := range old.Peers {
		if p.Source == config.PeerFromRaft ||
			slices.ContainsFunc(file.Peers, func(q config.Peer) bool { return q.TrustDomain == p.TrustDomain }) ||
			slices.ContainsFunc(raft, func(q *pb.PeerInfo) bool { return q.TrustDomain == p.TrustDomain }) {
			continue
		}
		td, err := spiffeid.TrustDomainFromString(p.TrustDomain)
		if err != nil {
			continue
		}
		pem := p.Bundle
		if p.BundleFile != "" {
			if pem, err = os.ReadFile(p.BundleFile); err != nil {
				n.log.Warn("a peer left the config file, and its bundle file cannot be read: it is refused at once, without leaving", "peer", p.Name, "err", err)
				continue
			}
		}
		b, err := x509bundle.Parse(td, pem)
		if err != nil {
			n.log.Warn("a peer left the config file, and its bundle does not parse: it is refused at once, without leaving", "peer", p.Name, "err", err)
			continue
		}
		step := &pb.PeerStep{Action: "leave", Actor: "config file", At: timestamppb.Now(), Reason: "removed from the config file",
			Peer: &pb.PeerInfo{Name: p.Name, TrustDomain: p.TrustDomain, Addresses: p.Addresses, Bundle: pem, BundleEndpoint: p.BundleEndpoint,
				EndpointId: p.EndpointID, Groups: p.Groups, Fingerprint: invite.Fingerprint(td, b), Invitation: db.LeftConfigFile}}
		if _, err := n.store.Apply(ctx, &pb.Command{Cmd: &pb.Command_PeerStep{PeerStep: step}}); err != nil {
			n.log.Warn("a peer left the config file, and could not be made to leave: it is refused at once", "peer", p.Name, "err", err)
			continue
		}
		n.log.Info("peer leaving: removed from the config file", "peer", p.Name, "peer_trust_domain", p.TrustDomain)
	}
}

// mergePeers is file with the peers accepted through Raft merged in (see peers.Merge).
func (n *Node) mergePeers(ctx context.Context, file *config.Config) (*config.Config, error) {
	raft, err := n.db.Peers(ctx)
	if err != nil {
		return nil, fmt.Errorf("node: peers: %w", err)
	}
	return peers.Merge(file, raft), nil
}

// applyPeers makes file, with the peers accepted through Raft, the running config: the
// authorizer, the trust store and the bundle watchers change at once, and the subscriptions and
// search follow the running config.
func (n *Node) applyPeers(file *config.Config) error {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	gen := n.db.PeersGeneration()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := n.mergePeers(ctx, file)
	if err != nil {
		return err
	}
	access, err := api.NewAccess(cfg)
	if err != nil {
		return err
	}
	if n.ident != nil {
		if err := n.ident.setPeers(cfg.Peers); err != nil {
			return err
		}
	}
	n.authz.SetAccess(access)
	n.fileCfg.Store(file)
	n.cfg.Store(cfg)
	n.peersGen = gen
	if n.peers != nil {
		// A peer added or removed gets its subscription started or stopped now, not at the
		// manager's next tick.
		n.peers.Reconcile()
	}
	return nil
}

// refreshPeers merges the peers again if a peer step changed them since the last merge.
func (n *Node) refreshPeers() error {
	n.peersMu.Lock()
	stale := n.db.PeersGeneration() != n.peersGen
	n.peersMu.Unlock()
	if !stale {
		return nil
	}
	if err := n.applyPeers(n.fileCfg.Load()); err != nil {
		return err
	}
	n.log.Info("peers changed", "peers", len(n.cfg.Load().Peers))
	return nil
}

// watchPeers merges the peers again after every committed step that changed them (or a
// snapshot restore), on every replica, so that an accepted peer needs no restart anywhere.
func (n *Node) watchPeers(stop <-chan struct{}) {
	for {
		changed := n.db.Changed()
		if err := n.refreshPeers(); err != nil {
			n.log.Warn("peers changed but could not be applied: the running peers stay", "err", err)
		}
		select {
		case <-stop:
			return
		case <-changed:
		}
	}
}
