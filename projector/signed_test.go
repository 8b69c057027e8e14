package projector_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/logsign"
	"github.com/iam-project/iam/eventlog/writer"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

func newRing(t testing.TB) *logsign.Ring {
	t.Helper()
	var r logsign.Ring
	if err := r.Rotate(time.Now()); err != nil {
		t.Fatal(err)
	}
	return &r
}

// signedSetup is a hub's signing log with a writer, and a verifying
// projector feeding a real replica.
type signedSetup struct {
	nc      *nats.Conn
	log     *eventlog.Log
	rep     *replica.Replica
	p       *projector.Projector
	mu      sync.Mutex
	refused map[string]int
}

func newSignedSetup(t *testing.T) *signedSetup {
	t.Helper()
	ring := newRing(t)
	v, err := logsign.NewVerifier(ring.Public())
	if err != nil {
		t.Fatal(err)
	}
	s := &signedSetup{refused: map[string]int{}}
	s.nc = eventlogtest.MustConnect(t, eventlogtest.MustRunJetStream(t))
	// A short de-duplication window, so that a replayed copy of an entry
	// (same MsgID) can be stored, as it could be after 2 minutes.
	s.log, err = eventlog.Open(context.Background(), s.nc, eventlog.Config{Signer: ring.Signer(), Verifier: v, Duplicates: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := writer.New(s.log, writer.Config{Logger: quietLogger()})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	if _, err := writer.Bootstrap(context.Background(), w, auth.LowCostHashParams()); err != nil {
		t.Fatal(err)
	}
	s.rep, err = replica.Open(replica.Config{Region: "test", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.rep.Close() })
	s.p, _ = newProjector(t, s.log, s.rep)
	s.p.OnRefused = func(reason string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.refused[reason]++
	}
	if err := s.p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *signedSetup) head(t *testing.T) uint64 {
	t.Helper()
	h, err := s.log.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// rawMsg returns the stored message at seq, headers and all.
func (s *signedSetup) rawMsg(t *testing.T, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	st, err := s.log.JetStream().Stream(context.Background(), s.log.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestProjector_RefusesUnsignedEntries appends entries below the permission
// layer (straight to JetStream, well formed and with the right expectation)
// and checks that the projector applies the writer's signed entries but
// refuses these for good, without applying them.
func TestProjector_RefusesUnsignedEntries(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		want   error
		// forge returns the message to publish, given the realm's last
		// genuine entry.
		forge func(t *testing.T, s *signedSetup, last *jetstream.RawStreamMsg) *nats.Msg
	}{
		{"Unsigned", "unsigned", eventlog.ErrUnsigned, func(t *testing.T, s *signedSetup, last *jetstream.RawStreamMsg) *nats.Msg {
			return forged(last, nil)
		}},
		{"OtherKey", "forged", eventlog.ErrForged, func(t *testing.T, s *signedSetup, last *jetstream.RawStreamMsg) *nats.Msg {
			return forged(last, newRing(t).Signer())
		}},
		{"Replayed", "replayed", projector.ErrReplayed, func(t *testing.T, s *signedSetup, last *jetstream.RawStreamMsg) *nats.Msg {
			// A copy of the genuine entry: its signature holds, its
			// expectation is stale. The attacker strips the JetStream
			// expectation headers the stored message kept, which the
			// server would check.
			m := nats.NewMsg(last.Subject)
			m.Data = last.Data
			for k, v := range last.Header {
				if !strings.HasPrefix(k, "Nats-Expected") {
					m.Header[k] = v
				}
			}
			return m
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSignedSetup(t)
			head := s.head(t)
			eventlogtest.Eventually(t, 10*time.Second, "signed entries applied", func() bool { return s.rep.Applied() == head })
			healthy(t, s.p)
			last := s.rawMsg(t, head)
			if last.Header.Get(logsign.SigHeader) == "" {
				t.Fatalf("writer's entry %d: got no %s header, want one", head, logsign.SigHeader)
			}

			m := tc.forge(t, s, last)
			eventlogtest.Eventually(t, 10*time.Second, "the forged entry stored", func() bool {
				ack, err := jetstream.New(s.nc)
				if err != nil {
					t.Fatal(err)
				}
				pa, err := ack.PublishMsg(context.Background(), m)
				return err == nil && !pa.Duplicate
			})
			eventlogtest.Eventually(t, 10*time.Second, "projector unhealthy", func() bool {
				ok, _ := s.p.Healthy()
				return !ok
			})
			_, err := s.p.Healthy()
			if !errors.Is(err, tc.want) {
				t.Errorf("Healthy: got %v, want an error wrapping %v", err, tc.want)
			}
			if got := projector.RefusedReason(err); got != tc.reason {
				t.Errorf("RefusedReason: got %q, want %q", got, tc.reason)
			}
			if got := s.rep.Applied(); got != head {
				t.Errorf("replica applied %d, want %d (the forged entry not applied)", got, head)
			}
			s.mu.Lock()
			got := s.refused[tc.reason]
			s.mu.Unlock()
			if got != 1 {
				t.Errorf("OnRefused(%q): got %d calls, want 1", tc.reason, got)
			}
		})
	}
}

// forged is a well-formed copy of last under a new MsgID, with the right
// expectation, signed by signer (unsigned when nil).
func forged(last *jetstream.RawStreamMsg, signer *logsign.Signer) *nats.Msg {
	realm, _, _ := logsign.ParseExpect(last.Header.Get(logsign.ExpectHeader))
	expect := logsign.Expect(realm, last.Sequence)
	msgID := "forged-" + strconv.FormatUint(last.Sequence, 10)
	m := nats.NewMsg(last.Subject)
	m.Data = last.Data
	m.Header.Set(eventlog.EnvelopeHeader, eventlog.EnvelopeVersion)
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	m.Header.Set(logsign.ExpectHeader, expect)
	if signer != nil {
		m.Header.Set(logsign.SigHeader, signer.Sign(logsign.Entry(last.Subject, msgID, expect, last.Data)))
	}
	return m
}
