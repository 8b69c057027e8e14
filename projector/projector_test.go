package projector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/projector"
)

// memSink is an in-memory Sink that records every entry and fails the test
// on a gap or a repeat.
type memSink struct {
	t  testing.TB
	mu sync.Mutex

	applied uint64
	msgID   string
	seqs    []uint64
	batches int

	failures int // ApplyEntries fails this many times first, applying nothing

	gate     chan struct{} // if set, ApplyEntries of gateSeq waits for it to close
	gateSeq  uint64
	atGate   chan struct{}
	gateOnce sync.Once
}

func (s *memSink) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

func (s *memSink) AppliedMsgID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgID
}

func (s *memSink) ApplyEntries(entries []iam.LogEntry) error {
	if s.gate != nil && entries[0].Seq <= s.gateSeq && s.gateSeq <= entries[len(entries)-1].Seq {
		s.gateOnce.Do(func() { close(s.atGate) })
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		s.failures--
		return errors.New("sink: injected failure")
	}
	for _, e := range entries {
		if e.Seq != s.applied+1 {
			s.t.Errorf("sink: got sequence %d, want %d", e.Seq, s.applied+1)
		}
		s.applied = e.Seq
		s.msgID = e.MsgID
		s.seqs = append(s.seqs, e.Seq)
	}
	s.batches++
	return nil
}

func (s *memSink) snapshot() (seqs []uint64, batches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.seqs...), s.batches
}

// checkSeqs fails unless seqs is exactly from, from+1, ..., to.
func checkSeqs(t *testing.T, seqs []uint64, from, to uint64) {
	t.Helper()
	if uint64(len(seqs)) != to-from+1 {
		t.Fatalf("got %d entries, want %d (%d..%d)", len(seqs), to-from+1, from, to)
	}
	for i, s := range seqs {
		if s != from+uint64(i) {
			t.Fatalf("entry %d: got sequence %d, want %d", i, s, from+uint64(i))
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func fastBackoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 10 * time.Millisecond
	b.MaxInterval = 200 * time.Millisecond
	b.MaxElapsedTime = 0
	return b
}

type counter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counter) inc(cause string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[cause]++
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.m)
}

func newProjector(t *testing.T, l *eventlog.Log, sink projector.Sink) (*projector.Projector, *counter) {
	t.Helper()
	retries := &counter{}
	p := projector.New(l, sink, "test")
	p.Logger = quietLogger()
	p.StallTimeout = 500 * time.Millisecond
	p.Backoff = fastBackoff
	p.OnRetry = retries.inc
	t.Cleanup(p.Stop)
	return p, retries
}

