package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/snapshots"
	"github.com/iam-project/iam/replica"
)

// startJoiningRegion starts one more region process on an empty data dir,
// dialling the hub's leaf URLs directly.
func (t *topology) startJoiningRegion(name string) *Main {
	t.tb.Helper()
	var leafURLs []string
	for _, h := range t.hubs {
		leafURLs = append(leafURLs, natsnode.LeafURL(h.ns))
	}
	m := NewMain()
	c := &m.Config
	c.Mode, c.Region, c.HubLeaf = ModeRegion, name, leafURLs
	c.HTTPAddr, c.DataDir, c.Issuer = "127.0.0.1:0", t.tb.TempDir(), multiIssuer
	c.Logger, c.Stderr = quietLogger().With("proc", name), io.Discard
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
func writeGroups(tb testing.TB, c *client, prefix string, n int) uint64 {
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
				r := c.do("POST", "/v1/groups", map[string]any{"name": fmt.Sprintf("%s-%d", prefix, i)})
				if r.status != http.StatusCreated {
					tb.Errorf("create group: got %d %s, want 201", r.status, r.raw)
					return
				}
				seq, _ := api.ParseToken("consistencyToken", r.str("consistencyToken"))
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
	snap := eu.must(http.StatusCreated, "POST", "/v1/replicas/snapshot", nil)
	snapSeq := tokenSeq(t, snap.str("token"))
	rows, _ := snap.body["rows"].(float64)
	t.Logf("snapshot %s at %d: %v rows, %v bytes", snap.str("name"), snapSeq, rows, snap.body["bytes"])
	if snapSeq < before || rows < 4000 || snap.str("digest") == "" {
		t.Fatalf("snapshot: got %s, want one at %d or later holding 4000 groups or more", snap.raw, before)
	}
	list := eu.must(http.StatusOK, "GET", "/v1/replicas/snapshots", nil)
	if got, _ := list.body["snapshots"].([]any); len(got) != 1 {
		t.Fatalf("snapshots: got %s, want the one taken", list.raw)
	}
	tail := writeGroups(t, eu, "after", 500)

	us := top.startJoiningRegion("us-east")
	joined, ok := us.join.joined["us-east"]
	if !ok || joined.Seq != snapSeq || joined.SHA256 != snap.str("digest") {
		t.Fatalf("us-east joined from %+v (%t), want the snapshot at %d", joined, ok, snapSeq)
	}
	usRep := us.replicas[0]
	waitFor(t, 10*time.Second, "us-east to apply the tail", func() bool { return usRep.Applied() >= tail })
	// What went through us-east's projector is the log after the snapshot,
	// all of it: it did not replay from 1. eu-west replayed everything.
	applied, through := usRep.Applied(), usRep.AppliedEntries()
	if through != applied-snapSeq {
		t.Errorf("us-east applied %d entries through its projector to reach %d, want %d (only the tail after %d)", through, applied, applied-snapSeq, snapSeq)
	}
	euMain := top.regions["eu-west"]
	if _, ok := euMain.join.joined["eu-west"]; ok {
		t.Errorf("eu-west started on an empty log, yet joined from a snapshot")
	}
	t.Logf("us-east: loaded the snapshot at %d, then applied %d entries to reach %d; eu-west applied %d entries from 1",
		snapSeq, through, applied, euMain.replicas[0].AppliedEntries())

	// The newest snapshot is corrupt: a joining region skips it for the
	// one before.
	store, err := snapshots.Open(context.Background(), top.hubs[0].log, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(context.Background(), snapshots.Info{Seq: tail, MsgID: "x", Rows: 1, Digest: "bad"},
		bytes.NewReader([]byte("IAMSNAP\nnot a snapshot"))); err != nil {
		t.Fatal(err)
	}
	ap := top.startJoiningRegion("ap-south")
	if j := ap.join.joined["ap-south"]; j.Seq != snapSeq {
		t.Fatalf("ap-south joined from %d, want the good snapshot at %d", j.Seq, snapSeq)
	}

	// The same digest at the same token in every region and the hub.
	// The token is one past where every one of them stands; the hub's
	// heartbeat brings it within a second.
	type proc struct {
		name string
		m    *Main
	}
	procs := []proc{{"hub-0", top.hubs[0]}, {"eu-west", euMain}, {"us-east", us}, {"ap-south", ap}}
	var at uint64
	for _, p := range procs {
		at = max(at, p.m.replicas[0].Applied())
	}
	at++
	tok := api.FormatToken(at)
	digests := make([]response, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{tb: t, base: p.m.url(), token: eu.token}
			digests[i] = c.do("GET", "/v1/replicas/"+p.name+"/digest?at="+tok+"&waitMs=10000", nil)
		}()
	}
	wg.Wait()
	for i, d := range digests {
		t.Logf("%s: digest %s at %s (%v rows)", procs[i].name, d.str("digest"), d.str("token"), d.body["rows"])
		if d.status != http.StatusOK || d.str("token") != tok || d.str("digest") != digests[0].str("digest") || d.str("digest") == "" {
			t.Errorf("%s: got digest %s at %s, want %s at %s", procs[i].name, d.str("digest"), d.str("token"), digests[0].str("digest"), tok)
		}
	}
	// A region answers only for itself; a passed token is a conflict.
	eu.must(http.StatusNotFound, "GET", "/v1/replicas/us-east/digest", nil)
	eu.must(http.StatusConflict, "GET", "/v1/replicas/eu-west/digest?at=ct1.1", nil)
}

// TestJoin_PeriodicSnapshots runs a snapshot Publisher on the hub with a small
// Every: snapshots follow the writes, and the bucket keeps the newest two.
func TestJoin_PeriodicSnapshots(t *testing.T) {
	top := startTopology(t, topologyOptions{hubNodes: 1, regions: []string{"eu-west"}})
	hub := top.hubs[0]
	const every = 50
	sn := &replica.Publisher{Replica: hub.replicas[0], Bucket: snapshotBucket(hub.log), Every: every, Check: 20 * time.Millisecond, Logger: quietLogger(),
		Leader: func() bool { return natsnode.StreamLeader(hub.ns, hub.log.StreamName()) }}
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
			t.Fatalf("round %d: log at %d, want %d or more entries", round, last, round*every)
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("a snapshot at %d or later", last-every), func() bool {
			if store == nil {
				store, _ = snapshots.Open(ctx, hub.log, false)
			}
			if store == nil {
				return false
			}
			latest, err := store.Latest(ctx)
			return err == nil && latest.Seq+every >= last
		})
	}
	all, err := store.List(ctx)
	if err != nil || len(all) != snapshots.DefaultKeep {
		t.Fatalf("snapshots kept: got %+v (%v), want the newest %d", all, err, snapshots.DefaultKeep)
	}
}
