package replica_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// entry wraps events as the log entry at seq.
func entry(seq uint64, evs ...iam.Event) iam.LogEntry {
	at := baseTime.Add(time.Duration(seq) * time.Second)
	return iam.LogEntry{Seq: seq, Subject: "iam.evt.r1.commit", MsgID: "m" + strconv.FormatUint(seq, 10), Time: at,
		Commits: []iam.Commit{{Events: evs, At: at}}}
}

// smallLog is a realm with user alice, who gets read on doc through policy
// p1 at entry 4; entries 5.. are filler that changes no answer about her.
func smallLog(n int) []iam.LogEntry {
	in := iam.InRealm{Realm: "r1"}
	es := []iam.LogEntry{
		entry(1, iam.RealmCreated{InRealm: in, Name: "R1"}),
		entry(2, iam.IdentityCreated{InRealm: in, ID: "alice", Kind: iam.KindUser, Email: "alice@example.com", Name: "Alice"}),
		entry(3, iam.PolicyCreated{InRealm: in, ID: "p1", Name: "P1", Statements: []iam.Statement{
			{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{"hrn:here:data::r1:doc"}}}}),
		entry(4, iam.PolicyAttached{InRealm: in, Policy: "p1", Target: "alice"}),
	}
	for seq := uint64(len(es) + 1); len(es) < n; seq++ {
		id := "g" + strconv.FormatUint(seq, 10)
		es = append(es, entry(seq, iam.GroupCreated{InRealm: in, ID: id, Name: id}))
	}
	return es
}

var aliceReadsDoc = iam.CheckRequest{Realm: "r1", Subject: "alice", Action: "read", Resource: "hrn:here:data::r1:doc"}

