package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/knooppunt/knooppunt/node/config"
)

// ConfigSeenFile, in the data directory, keeps what of the config file decides who gets what
// (its peers with their groups, and its roles) as the replica last ran with it: at start, a
// replica audits what was changed there while it was stopped, as a reload audits a change made
// while it runs.
const ConfigSeenFile = "config-seen.json"

// configSeen is the content of ConfigSeenFile.
type configSeen struct {
	Peers []seenPeer           `json:"peers"`
	Roles []config.RoleBinding `json:"roles"`
}

type seenPeer struct {
	Name        string   `json:"name"`
	TrustDomain string   `json:"trust_domain"`
	Groups      []string `json:"groups"`
}

func seenOf(cfg *config.Config) configSeen {
	s := configSeen{Peers: []seenPeer{}, Roles: cfg.Roles}
	for _, p := range cfg.Peers {
		s.Peers = append(s.Peers, seenPeer{Name: p.Name, TrustDomain: p.TrustDomain, Groups: p.Groups})
	}
	return s
}

// config is the seen state as a config, for configChanges.
func (s configSeen) config() *config.Config {
	c := &config.Config{Roles: s.Roles}
	for _, p := range s.Peers {
		c.Peers = append(c.Peers, config.Peer{Name: p.Name, TrustDomain: p.TrustDomain, Groups: p.Groups})
	}
	return c
}

// writeConfigSeen writes cfg's peers and roles to ConfigSeenFile, beside itself first, so that a
// crash never leaves half of it. The caller holds seenMu.
func (n *Node) writeConfigSeen(cfg *config.Config) {
	b, err := json.MarshalIndent(seenOf(cfg), "", "  ")
	if err != nil {
		panic(err) // strings
	}
	path := filepath.Join(n.opts.DataDir, ConfigSeenFile)
	if err := writeFileAtomic(path, b); err != nil {
		n.log.Warn("could not keep the config's peers and roles for the next start: a change made while the node is stopped will not be audited", "file", path, "err", err)
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// auditEditsWhileStopped audits, once the group has a leader to take the entries, what the
// config file the replica started with changed from the one it last ran with (ConfigSeenFile):
// peers added, placed in other groups or taken out, and roles given or taken, by "config file of
// replica ID, edited while it was stopped". Until the entries are taken, the file stays as it
// was, so that the next start audits them. A first start, or a data directory of an earlier
// release, has no such file: it is written, and nothing audited.
func (n *Node) auditEditsWhileStopped(ctx context.Context, started *config.Config) {
	// Until keepStarted, a reload does not write the file (seenPending): a stop before the
	// entries are taken leaves it as it was, so that the next start audits them (review Q, Q5).
	path := filepath.Join(n.opts.DataDir, ConfigSeenFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A data directory with an audit log ran before: its file was removed, or it is of a
		// release that kept none, or a restore; edits made before this start go unaudited.
		if seq, _, err := n.db.AuditHead(ctx); err == nil && seq > 0 {
			n.log.Warn("no record of the config this replica last ran with: changes made to the config file before this start are not audited", "file", path)
		}
		n.keepStarted(started)
		return
	}
	var seen configSeen
	if err == nil {
		err = json.Unmarshal(data, &seen)
	}
	if err != nil {
		n.log.Warn("could not read the config's peers and roles of the last run: changes made while the node was stopped are not audited", "file", path, "err", err)
		n.keepStarted(started)
		return
	}
	entries := n.configChanges(ctx, seen.config(), started, "config file of replica "+started.ReplicaID+", edited while it was stopped", true)
	if len(entries) == 0 {
		n.keepStarted(started)
		return
	}
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.appendAudit(actx, entries)
		cancel()
		if err == nil {
			break
		}
		n.log.Debug("the audit log could not yet take the config changes made while the node was stopped; trying again", "err", err)
		select {
		case <-ctx.Done():
			n.log.Warn("stopped before the audit log took the config changes made while the node was stopped: the next start audits them", "entries", len(entries))
			return
		case <-time.After(time.Second):
		}
	}
	n.log.Warn("the config file was changed while the node was stopped: audited", "entries", len(entries))
	n.keepStarted(started)
}

// keepStarted writes to ConfigSeenFile the config the replica started with, or that of the last
// reload audited since (seenLater). A reload whose audit failed is not kept: the next start
// audits it.
func (n *Node) keepStarted(started *config.Config) {
	n.seenMu.Lock()
	defer n.seenMu.Unlock()
	n.writeConfigSeen(cmp.Or(n.seenLater, started))
	n.seenPending, n.seenLater = false, nil
}
