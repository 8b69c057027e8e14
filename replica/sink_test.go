package replica_test

import (
	"sync"
	"testing"

	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/projector/projectortest"
	"github.com/iam-project/iam/replica"
)

// sinkStore opens replicas for the Sink conformance suite and remembers
// each one's directory, so that a sink can be reopened on it; every replica
// still open is closed when the test ends.
type sinkStore struct {
	mu   sync.Mutex
	dirs map[projector.Sink]string
	reps map[projector.Sink]*replica.Replica
}

func newSinkStore() *sinkStore {
	return &sinkStore{dirs: map[projector.Sink]string{}, reps: map[projector.Sink]*replica.Replica{}}
}

// open opens the replica in dir and wraps it with wrap (nil: the replica is
// the sink).
func (st *sinkStore) open(t *testing.T, dir string, wrap func(*replica.Replica) projector.Sink) projector.Sink {
	t.Helper()
	rep, err := replica.Open(replica.Config{Region: "sink", Dir: dir})
	if err != nil {
		t.Fatalf("open replica: got %v, want nil", err)
	}
	var s projector.Sink = rep
	if wrap != nil {
		s = wrap(rep)
	}
	st.mu.Lock()
	st.dirs[s], st.reps[s] = dir, rep
	st.mu.Unlock()
	t.Cleanup(func() { st.close(t, s) })
	return s
}

// close closes the replica of s, once.
func (st *sinkStore) close(t *testing.T, s projector.Sink) {
	st.mu.Lock()
	rep, ok := st.reps[s]
	delete(st.reps, s)
	st.mu.Unlock()
	if g, isGate := s.(*replica.Gate); isGate && ok {
		g.Close()
	}
	if ok {
		if err := rep.Close(); err != nil {
			t.Errorf("close replica: got %v, want nil", err)
		}
	}
}

func (st *sinkStore) reopen(t *testing.T, s projector.Sink, wrap func(*replica.Replica) projector.Sink) projector.Sink {
	t.Helper()
	st.mu.Lock()
	dir := st.dirs[s]
	st.mu.Unlock()
	st.close(t, s)
	return st.open(t, dir, wrap)
}

// TestReplica_Sink runs the projector.Sink conformance suite against a
// Replica on a real Pebble in a temp dir.
func TestReplica_Sink(t *testing.T) {
	st := newSinkStore()
	projectortest.RunSinkTests(t,
		func(t *testing.T) projector.Sink { return st.open(t, t.TempDir(), nil) },
		projectortest.WithReopen(func(t *testing.T, s projector.Sink) projector.Sink { return st.reopen(t, s, nil) }))
}

// TestGate_Sink runs the projector.Sink conformance suite against a Gate,
// the sink iamd gives its projectors.
func TestGate_Sink(t *testing.T) {
	st := newSinkStore()
	gate := func(rep *replica.Replica) projector.Sink { return replica.NewGate(rep) }
	projectortest.RunSinkTests(t,
		func(t *testing.T) projector.Sink { return st.open(t, t.TempDir(), gate) },
		projectortest.WithReopen(func(t *testing.T, s projector.Sink) projector.Sink { return st.reopen(t, s, gate) }))
}