func openReplica(tb testing.TB, cfg replica.Config) *replica.Replica {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	if cfg.Region == "" {
		cfg.Region = "test"
	}
	r, err := replica.Open(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

func mustCheck(tb testing.TB, r *replica.Replica, q iam.CheckRequest) (iam.Decision, uint64) {
	tb.Helper()
	d, pos, err := r.Check(context.Background(), q, replica.Consistency{Mode: replica.MinimizeLatency})
	if err != nil {
		tb.Fatal(err)
	}
	return d, pos
}

func TestReplica_ApplyEntries(t *testing.T) {
	log := smallLog(6)
	t.Run("empty batch is a no-op", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		if err := r.ApplyEntries(nil); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		if got := r.Applied(); got != 0 {
			t.Fatalf("got applied %d, want 0", got)
		}
	})
	t.Run("applies and records the position", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		if err := r.ApplyEntries(log[:4]); err != nil {
			t.Fatal(err)
		}
		if got, want := r.Applied(), uint64(4); got != want {
			t.Fatalf("got applied %d, want %d", got, want)
		}
		if got, want := r.AppliedMsgID(), log[3].MsgID; got != want {
			t.Fatalf("got msg id %q, want %q", got, want)
		}
		pos, logTime, appliedAt := r.LastApplied()
		if pos.Seq != 4 || !logTime.Equal(log[3].Time) || appliedAt.IsZero() {
			t.Fatalf("got last applied %+v at %v (applied %v), want seq 4 at %v", pos, logTime, appliedAt, log[3].Time)
		}
		stored, err := r.Store().Position()
		if err != nil {
			t.Fatal(err)
		}
		if stored != pos {
			t.Fatalf("got stored position %+v, want %+v", stored, pos)
		}
		if d, _ := mustCheck(t, r, aliceReadsDoc); !d.Allowed {
			t.Fatalf("got %+v, want allowed", d)
		}
	})
	// Each case starts from a replica at 2 and offers a batch that does not
	// continue it. Nothing of the batch may be applied, not even its valid
	// prefix: the index must stay equal to the durable form at 2.
	for _, tc := range []struct {
		name  string
		batch []iam.LogEntry
	}{
		{"gap before the batch", log[3:5]},                                        // 4, 5
		{"repeat of an applied entry", log[1:4]},                                  // 2, 3, 4
		{"gap inside the batch", []iam.LogEntry{log[2], log[3], log[5]}},          // 3, 4, 6
		{"repeat inside the batch", []iam.LogEntry{log[2], log[3], log[3]}},       // 3, 4, 4
		{"out of order inside the batch", []iam.LogEntry{log[2], log[4], log[3]}}, // 3, 5, 4
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			r := openReplica(t, replica.Config{})
			if err := r.ApplyEntries(log[:2]); err != nil {
				t.Fatal(err)
			}
			if err := r.ApplyEntries(tc.batch); err == nil {
				t.Fatalf("got nil error for entries %v after 2, want an error", seqs(tc.batch))
			}
			if got := r.Applied(); got != 2 {
				t.Fatalf("got applied %d, want 2", got)
			}
			// The index answers as at 2: alice has no policy yet.
			if d, pos := mustCheck(t, r, aliceReadsDoc); d.Allowed || pos != 2 {
				t.Fatalf("after a refused batch: got %+v at %d, want denied at 2 (the index applied part of the refused batch)", d, pos)
			}
			if _, err := r.Read(context.Background(), replica.Consistency{}, func(st *iam.State) error {
				requireRowsEqualState(t, r.Store(), st, "index after a refused batch")
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// And the right continuation is still accepted.
			if err := r.ApplyEntries(log[2:6]); err != nil {
				t.Fatalf("continuation after a refused batch: %v", err)
			}
			if d, pos := mustCheck(t, r, aliceReadsDoc); !d.Allowed || pos != 6 {
				t.Fatalf("got %+v at %d, want allowed at 6", d, pos)
			}
		})
	}
	// A long batch is refused whole too, and one that runs on leaves the
	// index equal to Pebble.
	t.Run("rejects a long batch with a gap near its end", func(t *testing.T) {
		entries := newBenchData(20).entries[:600]
		r := openReplica(t, replica.Config{})
		if err := r.ApplyEntries(slices.Concat(entries[:400], entries[401:])); err == nil {
			t.Fatal("got nil error for a gap at 401, want an error")
		}
		if got := r.Applied(); got != 0 {
			t.Fatalf("got applied %d, want 0", got)
		}
		if err := r.ApplyEntries(entries); err != nil {
			t.Fatal(err)
		}
		if got := r.Applied(); got != 600 {
			t.Fatalf("got applied %d, want 600", got)
		}
		if _, err := r.Read(context.Background(), replica.Consistency{}, func(st *iam.State) error {
			requireRowsEqualState(t, r.Store(), st, "index after a long batch")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	// An event the domain does not know stops the replica: the entries
	// before it may be in the index but not in Pebble, so every later batch
	// is refused too, and the projector reports the replica unhealthy.
	t.Run("rejects an unknown event, then everything", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		if err := r.ApplyEntries(log[:2]); err != nil {
			t.Fatal(err)
		}
		unknown := entry(4, &iam.PolicyAttached{InRealm: iam.InRealm{Realm: "r1"}, Policy: "p1", Target: "alice"})
		err := r.ApplyEntries([]iam.LogEntry{log[2], unknown})
		if err == nil || !strings.Contains(err.Error(), "unknown event *iam.PolicyAttached") {
			t.Fatalf("got %v, want an error naming the unknown event", err)
		}
		if got := r.Applied(); got != 2 {
			t.Fatalf("got applied %d, want 2", got)
		}
		if err := r.ApplyEntries(log[2:6]); err == nil {
			t.Fatalf("continuation after an unknown event: got nil error, want the replica stopped")
		}
	})
}

func seqs(es []iam.LogEntry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// waitResult runs WaitFor in a goroutine and reports its error and when it
// returned.
func waitResult(r *replica.Replica, ctx context.Context, seq uint64, wait time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() { done <- r.WaitFor(ctx, seq, wait) }()
	return done
}

// requireBlocked fails if done delivers within d. A short bounded check, not
// a sleep before an assertion: it asserts that nothing happens.
func requireBlocked(t *testing.T, done <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s: WaitFor returned %v, want it still waiting", what, err)
	case <-time.After(d):
	}
}

func requireReturns(t *testing.T, done <-chan error, within time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("%s: WaitFor still waiting after %s", what, within)
		return nil
	}
}

func TestReplica_WaitFor(t *testing.T) {
	log := smallLog(8)
	ctx := context.Background()
	t.Run("returns at once when applied", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		if err := r.ApplyEntries(log[:3]); err != nil {
			t.Fatal(err)
		}
		for _, seq := range []uint64{0, 1, 3} {
			start := time.Now()
			// A zero wait would time out at once if WaitFor waited at all.
			if err := r.WaitFor(ctx, seq, 0); err != nil {
				t.Fatalf("WaitFor(%d) at 3: got %v, want nil", seq, err)
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Fatalf("WaitFor(%d) at 3 took %s", seq, d)
			}
		}
		// Even a cancelled context does not matter when already applied.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := r.WaitFor(cctx, 3, time.Hour); err != nil {
			t.Fatalf("WaitFor(3) at 3 with a cancelled context: got %v, want nil", err)
		}
	})
	t.Run("wakes when applied advances", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		done := waitResult(r, ctx, 5, time.Hour)
		requireBlocked(t, done, 20*time.Millisecond, "at 0")
		// Advancing short of the token wakes the waiter, which waits again.
		if err := r.ApplyEntries(log[:4]); err != nil {
			t.Fatal(err)
		}
		requireBlocked(t, done, 20*time.Millisecond, "at 4 of 5")
		applied := time.Now()
		if err := r.ApplyEntries(log[4:6]); err != nil { // 5, 6: passes the token
			t.Fatal(err)
		}
		if err := requireReturns(t, done, 5*time.Second, "at 6"); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		// Woken by the broadcast, not by a poll interval: well within any
		// sensible polling period even under -race.
		if d := time.Since(applied); d > 250*time.Millisecond {
			t.Fatalf("WaitFor returned %s after the apply, want it woken at once", d)
		}
	})
	t.Run("many waiters wake on one advance", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		var dones []<-chan error
		for seq := uint64(1); seq <= 6; seq++ {
			dones = append(dones, waitResult(r, ctx, seq, time.Hour))
		}
		if err := r.ApplyEntries(log[:6]); err != nil {
			t.Fatal(err)
		}
		for i, done := range dones {
			if err := requireReturns(t, done, 5*time.Second, "waiter"); err != nil {
				t.Fatalf("waiter for %d: got %v, want nil", i+1, err)
			}
		}
	})
	t.Run("replica_behind after the wait", func(t *testing.T) {
		r := openReplica(t, replica.Config{Region: "eu"})
		if err := r.ApplyEntries(log[:2]); err != nil {
			t.Fatal(err)
		}
		const wait = 50 * time.Millisecond
		start := time.Now()
		err := r.WaitFor(ctx, 3, wait)
		if got := iam.ErrorCode(err); got != iam.EReplicaBehind {
			t.Fatalf("got %v (code %q), want code %q", err, got, iam.EReplicaBehind)
		}
		if d := time.Since(start); d < wait {
			t.Fatalf("gave up after %s, want at least %s", d, wait)
		}
	})
	t.Run("replica_behind when the context ends", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		cctx, cancel := context.WithCancel(ctx)
		done := waitResult(r, cctx, 1, time.Hour)
		requireBlocked(t, done, 10*time.Millisecond, "before cancel")
		cancel()
		if err := requireReturns(t, done, 5*time.Second, "after cancel"); iam.ErrorCode(err) != iam.EReplicaBehind {
			t.Fatalf("got %v, want code %q", err, iam.EReplicaBehind)
		}
	})
}