func appendN(t *testing.T, l *eventlog.Log, n int) {
	t.Helper()
	subj, err := eventlog.Subject("r1", "g1")
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		_, err := l.Append(context.Background(), eventlog.AppendRequest{
			Subject: subj,
			Commits: []iam.Commit{{Actor: "t", At: time.Now(), Events: []iam.Event{iam.Heartbeat{At: time.Now()}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func openLog(t *testing.T) *eventlog.Log {
	t.Helper()
	s := eventlogtest.MustRunJetStream(t)
	l, err := eventlog.Open(context.Background(), eventlogtest.MustConnect(t, s), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func healthy(t *testing.T, p *projector.Projector) {
	t.Helper()
	if ok, err := p.Healthy(); !ok {
		t.Fatalf("projector unhealthy: %v", err)
	}
}

func TestProjector_Follow(t *testing.T) {
	t.Run("FromZero", func(t *testing.T) {
		l := openLog(t)
		appendN(t, l, 20)
		sink := &memSink{t: t}
		p, _ := newProjector(t, l, sink)
		var mu sync.Mutex
		var delays []time.Duration
		p.OnApplied = func(entries []iam.LogEntry, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			for _, e := range entries {
				delays = append(delays, at.Sub(e.Time))
			}
		}
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		eventlogtest.Eventually(t, 20*time.Second, "20 applied", func() bool { return sink.Applied() == 20 })
		appendN(t, l, 10)
		eventlogtest.Eventually(t, 20*time.Second, "30 applied", func() bool { return sink.Applied() == 30 })
		p.Stop()
		healthy(t, p)
		seqs, batches := sink.snapshot()
		checkSeqs(t, seqs, 1, 30)
		if batches >= 30 {
			t.Logf("note: %d batches for 30 entries (no grouping happened)", batches)
		}
		if p.Head() != 30 || p.Applied() != 30 {
			t.Fatalf("got head %d applied %d, want 30 and 30", p.Head(), p.Applied())
		}
		mu.Lock()
		defer mu.Unlock()
		if len(delays) != 30 {
			t.Fatalf("OnApplied: got %d entries, want 30", len(delays))
		}
		for _, d := range delays {
			if d < 0 || d > time.Minute {
				t.Fatalf("propagation delay: got %s, want within [0, 1m]", d)
			}
		}
	})

	t.Run("FromStoredPosition", func(t *testing.T) {
		l := openLog(t)
		appendN(t, l, 15)
		e, err := l.Get(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		sink := &memSink{t: t, applied: 10, msgID: e.MsgID}
		p, _ := newProjector(t, l, sink)
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		eventlogtest.Eventually(t, 20*time.Second, "15 applied", func() bool { return sink.Applied() == 15 })
		p.Stop()
		healthy(t, p)
		seqs, _ := sink.snapshot()
		checkSeqs(t, seqs, 11, 15)
	})

	t.Run("MaxBatch", func(t *testing.T) {
		l := openLog(t)
		appendN(t, l, 50)
		sink := &memSink{t: t}
		p, _ := newProjector(t, l, sink)
		p.MaxBatch = 7
		var mu sync.Mutex
		largest := 0
		p.OnApplied = func(entries []iam.LogEntry, _ time.Time) {
			mu.Lock()
			defer mu.Unlock()
			largest = max(largest, len(entries))
		}
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		eventlogtest.Eventually(t, 20*time.Second, "50 applied", func() bool { return sink.Applied() == 50 })
		p.Stop()
		mu.Lock()
		defer mu.Unlock()
		if largest > 7 {
			t.Fatalf("got a batch of %d, want at most 7", largest)
		}
	})
}

func TestProjector_ServerRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := eventlogtest.MustRunServer(t, natsnode.ServerConfig{StoreDir: dir, Port: -1})
	port := s1.Addr().(*net.TCPAddr).Port
	nc := eventlogtest.MustConnect(t, s1)
	l, err := eventlog.Open(context.Background(), nc, eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 300)

	// The sink holds entry 150 until the server is gone and back, so the
	// restart happens in the middle of the stream.
	sink := &memSink{t: t, gate: make(chan struct{}), gateSeq: 150, atGate: make(chan struct{})}
	p, retries := newProjector(t, l, sink)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sink.atGate:
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the sink to reach entry 150")
	}
	s1.Shutdown()
	s1.WaitForShutdown()
	eventlogtest.MustRunServer(t, natsnode.ServerConfig{StoreDir: dir, Port: port})
	close(sink.gate)
	eventlogtest.Eventually(t, 20*time.Second, "reconnect", nc.IsConnected)
	appendN(t, l, 100)
	eventlogtest.Eventually(t, 20*time.Second, "400 applied", func() bool { return sink.Applied() == 400 })
	p.Stop()
	healthy(t, p)
	seqs, _ := sink.snapshot()
	checkSeqs(t, seqs, 1, 400)
	t.Logf("retries: %s", retries)
}

func TestProjector_ServerDownWhileIdle(t *testing.T) {
	// The server goes away while the projector waits for new entries, stays
	// down longer than StallTimeout, and comes back.
	dir := t.TempDir()
	s1 := eventlogtest.MustRunServer(t, natsnode.ServerConfig{StoreDir: dir, Port: -1})
	port := s1.Addr().(*net.TCPAddr).Port
	nc := eventlogtest.MustConnect(t, s1)
	l, err := eventlog.Open(context.Background(), nc, eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 10)
	sink := &memSink{t: t}
	p, retries := newProjector(t, l, sink)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventlogtest.Eventually(t, 20*time.Second, "10 applied", func() bool { return sink.Applied() == 10 })
	s1.Shutdown()
	s1.WaitForShutdown()
	// Wait until the projector noticed (a failed head check is retried).
	eventlogtest.Eventually(t, 20*time.Second, "a retry while the server is down", func() bool { return retries.String() != "map[]" })
	eventlogtest.MustRunServer(t, natsnode.ServerConfig{StoreDir: dir, Port: port})
	eventlogtest.Eventually(t, 20*time.Second, "reconnect", nc.IsConnected)
	appendN(t, l, 10)
	eventlogtest.Eventually(t, 20*time.Second, "20 applied", func() bool { return sink.Applied() == 20 })
	p.Stop()
	healthy(t, p)
	seqs, _ := sink.snapshot()
	checkSeqs(t, seqs, 1, 20)
	t.Logf("retries: %s", retries)
}

func TestProjector_ApplyFailure(t *testing.T) {
	l := openLog(t)
	appendN(t, l, 10)
	sink := &memSink{t: t, failures: 3}
	p, retries := newProjector(t, l, sink)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventlogtest.Eventually(t, 20*time.Second, "10 applied", func() bool { return sink.Applied() == 10 })
	p.Stop()
	healthy(t, p)
	seqs, _ := sink.snapshot()
	checkSeqs(t, seqs, 1, 10)
	if got, want := retries.String(), "map[apply:3]"; got != want {
		t.Fatalf("got retries %s, want %s", got, want)
	}
}

func TestProjector_Verify(t *testing.T) {
	tests := []struct {
		name    string
		applied uint64
		msgID   func(l *eventlog.Log) string
		want    error
	}{
		{"BeyondHead", 100, func(*eventlog.Log) string { return "" }, projector.ErrRewound},
		{"MsgIDMismatch", 3, func(*eventlog.Log) string { return "not-the-one" }, projector.ErrMsgIDMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t)
			appendN(t, l, 5)
			sink := &memSink{t: t, applied: tt.applied, msgID: tt.msgID(l)}
			p, _ := newProjector(t, l, sink)
			if err := p.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			eventlogtest.Eventually(t, 20*time.Second, "unhealthy", func() bool { ok, _ := p.Healthy(); return !ok })
			_, err := p.Healthy()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			p.Stop()
			if seqs, _ := sink.snapshot(); len(seqs) != 0 {
				t.Fatalf("sink got %v, want nothing", seqs)
			}
		})
	}
}

func TestProjector_RewoundWhileRunning(t *testing.T) {
	// The server comes back with an empty store: the log the sink followed
	// is gone, and the projector must say so rather than wait or follow.
	s1 := eventlogtest.MustRunServer(t, natsnode.ServerConfig{StoreDir: t.TempDir(), Port: -1})
	port := s1.Addr().(*net.TCPAddr).Port
	nc := eventlogtest.MustConnect(t, s1)
	l, err := eventlog.Open(context.Background(), nc, eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 10)
	sink := &memSink{t: t}
	p, _ := newProjector(t, l, sink)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventlogtest.Eventually(t, 20*time.Second, "10 applied", func() bool { return sink.Applied() == 10 })
	s1.Shutdown()
	s1.WaitForShutdown()
	eventlogtest.MustRunServer(t, natsnode.ServerConfig{StoreDir: t.TempDir(), Port: port})
	eventlogtest.Eventually(t, 20*time.Second, "unhealthy", func() bool { ok, _ := p.Healthy(); return !ok })
	if _, err := p.Healthy(); !errors.Is(err, projector.ErrRewound) {
		t.Fatalf("got %v, want %v", err, projector.ErrRewound)
	}
}

// clientGoroutines returns the stacks of goroutines running client code
// (nats.go, eventlog, projector); the embedded server's are left out since
// they live by the server's own schedule (e.g. consumer inactivity).
func clientGoroutines() []string {
	buf := make([]byte, 4<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "TestProjector_StopNoLeak") {
			continue
		}
		if strings.Contains(g, "nats-io/nats.go") || strings.Contains(g, "iam/projector") || strings.Contains(g, "iam/eventlog") {
			out = append(out, g)
		}
	}
	return out
}

func TestProjector_StopNoLeak(t *testing.T) {
	l := openLog(t)
	appendN(t, l, 5)
	before := len(clientGoroutines())
	for range 3 {
		sink := &memSink{t: t}
		p, _ := newProjector(t, l, sink)
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := p.Start(context.Background()); err == nil {
			t.Fatal("second Start: got nil, want an error")
		}
		eventlogtest.Eventually(t, 20*time.Second, "5 applied", func() bool { return sink.Applied() == 5 })
		p.Stop()
		p.Stop() // idempotent
	}
	// The ordered consumer stops its goroutines asynchronously.
	var gs []string
	defer func() {
		if t.Failed() {
			t.Logf("got %d client goroutines, want %d:\n%s", len(gs), before, strings.Join(gs, "\n\n"))
		}
	}()
	eventlogtest.Eventually(t, 10*time.Second, "the client goroutines to end", func() bool {
		gs = clientGoroutines()
		return len(gs) <= before
	})
}

var _ projector.Sink = (*memSink)(nil)
