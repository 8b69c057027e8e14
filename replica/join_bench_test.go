package replica_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/snapshots"
	"github.com/iam-project/iam/projector"
	"github.com/iam-project/iam/replica"
)

// BenchmarkJoin measures how long a new region takes to be current (its
// replica at the log's head) with about a million events in the log, two
// ways in the same run: a full replay (a projector from sequence 1) and a
// join from a snapshot (download the newest across the leaf link, verify,
// ingest, open the replica, which loads its index, then a projector from
// the snapshot's position for the tail). A hub JetStream node (fsync off)
// and a regional leaf node run in-process, as in iamd's topology: both
// ways read through the region's leaf connection with the hub's domain.
//
// Shapes of the log (sub-benchmarks):
//   - grow: one row per event (users, their memberships and attachments,
//     the BenchmarkReplay log): the read model is as large as it gets for
//     the log, the worst case for a snapshot.
//   - workload: the replica tests' seeded random mix of creations, grants,
//     revokes, removals and status changes, one commit per entry.
//   - steady: the grow log of 10,000 users (112k rows), then changes that
//     keep the read model that size (status, membership and attachment
//     toggles, the hub's heartbeats): a log that has run for a while.
//
// The join runs in the process that has just replayed the log (its heap
// grown, every id interned); the snapshot is also loaded once in a fresh
// process, from a file (fresh-load-s, with its system time and page
// faults), and both ways are run once more each in a process of its own
// across the leaf, as a new region runs them (fresh-join-s, fresh-replay-s
// and their ratio, fresh-speedup).
//
// IAM_JOIN_EVENTS sets the events (default 1,000,000), IAM_JOIN_TAIL the
// entries after the snapshot (default 10,000). Run with -benchtime=1x:
//
//	go test ./replica/ -run '^$' -bench BenchmarkJoin -benchtime=1x -benchmem -timeout 30m
func BenchmarkJoin(b *testing.B) {
	events := envInt(b, "IAM_JOIN_EVENTS", 1_000_000)
	tail := envInt(b, "IAM_JOIN_TAIL", 10_000)
	shapes := []struct {
		name    string
		entries func() []iam.LogEntry
	}{
		{"grow", func() []iam.LogEntry {
			users := max(1, (events-1-benchPolicies-benchGroups*(1+benchGroupPolicies))/(1+benchGroupsPerUser+benchPoliciesPerUse))
			return newBenchData(users).entries
		}},
		{"workload", func() []iam.LogEntry { return newWorkload(b, 11, events).entries }},
		{"steady", func() []iam.LogEntry { return steadyEntries(events, 10_000) }},
	}
	for _, shape := range shapes {
		b.Run(shape.name, func(b *testing.B) {
			// The entries are handed over, not kept here: a region's heap
			// holds no log, and a large live heap slows every GC.
			benchJoin(b, shape.entries(), tail)
		})
	}
}

// steadyEntries is the grow log of users users, then, up to events
// entries of one event each, changes undone by the next: a user
// deactivated and reactivated, a membership removed and added back, a
// policy detached and attached again, and a heartbeat.
func steadyEntries(events, users int) []iam.LogEntry {
	d := newBenchData(users)
	in := iam.InRealm{Realm: benchRealm}
	add := func(subject string, ev iam.Event) {
		seq := uint64(len(d.entries) + 1)
		at := baseTime.Add(time.Duration(seq) * time.Microsecond)
		d.entries = append(d.entries, iam.LogEntry{Seq: seq, Subject: subject, MsgID: "s" + strconv.FormatUint(seq, 10), Time: at,
			Commits: []iam.Commit{{Events: []iam.Event{ev}, At: at}}})
	}
	const subject = "iam.evt." + benchRealm + ".commit"
	for i := 0; len(d.entries) < events; i++ {
		u := i % users
		id := "u" + strconv.Itoa(u)
		switch i % 4 {
		case 0:
			add(subject, iam.IdentityStatusChanged{InRealm: in, ID: id, Status: iam.StatusDeactivated})
			add(subject, iam.IdentityStatusChanged{InRealm: in, ID: id, Status: iam.StatusActive})
		case 1:
			g := "g" + strconv.Itoa((u*benchGroupsPerUser)%benchGroups)
			add(subject, iam.MemberRemoved{InRealm: in, Group: g, Identity: id})
			add(subject, iam.MemberAdded{InRealm: in, Group: g, Identity: id})
		case 2:
			p := "p" + strconv.Itoa(benchUserPolicies(u)[0])
			add(subject, iam.PolicyDetached{InRealm: in, Policy: p, Target: id})
			add(subject, iam.PolicyAttached{InRealm: in, Policy: p, Target: id})
		case 3:
			add(eventlog.HeartbeatSubject, iam.Heartbeat{At: baseTime.Add(time.Duration(len(d.entries)) * time.Microsecond)})
		}
	}
	return d.entries[:events]
}

