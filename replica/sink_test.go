package replica_test

import (
	"testing"

	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/projector/projectortest"
	"github.com/iam-project/iam/replica"
)

// sinkReplica is a Replica opened for the Sink conformance suite, with the
// directory it can be reopened on.
type sinkReplica struct {
	*replica.Replica
	dir    string
	closed bool
}

// close closes the replica once: reopening closes it, and so does the
// test's end.
func (s *sinkReplica) close(t *testing.T) {
	if !s.closed {
		s.closed = true
		if err := s.Close(); err != nil {
			t.Errorf("close replica: got %v, want nil", err)
		}
	}
}

func openSink(t *testing.T, dir string) projector.Sink {
	t.Helper()
	rep, err := replica.Open(replica.Config{Region: "sink", Dir: dir})
	if err != nil {
		t.Fatalf("open replica: got %v, want nil", err)
	}
	s := &sinkReplica{Replica: rep, dir: dir}
	t.Cleanup(func() { s.close(t) })
	return s
}

// TestReplica_Sink runs the projector.Sink conformance suite against a
// Replica on a real Pebble in a temp dir; reopening closes it and opens
// its directory again.
func TestReplica_Sink(t *testing.T) {
	projectortest.RunSinkTests(t,
		func(t *testing.T) projector.Sink { return openSink(t, t.TempDir()) },
		projectortest.WithReopen(func(t *testing.T, s projector.Sink) projector.Sink {
			sr := s.(*sinkReplica)
			sr.close(t)
			return openSink(t, sr.dir)
		}))
}
