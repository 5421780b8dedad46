package store

import (
	"context"
	"sync"
)

// background counts the commands that callers commit without waiting for them: the audit entry
// of a search or of a read of confidential records, committed while the answer travels. Settle
// waits for those counted before it, so that a reader of the audit log sees every step answered
// before the read.
type background struct {
	mu     sync.Mutex
	cnd    *sync.Cond
	ticket uint64
	open   map[uint64]bool
}

// Background counts one command that the caller commits without waiting for it; done says that
// it was committed or failed.
func (s *Store) Background() (done func()) {
	b := &s.bg
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ticket++
	t := b.ticket
	b.open[t] = true
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.open, t)
		b.cnd.Broadcast()
	}
}

// Settle waits until every command Background counted before it is committed or failed, or ctx
// ends.
func (s *Store) Settle(ctx context.Context) error {
	b := &s.bg
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.cnd.Broadcast()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	upTo := b.ticket
	for ctx.Err() == nil {
		pending := false
		for t := range b.open {
			if t <= upTo {
				pending = true
				break
			}
		}
		if !pending {
			return nil
		}
		b.cnd.Wait()
	}
	return ctx.Err()
}
