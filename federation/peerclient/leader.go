package peerclient

import (
	"context"
	"time"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// A follower subscribes to no peer: the leader keeps the subscriptions. So that a follower's
// Changed still tells when a partner goes away or comes back (its web interface's open pictures
// ask the partners again then, as the leader's do), a follower watches the leader's: the
// leader's ReplicaService WatchPartners answers with its generation at once and again at each
// change, on one stream a follower keeps open. A stream, not a poll of the leader's status: an
// idle group sends nothing on it, where a poll would cost each follower a call a second and still
// be up to a second late. Which replica leads is read at each reconcile, every 250 ms, as
// whether this one leads: when another leads, the follower watches that one.

// leaderWatch is a follower's watch of one leader.
type leaderWatch struct {
	leader string // the leader's replica id; "" while none is watched
	cancel context.CancelFunc
	done   chan struct{}
}

// watchLeaderBackoff bounds the wait before a follower watches its leader again after the
// stream failed: a leader of an earlier release, which has no WatchPartners, is asked this
// often at most. A change of leader watches the new one at once.
const watchLeaderBackoff = 30 * time.Second

// watchLeader has this replica watch the leader's changes while it follows one, and stop when
// it leads or knows no leader. Only Run calls it.
func (m *Manager) watchLeader(ctx context.Context, leading bool) {
	id := ""
	if !leading && m.c.Leader != nil {
		id = m.c.Store.Leader()
	}
	if id == m.watch.leader {
		return
	}
	m.stopWatch()
	if id == "" {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	m.watch = leaderWatch{leader: id, cancel: cancel, done: done}
	go func() {
		defer close(done)
		m.hearLeader(wctx, id)
	}()
}

// stopWatch ends the watch of the leader, if any.
func (m *Manager) stopWatch() {
	if m.watch.cancel != nil {
		m.watch.cancel()
		<-m.watch.done
	}
	m.watch = leaderWatch{}
}

// hearLeader watches leader's changes until ctx ends, watching again after a failure.
func (m *Manager) hearLeader(ctx context.Context, leader string) {
	delay := time.Second
	for {
		heard, err := m.hearLeaderOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if heard {
			delay = time.Second
		}
		m.c.Logger.Debug("watching the leader's subscriptions to the partners again", "leader", leader, "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, watchLeaderBackoff)
	}
}

// hearLeaderOnce watches the leader on one stream until it ends, and reports whether the leader
// answered on it. Each change of the leader's generation closes this replica's Changed; so does
// the first answer, as what changed while no stream was open (this replica started, another
// leads, the stream broke) is not known.
func (m *Manager) hearLeaderOnce(ctx context.Context) (heard bool, err error) {
	conn, err := m.c.Leader()
	if err != nil {
		return false, err
	}
	stream, err := pb.NewReplicaServiceClient(conn).WatchPartners(ctx, &pb.WatchPartnersRequest{})
	if err != nil {
		return false, err
	}
	var last uint64
	for {
		resp, err := stream.Recv()
		if err != nil {
			return heard, err
		}
		if !heard || resp.Generation != last {
			m.flip()
		}
		heard, last = true, resp.Generation
	}
}
