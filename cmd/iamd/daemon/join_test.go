package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/cmd/iamd/daemon"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/snapshots"
	"github.com/iam-project/iam/replica"
)

// startJoiningRegion starts one more region process on an empty data dir,
// dialling the hub's leaf URLs directly; opts adjust its configuration.
func (t *topology) startJoiningRegion(name string, opts ...func(*daemon.Config)) *daemon.Main {
	t.tb.Helper()
	var leafURLs []string
	for _, h := range t.hubs {
		leafURLs = append(leafURLs, natsnode.LeafURL(h.NATSServer()))
	}
	m := daemon.NewMain()
	c := &m.Config
	c.Mode, c.Region, c.HubLeaf = daemon.ModeRegion, name, leafURLs
	c.LogKeys = t.hubs[0].LogPublicKeysFile()
	c.HTTPAddr, c.DataDir, c.Issuer = "127.0.0.1:0", t.tb.TempDir(), multiIssuer
	c.Logger, c.Stderr = quietLogger().With("proc", name), io.Discard
	for _, o := range opts {
		o(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := m.Run(ctx)
	t.tb.Cleanup(func() { m.Close() })
	if err != nil {
		t.tb.Fatalf("start region %s: %v", name, err)
	}
	t.regions[name] = m
	return m
}

// writeGroups creates n groups through c from 8 clients at once and
// returns the highest consistency token answered.
func writeGroups(tb testing.TB, c *daemontest.Client, prefix string, n int) uint64 {
	tb.Helper()
	var mu sync.Mutex
	var last uint64
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				r := c.Do("POST", "/v1/groups", map[string]any{"name": fmt.Sprintf("%s-%d", prefix, i)})
				if r.Status != http.StatusCreated {
					tb.Errorf("create group: got %d %s, want 201", r.Status, r.Raw)
					return
				}
				seq, _ := api.ParseToken("consistencyToken", r.Str("consistencyToken"))
				mu.Lock()
				last = max(last, seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	return last
}

// TestJoin_FromSnapshot runs a hub and region eu-west with a few thousand
// entries, takes a snapshot on request, writes a tail, then starts region
// us-east on an empty data dir: it loads the snapshot (its projector
// applies only the tail, not the log from 1) and catches up; a third
// region skips a corrupt newest snapshot for the good one. Every region
// and the hub then report the same digest at the same token.
func TestJoin_FromSnapshot(t *testing.T) {
	top := startTopology(t, topologyOptions{hubNodes: 1, regions: []string{"eu-west"}})
	eu := top.admin("eu-west")
	before := writeGroups(t, eu, "before", 4000) // grouped into fewer entries

	// The region forwards the request to the hub, whose replica is
	// brought to the head before it is snapshotted.
	snap := eu.Must(http.StatusCreated, "POST", "/v1/replicas/snapshot", nil)
	snapSeq := tokenSeq(t, snap.Str("token"))
	rows, _ := snap.Body["rows"].(float64)
	t.Logf("snapshot %s at %d: %v rows, %v bytes", snap.Str("name"), snapSeq, rows, snap.Body["bytes"])
	if snapSeq < before || rows < 4000 || snap.Str("digest") == "" {
		t.Fatalf("snapshot: got %s, want one at %d or later holding 4000 groups or more", snap.Raw, before)
	}
	list := eu.Must(http.StatusOK, "GET", "/v1/replicas/snapshots", nil)
	if got, _ := list.Body["snapshots"].([]any); len(got) != 1 {
		t.Fatalf("snapshots: got %s, want the one taken", list.Raw)
	}
	tail := writeGroups(t, eu, "after", 500)

	us := top.startJoiningRegion("us-east")
	joined, ok := us.JoinedFrom("us-east")
	if !ok || joined.Seq != snapSeq || joined.SHA256 != snap.Str("digest") {
		t.Fatalf("us-east joined from: got %+v (%t), want the snapshot at %d", joined, ok, snapSeq)
	}
	usRep := us.Replicas()[0]
	eventlogtest.Eventually(t, 10*time.Second, "us-east to apply the tail", func() bool { return usRep.Applied() >= tail })
	// What went through us-east's projector is the log after the snapshot,
	// all of it: it did not replay from 1. eu-west replayed everything.
	applied, through := usRep.Applied(), usRep.AppliedEntries()
	if through != applied-snapSeq {
		t.Errorf("us-east entries through its projector to reach %d: got %d, want %d (only the tail after %d)", applied, through, applied-snapSeq, snapSeq)
	}
	euMain := top.regions["eu-west"]
	if _, ok := euMain.JoinedFrom("eu-west"); ok {
		t.Errorf("eu-west started on an empty log, yet joined from a snapshot")
	}
	t.Logf("us-east: loaded the snapshot at %d, then applied %d entries to reach %d; eu-west applied %d entries from 1",
		snapSeq, through, applied, euMain.Replicas()[0].AppliedEntries())

	// The newest snapshot is corrupt: a joining region skips it for the
	// one before.
	store, err := snapshots.Open(context.Background(), top.hubs[0].Log(), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(context.Background(), iam.SnapshotInfo{Seq: tail, MsgID: "x", Rows: 1, Digest: "bad"},
		bytes.NewReader([]byte("IAMSNAP\nnot a snapshot"))); err != nil {
		t.Fatal(err)
	}
	ap := top.startJoiningRegion("ap-south")
	if j, _ := ap.JoinedFrom("ap-south"); j.Seq != snapSeq {
		t.Fatalf("ap-south joined from: got %d, want the good snapshot at %d", j.Seq, snapSeq)
	}

	// The same digest at the same token in every region and the hub.
	// The token is one past where every one of them stands; the hub's
	// heartbeat brings it within a second. Under load a region may still
	// be short of it when its wait ends (503) or, asked again, past it
	// (409): then all are asked again at a later token, a bounded number
	// of times.
	type proc struct {
		name string
		m    *daemon.Main
	}
	procs := []proc{{"hub-0", top.hubs[0]}, {"eu-west", euMain}, {"us-east", us}, {"ap-south", ap}}
	digestsAt := func() (string, []daemontest.Response) {
		var at uint64
		for _, p := range procs {
			at = max(at, p.m.Replicas()[0].Applied())
		}
		tok := api.FormatToken(at + 1)
		digests := make([]daemontest.Response, len(procs))
		var wg sync.WaitGroup
		for i, p := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &daemontest.Client{TB: t, Base: daemontest.URL(p.m), Token: eu.Token}
				digests[i] = c.Do("GET", "/v1/replicas/"+p.name+"/digest?at="+tok+"&waitMs=10000", nil)
			}()
		}
		wg.Wait()
		return tok, digests
	}
	const attempts = 4
	var tok string
	var digests []daemontest.Response
	for try := 1; try <= attempts; try++ {
		tok, digests = digestsAt()
		notYet := false
		for i, d := range digests {
			if d.Status == http.StatusServiceUnavailable || d.Status == http.StatusConflict {
				t.Logf("attempt %d: %s answered %d at %s: %s", try, procs[i].name, d.Status, tok, d.Raw)
				notYet = true
			}
		}
		if !notYet {
			break
		}
	}
	for i, d := range digests {
		t.Logf("%s: digest %s at %s (%v rows)", procs[i].name, d.Str("digest"), d.Str("token"), d.Body["rows"])
		if d.Status != http.StatusOK || d.Str("token") != tok || d.Str("digest") != digests[0].Str("digest") || d.Str("digest") == "" {
			t.Errorf("%s: got digest %s at %s, want %s at %s", procs[i].name, d.Str("digest"), d.Str("token"), digests[0].Str("digest"), tok)
		}
	}
	// A region answers only for itself; a passed token is a conflict.
	eu.Must(http.StatusNotFound, "GET", "/v1/replicas/us-east/digest", nil)
	eu.Must(http.StatusConflict, "GET", "/v1/replicas/eu-west/digest?at=ct1.1", nil)
}

// TestJoin_PeriodicSnapshots runs a snapshot Publisher on the hub with a small
// Every: snapshots follow the writes, and the bucket keeps the newest two.
func TestJoin_PeriodicSnapshots(t *testing.T) {
	top := startTopology(t, topologyOptions{hubNodes: 1, regions: []string{"eu-west"}})
	hub := top.hubs[0]
	const every = 50
	sn := &replica.Publisher{Replica: hub.Replicas()[0], Every: every, Check: 20 * time.Millisecond, Logger: quietLogger(),
		Bucket: func(ctx context.Context, create bool) (replica.SnapshotBucket, error) {
			return snapshots.Open(ctx, hub.Log(), create)
		},
		Leader: func() bool { return natsnode.StreamLeader(hub.NATSServer(), hub.Log().StreamName()) }}
	if err := sn.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sn.Stop()
	eu := top.admin("eu-west")
	ctx := context.Background()
	var store *snapshots.Store
	for round := 1; round <= 3; round++ {
		last := writeGroups(t, eu, fmt.Sprintf("round-%d", round), 300)
		if last < uint64(round)*every {
			t.Fatalf("round %d: got the log at %d, want %d or more entries", round, last, round*every)
		}
		eventlogtest.Eventually(t, 10*time.Second, fmt.Sprintf("a snapshot at %d or later", last-every), func() bool {
			if store == nil {
				store, _ = snapshots.Open(ctx, hub.Log(), false)
			}
			if store == nil {
				return false
			}
			latest, err := store.Latest(ctx)
			return err == nil && latest.Seq+every >= last
		})
	}
	// Put prunes after it stores, so the newest snapshot shows a moment
	// before the oldest goes.
	var all []iam.SnapshotInfo
	var err error
	eventlogtest.Eventually(t, 10*time.Second, fmt.Sprintf("the newest %d snapshots kept", snapshots.DefaultKeep), func() bool {
		all, err = store.List(ctx)
		return err == nil && len(all) == snapshots.DefaultKeep
	})
	if all[0].Seq <= all[1].Seq {
		t.Fatalf("snapshots kept: got %+v, want the newest first", all)
	}
}