func TestReplica_Ensure(t *testing.T) {
	log := smallLog(8)
	ctx := context.Background()
	t.Run("minimize_latency never waits", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		for _, mode := range []string{"", replica.MinimizeLatency} {
			if err := r.Ensure(ctx, replica.Consistency{Mode: mode, Token: 99, Wait: time.Hour}); err != nil {
				t.Fatalf("mode %q: got %v, want nil", mode, err)
			}
		}
	})
	t.Run("at_least_as_fresh waits for the token", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		done := make(chan error, 1)
		go func() {
			done <- r.Ensure(ctx, replica.Consistency{Mode: replica.AtLeastAsFresh, Token: 3, Wait: time.Hour})
		}()
		requireBlocked(t, done, 20*time.Millisecond, "at 0")
		if err := r.ApplyEntries(log[:3]); err != nil {
			t.Fatal(err)
		}
		if err := requireReturns(t, done, 5*time.Second, "at 3"); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		err := r.Ensure(ctx, replica.Consistency{Mode: replica.AtLeastAsFresh, Token: 4, Wait: 20 * time.Millisecond})
		if iam.ErrorCode(err) != iam.EReplicaBehind {
			t.Fatalf("got %v, want code %q", err, iam.EReplicaBehind)
		}
	})
	t.Run("fully_consistent waits for the head", func(t *testing.T) {
		var calls atomic.Int32
		// No bulk catch-up, which asks for the head at the first batch.
		r := openReplica(t, replica.Config{BulkCatchUp: -1, Head: func(context.Context) (uint64, error) {
			calls.Add(1)
			return 5, nil
		}})
		if err := r.ApplyEntries(log[:4]); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- r.Ensure(ctx, replica.Consistency{Mode: replica.FullyConsistent, Wait: time.Hour}) }()
		requireBlocked(t, done, 20*time.Millisecond, "at 4 with head 5")
		if err := r.ApplyEntries(log[4:5]); err != nil {
			t.Fatal(err)
		}
		if err := requireReturns(t, done, 5*time.Second, "at 5"); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		if got := calls.Load(); got != 1 {
			t.Fatalf("Head called %d times, want 1", got)
		}
		// A token past the head is waited for too.
		err := r.Ensure(ctx, replica.Consistency{Mode: replica.FullyConsistent, Token: 7, Wait: 20 * time.Millisecond})
		if iam.ErrorCode(err) != iam.EReplicaBehind {
			t.Fatalf("token 7 past head 5 at 5: got %v, want code %q", err, iam.EReplicaBehind)
		}
	})
	t.Run("fully_consistent without a head", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		err := r.Ensure(ctx, replica.Consistency{Mode: replica.FullyConsistent})
		if iam.ErrorCode(err) != iam.EUnavailable {
			t.Fatalf("got %v, want code %q", err, iam.EUnavailable)
		}
	})
	t.Run("fully_consistent when the head is unreachable", func(t *testing.T) {
		r := openReplica(t, replica.Config{Head: func(ctx context.Context) (uint64, error) {
			<-ctx.Done() // the head lookup is bounded by the wait
			return 0, errors.New("log unreachable")
		}})
		start := time.Now()
		err := r.Ensure(ctx, replica.Consistency{Mode: replica.FullyConsistent, Wait: 30 * time.Millisecond})
		if iam.ErrorCode(err) != iam.EReplicaBehind {
			t.Fatalf("got %v, want code %q", err, iam.EReplicaBehind)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s, want about the 30ms wait", d)
		}
	})
	t.Run("waits are capped by MaxWait and default to DefaultWait", func(t *testing.T) {
		r := openReplica(t, replica.Config{DefaultWait: 20 * time.Millisecond, MaxWait: 40 * time.Millisecond})
		for _, wait := range []time.Duration{0, time.Hour} {
			start := time.Now()
			err := r.Ensure(ctx, replica.Consistency{Mode: replica.AtLeastAsFresh, Token: 1, Wait: wait})
			if iam.ErrorCode(err) != iam.EReplicaBehind {
				t.Fatalf("wait %s: got %v, want code %q", wait, err, iam.EReplicaBehind)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("wait %s: took %s, want at most about 40ms", wait, d)
			}
		}
	})
	t.Run("unknown mode", func(t *testing.T) {
		r := openReplica(t, replica.Config{})
		err := r.Ensure(ctx, replica.Consistency{Mode: "eventually"})
		if iam.ErrorCode(err) != iam.EInvalid {
			t.Fatalf("got %v, want code %q", err, iam.EInvalid)
		}
	})
}

