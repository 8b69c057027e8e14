package replica

import (
	"context"
	"sync"
)

// headCoalescer shares log-head lookups between concurrent
// fully_consistent reads. A read may only use a lookup that started after
// the read arrived (so the head it learns is at least the head as of the
// read); every read waiting meanwhile joins the next lookup, so under load
// there is about one lookup per round trip instead of one per read.
type headCoalescer struct {
	head func(ctx context.Context) (uint64, error)

	mu      sync.Mutex
	running bool
	next    *headCall // the lookup that will start when the running one ends
}

type headCall struct {
	done    chan struct{}
	seq     uint64
	err     error
	waiters int // reads that joined it; guarded by headCoalescer.mu
	// ctx is the context of the read that created the call; the lookup
	// runs under it without its cancellation.
	ctx context.Context
}

func (h *headCoalescer) get(ctx context.Context) (uint64, error) {
	h.mu.Lock()
	if h.next == nil {
		h.next = &headCall{done: make(chan struct{}), ctx: ctx}
	}
	c := h.next
	c.waiters++
	if !h.running {
		h.start()
	}
	h.mu.Unlock()
	select {
	case <-c.done:
		return c.seq, c.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// start runs the waiting call; h.mu is held.
func (h *headCoalescer) start() {
	c := h.next
	h.next, h.running = nil, true
	go func() {
		// Not cancelled with the read that created it: others share this
		// lookup; it is bounded by headLookupTimeout instead.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), headLookupTimeout)
		c.seq, c.err = h.head(ctx)
		cancel()
		close(c.done)
		h.mu.Lock()
		h.running = false
		if h.next != nil {
			h.start()
		}
		h.mu.Unlock()
	}()
}
