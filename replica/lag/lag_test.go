package lag_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
	"github.com/iam-project/iam/replica/lag"
)

type fakeLog struct {
	head  uint64
	err   error
	times map[uint64]time.Time
}

func (l *fakeLog) Head(context.Context) (uint64, error) { return l.head, l.err }
func (l *fakeLog) Get(_ context.Context, seq uint64) (iam.LogEntry, error) {
	return iam.LogEntry{Seq: seq, Time: l.times[seq]}, nil
}

type fakeReplica struct {
	region  string
	applied uint64
	last    time.Time
}

func (r *fakeReplica) Region() string  { return r.region }
func (r *fakeReplica) Applied() uint64 { return r.applied }
func (r *fakeReplica) LastApplied() (replica.Position, time.Time, time.Time) {
	return replica.Position{Seq: r.applied}, r.last, r.last
}

func token(seq uint64) string { return fmt.Sprint("t", seq) }

func TestMonitor_Measure(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	t.Run("behind", func(t *testing.T) {
		log := &fakeLog{head: 10, times: map[uint64]time.Time{8: now.Add(-3 * time.Second)}}
		m := lag.New(lag.Config{Log: log, Replicas: []lag.Replica{&fakeReplica{region: "eu", applied: 7}}, Token: token, Now: clock})
		st := m.Measure(context.Background())[0]
		if st.LagEvents != 3 || st.LagSeconds != 3 || !st.Healthy || st.HeadToken != "t10" {
			t.Fatalf("got %+v, want 3 events, 3s behind, healthy, head t10", st)
		}
	})
	t.Run("cut off", func(t *testing.T) {
		log := &fakeLog{err: errors.New("down")}
		rep := &fakeReplica{region: "eu", applied: 7, last: now.Add(-5 * time.Second)}
		m := lag.New(lag.Config{Log: log, Replicas: []lag.Replica{rep}, Token: token, Now: clock, HeartbeatInterval: time.Second, MaxLag: 2 * time.Second})
		st := m.Measure(context.Background())[0]
		if st.LagSeconds != 4 || st.Healthy || !strings.Contains(st.Error, "threshold") {
			t.Fatalf("got %+v, want a 4s lower bound, unhealthy over the threshold", st)
		}
	})
}

func TestMonitor_Peers(t *testing.T) {
	now := time.Unix(1000, 0)
	var published [][]byte
	src := lag.New(lag.Config{Log: &fakeLog{head: 5}, Replicas: []lag.Replica{&fakeReplica{region: "us", applied: 5}, &fakeReplica{region: "ap", applied: 5}},
		Token: token, Now: func() time.Time { return now }, Publish: func(_ string, data []byte) { published = append(published, data) }})
	src.Measure(context.Background())
	dst := lag.New(lag.Config{Log: &fakeLog{head: 5}, Replicas: []lag.Replica{&fakeReplica{region: "eu", applied: 5}}, Token: token, Now: func() time.Time { return now }})
	for _, d := range published {
		dst.Receive(d)
	}
	got := dst.Peers(context.Background(), now)
	if len(got) != 2 || got[0].Region != "ap" || got[1].Region != "us" || !got[0].Healthy {
		t.Fatalf("got %+v, want ap then us, healthy", got)
	}
	stale := dst.Peers(context.Background(), now.Add(lag.PeerStaleAfter+time.Second))
	if stale[0].Healthy {
		t.Fatalf("got %+v, want a stale peer unhealthy", stale[0])
	}
}