func TestReplica_Check(t *testing.T) {
	log := smallLog(8)
	ctx := context.Background()
	r := openReplica(t, replica.Config{})
	if err := r.ApplyEntries(log[:3]); err != nil {
		t.Fatal(err)
	}
	t.Run("returns the position evaluated at", func(t *testing.T) {
		if d, pos := mustCheck(t, r, aliceReadsDoc); d.Allowed || pos != 3 {
			t.Fatalf("got %+v at %d, want denied at 3", d, pos)
		}
		if err := r.ApplyEntries(log[3:6]); err != nil {
			t.Fatal(err)
		}
		if d, pos := mustCheck(t, r, aliceReadsDoc); !d.Allowed || pos != 6 {
			t.Fatalf("got %+v at %d, want allowed at 6", d, pos)
		}
	})
	t.Run("at_least_as_fresh answers at the replica's position", func(t *testing.T) {
		d, pos, err := r.Check(ctx, aliceReadsDoc, replica.Consistency{Mode: replica.AtLeastAsFresh, Token: 4})
		if err != nil || !d.Allowed || pos != 6 {
			t.Fatalf("got %+v at %d, %v; want allowed at 6", d, pos, err)
		}
	})
	t.Run("behind the token", func(t *testing.T) {
		d, pos, err := r.Check(ctx, aliceReadsDoc, replica.Consistency{Mode: replica.AtLeastAsFresh, Token: 7, Wait: 10 * time.Millisecond})
		if iam.ErrorCode(err) != iam.EReplicaBehind || pos != 0 || d != (iam.Decision{}) {
			t.Fatalf("got %+v at %d, %v; want no decision and code %q", d, pos, err, iam.EReplicaBehind)
		}
	})
	t.Run("read reports its position", func(t *testing.T) {
		pos, err := r.Read(ctx, replica.Consistency{}, func(st *iam.State) error {
			if st.Seq() != 6 {
				t.Errorf("state at %d, want 6", st.Seq())
			}
			return nil
		})
		if err != nil || pos != 6 {
			t.Fatalf("got %d, %v; want 6", pos, err)
		}
	})
}

