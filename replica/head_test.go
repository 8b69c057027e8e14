package replica

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iam-project/iam/eventlog/eventlogtest"
)

// TestHeadCoalescer: concurrent reads share lookups, and no read uses a
// lookup that started before it arrived.
func TestHeadCoalescer(t *testing.T) {
	var calls atomic.Int64
	var head atomic.Uint64
	release := make(chan struct{})
	h := headCoalescer{head: func(ctx context.Context) (uint64, error) {
		calls.Add(1)
		seq := head.Load() // the head as of the lookup's start
		<-release
		return seq, nil
	}}
	head.Store(10)
	first := make(chan uint64)
	go func() { s, _ := h.get(context.Background()); first <- s }()
	eventlogtest.Eventually(t, 10*time.Second, "the first lookup to start", func() bool { return calls.Load() != 0 })
	// The log grows while the first lookup runs; later readers must not get
	// the first lookup's (older) answer.
	head.Store(20)
	var wg sync.WaitGroup
	got := make([]uint64, 50)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], _ = h.get(context.Background()) }()
	}
	eventlogtest.Eventually(t, 10*time.Second, "every reader to queue behind the running lookup", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.next != nil && h.next.waiters == len(got)
	})
	close(release)
	if s := <-first; s != 10 {
		t.Fatalf("first reader: got head %d, want 10", s)
	}
	wg.Wait()
	for i, s := range got {
		if s < 20 {
			t.Fatalf("reader %d: got head %d from a lookup older than its arrival, want >= 20", i, s)
		}
	}
	if n := calls.Load(); n > 3 {
		t.Fatalf("got %d lookups for 51 readers, want them shared (<= 3)", n)
	}
}