func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// joinTopology is a hub node holding the log and the snapshot bucket, and
// a region's leaf node.
type joinTopology struct {
	hubLog    *eventlog.Log
	hubNC     *nats.Conn
	regionLog *eventlog.Log
	regionURL string // the regional node's client URL, for a child process
}

func startJoinTopology(tb testing.TB) *joinTopology {
	tb.Helper()
	run := func(cfg natsnode.NodeConfig) *server.Server {
		s, err := natsnode.RunNode(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		return s
	}
	hub := run(natsnode.NodeConfig{ServerConfig: natsnode.ServerConfig{StoreDir: benchDir(tb), Port: -1,
		JetStreamDomain: natsnode.HubDomain, ServerName: "hub"}, LeafListen: "127.0.0.1:-1"})
	region := run(natsnode.NodeConfig{ServerConfig: natsnode.ServerConfig{StoreDir: benchDir(tb), Port: -1,
		JetStreamDomain: "eu-west", ServerName: "eu-west"}, LeafRemotes: []string{natsnode.LeafURL(hub)}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := natsnode.WaitLeaf(ctx, region, 1); err != nil {
		tb.Fatal(err)
	}
	connect := func(s *server.Server) *nats.Conn {
		nc, err := natsnode.Connect(s)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(nc.Close)
		return nc
	}
	t := &joinTopology{hubNC: connect(hub), regionURL: region.ClientURL()}
	var err error
	if t.hubLog, err = eventlog.Open(ctx, t.hubNC, eventlog.Config{}); err != nil {
		tb.Fatal(err)
	}
	if t.regionLog, err = eventlog.Attach(ctx, connect(region), eventlog.Config{Domain: natsnode.HubDomain}); err != nil {
		tb.Fatal(err)
	}
	return t
}

// appendEntries publishes entries as log messages with their MsgIDs,
// pipelined (async publishes keep their order on one connection), and
// checks every sequence.
func appendEntries(tb testing.TB, nc *nats.Conn, entries []iam.LogEntry) {
	tb.Helper()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		tb.Fatal(err)
	}
	for rest := entries; len(rest) > 0; {
		chunk := rest[:min(4096, len(rest))]
		rest = rest[len(chunk):]
		futures := make([]jetstream.PubAckFuture, len(chunk))
		for i, e := range chunk {
			data, err := iam.MarshalCommits(e.Commits)
			if err != nil {
				tb.Fatal(err)
			}
			m := nats.NewMsg(e.Subject)
			m.Data = data
			m.Header.Set(eventlog.EnvelopeHeader, eventlog.EnvelopeVersion)
			if futures[i], err = js.PublishMsgAsync(m, jetstream.WithMsgID(e.MsgID)); err != nil {
				tb.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			tb.Fatal("async publishes not acknowledged in a minute")
		}
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				if ack.Sequence != chunk[i].Seq {
					tb.Fatalf("appended at %d, want %d", ack.Sequence, chunk[i].Seq)
				}
			case err := <-f.Err():
				tb.Fatal(err)
			}
		}
	}
}

// follow starts a projector feeding rep from l and waits until rep has
// applied head. It returns the entries the projector applied.
func follow(tb testing.TB, l *eventlog.Log, rep *replica.Replica, head uint64) uint64 {
	tb.Helper()
	before := rep.AppliedEntries()
	p := projector.New(l, rep, "eu-west")
	p.Logger = quietLogger()
	p.MaxBatch = replayBatch
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	defer p.Stop()
	if err := rep.WaitFor(ctx, head, 10*time.Minute); err != nil {
		tb.Fatal(err)
	}
	if ok, err := p.Healthy(); !ok {
		tb.Fatal(err)
	}
	return rep.AppliedEntries() - before
}

func benchJoin(b *testing.B, entries []iam.LogEntry, tail int) {
	events := 0
	for _, e := range entries {
		for _, c := range e.Commits {
			events += len(c.Events)
		}
	}
	if tail >= len(entries) {
		b.Fatalf("IAM_JOIN_TAIL %d is not below the %d entries", tail, len(entries))
	}
	head := uint64(len(entries))
	snapAt := head - uint64(tail)
	top := startJoinTopology(b)
	start := time.Now()
	appendEntries(b, top.hubNC, entries)
	b.Logf("log: %d events in %d entries, appended in %s", events, head, time.Since(start).Round(time.Millisecond))

	// The hub's replica, fed the log up to the snapshot's position, then
	// snapshotted into the bucket (measured, but not part of a join: the
	// hub does it ahead of time).
	hubRep, err := replica.Open(replica.Config{Region: "hub", Dir: filepath.Join(benchDir(b), "hub")})
	if err != nil {
		b.Fatal(err)
	}
	for from := 0; from < int(snapAt); from += replayBatch {
		if err := hubRep.ApplyEntries(entries[from:min(from+replayBatch, int(snapAt))]); err != nil {
			b.Fatal(err)
		}
	}
	entries = nil
	runtime.GC()
	ctx := context.Background()
	store, err := snapshots.Open(ctx, top.hubLog, true)
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	snap, err := hubRep.Store().Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	h, size, err := snap.Write(&buf, replica.SnapshotOptions{})
	snap.Close()
	if err != nil {
		b.Fatal(err)
	}
	written := time.Since(start)
	// The same snapshot, for a load in a fresh process (freshLoad).
	snapFile := filepath.Join(benchDir(b), "snapshot")
	if err := os.WriteFile(snapFile, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	if _, err := store.Put(ctx, iam.SnapshotInfo{Seq: h.Seq, MsgID: h.MsgID, Rows: h.Rows, Digest: h.SHA256}, &buf); err != nil {
		b.Fatal(err)
	}
	b.Logf("snapshot at %d: %d rows, %.1f MiB (zstd), written in %s, stored in %s", h.Seq, h.Rows, float64(size)/(1<<20),
		written.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	// The hub is another process: its replica's heap is not the region's.
	if err := hubRep.Close(); err != nil {
		b.Fatal(err)
	}
	hubRep = nil

	var replayT, joinT, loadT, tailT time.Duration
	bulkAtHead := 0 // replays still a bulk catch-up when they reached the head
	for b.Loop() {
		// Full replay.
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		start := time.Now()
		dir := filepath.Join(benchDir(b), "replay")
		// With the log's head, as iamd's replicas have it: so a bulk
		// catch-up (bulk.go), timed until its rows are written.
		rep, err := replica.Open(replica.Config{Region: "eu-west", Dir: dir, History: top.regionLog.ReadRange, Head: top.regionLog.Head})
		if err != nil {
			b.Fatal(err)
		}
		if n := follow(b, top.regionLog, rep, head); n != head {
			b.Fatalf("replay applied %d entries, want %d", n, head)
		}
		if replica.Bulk(rep) {
			bulkAtHead++
		}
		if err := rep.Flush(); err != nil {
			b.Fatal(err)
		}
		replayT += time.Since(start)
		b.StopTimer()
		// Only the digest is kept: a region's heap holds one index.
		want, wantSeq, err := rep.Store().Digest()
		if err != nil {
			b.Fatal(err)
		}
		rep.Close()
		runtime.GC()
		b.StartTimer()

		// Join from the snapshot.
		start = time.Now()
		rep, err = replica.Open(replica.Config{Region: "eu-west", Dir: filepath.Join(benchDir(b), "join"), History: top.regionLog.ReadRange, Head: top.regionLog.Head})
		if err != nil {
			b.Fatal(err)
		}
		snaps, err := snapshots.Open(ctx, top.regionLog, false)
		if err != nil {
			b.Fatal(err)
		}
		latest, err := snaps.Latest(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r, err := snaps.Open(ctx, latest.Name)
		if err != nil {
			b.Fatal(err)
		}
		lh, err := rep.LoadSnapshot(ctx, r, replica.LoadOptions{Method: loadMethod(b)})
		r.Close()
		if err != nil {
			b.Fatal(err)
		}
		loaded := time.Now()
		if n := follow(b, top.regionLog, rep, head); n != head-lh.Seq {
			b.Fatalf("join applied %d entries after the snapshot, want %d", n, head-lh.Seq)
		}
		end := time.Now()
		joinT += end.Sub(start)
		loadT += loaded.Sub(start)
		tailT += end.Sub(loaded)
		b.StopTimer()
		if got, gotSeq, err := rep.Store().Digest(); err != nil || got != want || gotSeq != wantSeq {
			b.Fatalf("joined: digest %s at %d (%v), want the replay's %s at %d", got, gotSeq, err, want, wantSeq)
		}
		rep.Close()
		b.StartTimer()
	}
	// This process has replayed the log: its heap has grown and every id
	// is interned. A joining region's process has done neither.
	fresh := freshLoad(b, snapFile)
	b.ReportMetric(fresh[0], "fresh-load-s")
	b.ReportMetric(fresh[1], "fresh-load-sys-s")
	b.ReportMetric(fresh[2], "fresh-load-faults")
	// Both ways again, each in a process of its own, as new regions are.
	freshJoin := freshRegion(b, "join", top.regionURL, head)
	freshReplay := freshRegion(b, "replay", top.regionURL, head)
	b.ReportMetric(freshJoin[0], "fresh-join-s")
	b.ReportMetric(freshJoin[1], "fresh-join-load-s")
	b.ReportMetric(freshJoin[3], "fresh-join-faults")
	b.ReportMetric(freshJoin[4], "fresh-join-download-s")
	// The collector beside the tail: a fresh process's heap has just grown
	// by the whole index.
	b.ReportMetric(freshJoin[5], "fresh-join-tail-gcs")
	b.ReportMetric(freshJoin[6], "fresh-join-tail-gc-cpu-s")
	b.ReportMetric(freshReplay[0], "fresh-replay-s")
	b.ReportMetric(freshReplay[0]/freshJoin[0], "fresh-speedup")
	n := float64(b.N)
	b.ReportMetric(replayT.Seconds()/n, "replay-s")
	b.ReportMetric(joinT.Seconds()/n, "join-s")
	b.ReportMetric(replayT.Seconds()/joinT.Seconds(), "speedup")
	b.ReportMetric(loadT.Seconds()/n, "snapshot-load-s")
	b.ReportMetric(tailT.Seconds()/n, "tail-s")
	b.ReportMetric(float64(bulkAtHead)/n, "bulk-at-head")
	b.ReportMetric(float64(events), "events")
	b.ReportMetric(float64(h.Rows), "rows")
	b.ReportMetric(float64(size)/(1<<20), "snapshot-MiB")
}

// loadMethod is IAM_JOIN_LOAD (ingest or batch), default ingest.
func loadMethod(tb testing.TB) string {
	switch m := os.Getenv("IAM_JOIN_LOAD"); m {
	case "", replica.LoadIngest:
		return replica.LoadIngest
	case replica.LoadBatch:
		return m
	default:
		tb.Fatalf("IAM_JOIN_LOAD=%q: want %s or %s", m, replica.LoadIngest, replica.LoadBatch)
		return ""
	}
}

// loadChildFile names, in a child process's environment, the snapshot
// file TestLoadChild loads.
const loadChildFile = "IAM_BENCH_LOAD_SNAPSHOT"

// freshLoad loads the snapshot in file into an empty replica in a new
// process (this test binary running TestLoadChild), as a joining region
// does, and returns the load's wall time and system time in seconds and
// its page faults.
func freshLoad(b *testing.B, file string) []float64 {
	return childFigures(b, "TestLoadChild", loadChildFile+"="+file, "fresh-load", 3)
}

// TestLoadChild is the child process of freshLoad; skipped otherwise.
func TestLoadChild(t *testing.T) {
	file := os.Getenv(loadChildFile)
	if file == "" {
		t.Skip("the child process of BenchmarkJoin")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := replica.Open(replica.Config{Region: "bench", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	start, used := time.Now(), processUsage()
	if _, err := rep.LoadSnapshot(context.Background(), bytes.NewReader(data), replica.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	wall, u := closeTimed(t, rep, start, used)
	fmt.Printf("fresh-load %g %g %d\n", wall.Seconds(), u.sys.Seconds(), u.faults)
}

// closeTimed ends a child process's timed part, begun at start with used:
// it closes rep and returns the time taken and what the process used.
func closeTimed(t *testing.T, rep *replica.Replica, start time.Time, used usage) (time.Duration, usage) {
	wall := time.Since(start)
	var u usage
	u.add(used)
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	return wall, u
}

// joinChildEnv holds, in a child process's environment, what TestJoinChild
// does: "join URL HEAD" or "replay URL HEAD".
const joinChildEnv = "IAM_BENCH_JOIN_CHILD"

// freshRegion has a new process become current at head as a new region
// does, reading the log through the regional node at url: "join" (from the
// newest snapshot, replica.Join as iamd calls it, then a projector for the
// tail) or "replay" (a projector from sequence 1: a bulk catch-up, until
// its rows are written). It returns the wall time until the replica is
// current, the part of it before the projector started (the join's
// download and load; 0 for a replay), in seconds, then the system time
// and the page faults, the join's download in seconds (0 for a replay),
// and the collector's cycles and CPU seconds while the projector ran.
func freshRegion(b *testing.B, mode, url string, head uint64) []float64 {
	return childFigures(b, "TestJoinChild", fmt.Sprintf("%s=%s %s %d", joinChildEnv, mode, url, head), "fresh-"+mode, 7)
}

// TestJoinChild is the child process of freshRegion; skipped otherwise.
func TestJoinChild(t *testing.T) {
	args := strings.Fields(os.Getenv(joinChildEnv))
	if len(args) == 0 {
		t.Skip("the child process of BenchmarkJoin")
	}
	head, err := strconv.ParseUint(args[len(args)-1], 10, 64)
	if len(args) != 3 || err != nil {
		t.Fatalf("%s=%q: want a mode, a URL and the log's head", joinChildEnv, os.Getenv(joinChildEnv))
	}
	mode, url := args[0], args[1]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nc, err := natsnode.ConnectURL(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	l, err := eventlog.Attach(ctx, nc, eventlog.Config{Domain: natsnode.HubDomain})
	if err != nil {
		t.Fatal(err)
	}
	start, used := time.Now(), processUsage()
	rep, err := replica.Open(replica.Config{Region: "eu-west", Dir: t.TempDir(), History: l.ReadRange, Head: l.Head})
	if err != nil {
		t.Fatal(err)
	}
	var loaded, downloaded time.Duration
	switch mode {
	case "join":
		open := func(ctx context.Context, create bool) (replica.SnapshotBucket, error) {
			b, err := snapshots.Open(ctx, l, create)
			if err != nil {
				return nil, err
			}
			return b, nil
		}
		var logged bytes.Buffer
		if _, ok, err := replica.Join(ctx, open, rep, slog.New(slog.NewJSONHandler(&logged, nil))); err != nil || !ok {
			t.Fatalf("join: %v (loaded: %v)", err, ok)
		}
		loaded = time.Since(start)
		for dec := json.NewDecoder(&logged); ; {
			var rec struct {
				Msg        string
				Downloaded time.Duration
			}
			if err := dec.Decode(&rec); err != nil {
				t.Fatalf("no download time in the join's log: %v", err)
			}
			if rec.Msg == "joined from snapshot" {
				downloaded = rec.Downloaded
				break
			}
		}
	case "replay":
	default:
		t.Fatalf("mode %q: want join or replay", mode)
	}
	gc := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(gc)
	cycles, gcCPU := gc[0].Value.Uint64(), gc[1].Value.Float64()
	follow(t, l, rep, head)
	if err := rep.Flush(); err != nil {
		t.Fatal(err)
	}
	metrics.Read(gc)
	wall, u := closeTimed(t, rep, start, used)
	fmt.Printf("fresh-%s %g %g %g %d %g %d %g\n", mode, wall.Seconds(), loaded.Seconds(), u.sys.Seconds(), u.faults,
		downloaded.Seconds(), gc[0].Value.Uint64()-cycles, gc[1].Value.Float64()-gcCPU)
}