func TestReplica_Open(t *testing.T) {
	w := newWorkload(t, 11, 3000)
	qs := w.checkSample(12, 2000)
	dir := t.TempDir()
	r, err := replica.Open(replica.Config{Region: "eu", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, r, w.entries, 100)
	type answer struct {
		d   iam.Decision
		pos uint64
	}
	before := make([]answer, len(qs))
	for i, q := range qs {
		before[i].d, before[i].pos = mustCheck(t, r, q)
	}
	digest, seq, err := r.Store().Digest()
	if err != nil {
		t.Fatal(err)
	}
	msgID := r.AppliedMsgID()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := openReplica(t, replica.Config{Region: "eu", Dir: dir})
	if got := r2.Applied(); got != seq || got != uint64(len(w.entries)) {
		t.Fatalf("reopened at %d, want %d", got, seq)
	}
	if got := r2.AppliedMsgID(); got != msgID {
		t.Fatalf("reopened with msg id %q, want %q", got, msgID)
	}
	d2, seq2, err := r2.Store().Digest()
	if err != nil || d2 != digest || seq2 != seq {
		t.Fatalf("reopened digest %s at %d (%v), want %s at %d", d2, seq2, err, digest, seq)
	}
	for i, q := range qs {
		d, pos := mustCheck(t, r2, q)
		if pos != before[i].pos || comparableDecision(d) != comparableDecision(before[i].d) {
			t.Fatalf("check %+v after reopen: got %s at %d, want %s at %d", q, comparableDecision(d), pos, comparableDecision(before[i].d), before[i].pos)
		}
	}
	// The loaded index is the durable form, and the durable form is the
	// state a scratch replay builds.
	if _, err := r2.Read(context.Background(), replica.Consistency{}, func(st *iam.State) error {
		requireRowsEqualState(t, r2.Store(), st, "reloaded index")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	requireRowsEqualState(t, r2.Store(), w.stateAt(uint64(len(w.entries))), "store vs scratch replay")
	// And it continues where it stopped.
	more := newWorkload(t, 11, 3500).entries // same seed: a longer run of the same log
	applyAll(t, r2, more, 100)
	requireRowsEqualState(t, r2.Store(), (&workload{entries: more}).stateAt(uint64(len(more))), "continued after reopen")
}

// TestReplica_CheckReasonIsDeterministic: when several statements match, the
// reason must not depend on Go's map iteration order — the same replica at
// the same position, and two replicas of the same log, name the same one.
func TestReplica_CheckReasonIsDeterministic(t *testing.T) {
	in := iam.InRealm{Realm: "r1"}
	evs := []iam.Event{
		iam.RealmCreated{InRealm: in, Name: "R1"},
		iam.IdentityCreated{InRealm: in, ID: "alice", Kind: iam.KindUser, Email: "alice@example.com", Name: "Alice"},
	}
	for _, p := range []string{"pa", "pb", "pc", "pd", "pe", "pf", "pg", "ph"} {
		evs = append(evs,
			iam.PolicyCreated{InRealm: in, ID: p, Name: p, Statements: []iam.Statement{
				{Effect: iam.Allow, Actions: []string{"read"}, Resources: []string{"hrn:here:data::r1:*"}}}},
			iam.PolicyAttached{InRealm: in, Policy: p, Target: "alice"})
	}
	r := openReplica(t, replica.Config{})
	var es []iam.LogEntry
	for i, ev := range evs {
		es = append(es, entry(uint64(i+1), ev))
	}
	if err := r.ApplyEntries(es); err != nil {
		t.Fatal(err)
	}
	first, _ := mustCheck(t, r, aliceReadsDoc)
	for range 200 {
		if d, _ := mustCheck(t, r, aliceReadsDoc); d != first {
			t.Fatalf("same replica, same position, same check: got %+v, earlier %+v", d, first)
		}
	}
}

// TestReplica_OpenRefusesABadIdentityRow: an identity row whose value does
// not decode (identity rows are decoded beside the scan, not where the
// other rows are) fails Open with an error naming the row, and a snapshot
// carrying it fails to load as corrupt, leaving the replica empty.
func TestReplica_OpenRefusesABadIdentityRow(t *testing.T) {
	w := newWorkload(t, 13, 600)
	dir := t.TempDir()
	r, err := replica.Open(replica.Config{Region: "eu", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, r, w.entries, 100)
	pos := replica.Position{Seq: r.Applied(), MsgID: r.AppliedMsgID()}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	u := w.realms[0]
	key := replica.RowKey(iam.Change{Kind: iam.ChangeIdentity, Realm: u.id, From: u.users[0]})
	store, err := replica.OpenStore(dir, replica.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Commit([]replica.RowChange{{Key: []byte(key), Value: []byte(`{"kind": 7`)}}, pos); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, _, err := snap.Write(&buf, replica.SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(snap.Close(), store.Close()); err != nil {
		t.Fatal(err)
	}

	if r, err := replica.Open(replica.Config{Region: "eu", Dir: dir}); err == nil {
		r.Close()
		t.Fatal("opened a read model with an identity row that does not decode")
	} else if !strings.Contains(err.Error(), strconv.Quote(key)) {
		t.Fatalf("Open: got %v, want an error naming row %q", err, key)
	}
	dst := openReplica(t, replica.Config{})
	if _, err := dst.LoadSnapshot(context.Background(), &buf, replica.LoadOptions{}); !errors.Is(err, replica.ErrSnapshotCorrupt) {
		t.Fatalf("LoadSnapshot: got %v, want ErrSnapshotCorrupt", err)
	}
	if dst.Applied() != 0 {
		t.Fatalf("after a refused snapshot: applied %d, want 0", dst.Applied())
	}
}

// TestApply_DropsOutsizedBuffers: the buffers apply keeps for its next
// batch stay after an ordinary batch, and are let go after one entry that
// touched more rows than a replay's batch ever does.
func TestApply_DropsOutsizedBuffers(t *testing.T) {
	r := openReplica(t, replica.Config{})
	if err := r.ApplyEntries(smallLog(600)); err != nil {
		t.Fatal(err)
	}
	if touched, keys, rows := replica.KeptBuffers(r); touched == 0 || keys == 0 || rows == 0 {
		t.Fatalf("after 600 entries: kept %d touched, %d key bytes, %d rows; want each kept", touched, keys, rows)
	}
	in := iam.InRealm{Realm: "r1"}
	var evs []iam.Event
	for i := range 70_000 {
		id := "u" + strconv.Itoa(i)
		evs = append(evs, iam.IdentityCreated{InRealm: in, ID: id, Kind: iam.KindUser, Name: id})
	}
	if err := r.ApplyEntries([]iam.LogEntry{entry(601, evs...)}); err != nil {
		t.Fatal(err)
	}
	if touched, keys, rows := replica.KeptBuffers(r); touched != 0 || keys != 0 || rows != 0 {
		t.Errorf("after an entry of 70,000 rows: kept %d touched, %d key bytes, %d rows; want none", touched, keys, rows)
	}
	var found bool
	if _, err := r.Read(context.Background(), replica.Consistency{Mode: replica.MinimizeLatency}, func(s *iam.State) error {
		found = s.Realm("r1").Identities.Get("u69999") != nil
		return nil
	}); err != nil || !found {
		t.Errorf("u69999 applied: %t (%v), want true", found, err)
	}
}
