package replica_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/replica"
)

// TestKeyOrderedRows: a bulk catch-up writes Rows' own rows, keys and
// values in the same order, for random histories of every kind of row and
// for an identity and a group of one id (one row for an attachment both
// have).
func TestKeyOrderedRows(t *testing.T) {
	type row struct{ k, v string }
	requireSame := func(t *testing.T, st *iam.State) {
		t.Helper()
		var want, got []row
		if err := replica.Rows(st, func(k string, v []byte) error {
			if n := len(want); n == 0 || want[n-1].k != k {
				want = append(want, row{k, string(v)})
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := replica.KeyOrderedRows(st, func(k, v []byte) error { got = append(got, row{string(k), string(v)}); return nil }); err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(want, func(w row) bool { return !slices.Contains(got, w) }); i >= 0 || len(got) != len(want) {
			t.Fatalf("%d rows in key order, want Rows' %d (first missing: %d)", len(got), len(want), i)
		}
		if !slices.Equal(got, want) {
			t.Fatal("the rows are Rows' but in another order")
		}
	}
	for seed := range uint64(10) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			st, _ := randomHistory(t, seed, 600, nil)
			requireSame(t, st)
		})
	}
	t.Run("an identity and a group of one id", func(t *testing.T) {
		in := iam.InRealm{Realm: "r1"}
		st := iam.NewState()
		for i, e := range []iam.LogEntry{
			entry(1, iam.RealmCreated{InRealm: in, Name: "R1"}),
			// p and q attached to the identity, then p and r to the group.
			entry(2, iam.IdentityCreated{InRealm: in, ID: "x", Kind: iam.KindUser, Name: "X"},
				iam.PolicyCreated{InRealm: in, ID: "p", Name: "P"}, iam.PolicyCreated{InRealm: in, ID: "q", Name: "Q"}, iam.PolicyCreated{InRealm: in, ID: "r", Name: "R"},
				iam.PolicyAttached{InRealm: in, Policy: "q", Target: "x"}, iam.PolicyAttached{InRealm: in, Policy: "p", Target: "x"}),
			entry(3, iam.GroupCreated{InRealm: in, ID: "x", Name: "X"}, iam.MemberAdded{InRealm: in, Group: "x", Identity: "x"},
				iam.PolicyAttached{InRealm: in, Policy: "r", Target: "x"}, iam.PolicyAttached{InRealm: in, Policy: "p", Target: "x"}),
		} {
			if err := st.ApplyEntry(e, nil); err != nil {
				t.Fatalf("entry %d: %v", i+1, err)
			}
		}
		requireSame(t, st)
	})
	t.Run("identities whose rows escape", func(t *testing.T) {
		// Identities' rows are encoded apart (identityEncoder), and must
		// be byte for byte json.Marshal's: HTML and line separators
		// escaped, bytes in base64, no newline after.
		in := iam.InRealm{Realm: "r1"}
		st := iam.NewState()
		if err := st.ApplyEvents([]iam.Event{
			iam.RealmCreated{InRealm: in, Name: "R1"},
			iam.IdentityCreated{InRealm: in, ID: "u", Kind: iam.KindUser, Name: "<b>Tom & Jerry</b>\u2028", Email: "a+b@x.example",
				PasswordHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA", Sealed: []byte{0, 1, 2, 0xff}},
			iam.IdentityCreated{InRealm: in, ID: "a", Kind: iam.KindApp, Name: "App \"quoted\"", Owner: "u",
				RedirectURIs: []string{"https://a.example/cb?x=1&y=<2>"}},
			iam.IdentityCreated{InRealm: in, ID: "v", Kind: iam.KindUser, Name: "plain"},
		}, nil); err != nil {
			t.Fatal(err)
		}
		requireSame(t, st)
	})
}

// bulkLog is n entries of randomHistory, written by the log an hour ago.
func bulkLog(t *testing.T, n int) (*iam.State, []iam.LogEntry) {
	st, log := randomHistory(t, 7, n, nil)
	for i := range log {
		log[i].Time = time.Now().Add(-time.Hour + time.Duration(i)*time.Millisecond)
		log[i].MsgID = fmt.Sprintf("m%d", log[i].Seq)
	}
	return st, log
}

// applyInBatches applies log to r in batches of 50.
func applyInBatches(t *testing.T, r *replica.Replica, log []iam.LogEntry) {
	t.Helper()
	for from := 0; from < len(log); from += 50 {
		if err := r.ApplyEntries(log[from:min(from+50, len(log))]); err != nil {
			t.Fatal(err)
		}
	}
}

// storedAt returns the position the read model on disk holds.
func storedAt(t *testing.T, r *replica.Replica) uint64 {
	t.Helper()
	pos, err := r.Store().Position()
	if err != nil {
		t.Fatal(err)
	}
	return pos.Seq
}

// TestReplica_BulkCatchUp: an empty replica far behind its log applies it
// to its index alone (Applied moves, the disk stays empty, so a crash
// starts over), answers from the index meanwhile, and writes exactly the
// state's rows and the position when it ends: at Flush, at a batch that
// finds it caught up, at a DigestAt, when the log goes quiet at its head,
// and at Close; not in a pause behind the head. Not far enough behind, or
// without the head, it commits as ever.
func TestReplica_BulkCatchUp(t *testing.T) {
	st, log := bulkLog(t, 400)
	last := log[len(log)-1].Seq
	// A head the replica never reaches, so that only what a subtest does
	// ends the catch-up (the log quiet at its head ends it on its own).
	head := func(context.Context) (uint64, error) { return last + 1000, nil }
	bulkConfig := replica.Config{Head: head, BulkCatchUp: 100}
	inBulk := func(t *testing.T, r *replica.Replica) *replica.Replica {
		t.Helper()
		applyInBatches(t, r, log)
		if !replica.Bulk(r) || r.Applied() != last || storedAt(t, r) != 0 {
			t.Fatalf("after the log: bulk %v, applied %d, stored at %d; want a bulk catch-up at %d, nothing stored", replica.Bulk(r), r.Applied(), storedAt(t, r), last)
		}
		return r
	}

	t.Run("flush", func(t *testing.T) {
		r := inBulk(t, openReplica(t, bulkConfig))
		if _, err := r.Read(context.Background(), replica.Consistency{Mode: replica.AtLeastAsFresh, Token: last}, func(s *iam.State) error {
			if got, want := len(s.RealmIDs()), len(st.RealmIDs()); got != want {
				t.Errorf("the index in the catch-up holds %d realms, want %d", got, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		if replica.Bulk(r) || storedAt(t, r) != last {
			t.Fatalf("after Flush: bulk %v, stored at %d; want none, %d", replica.Bulk(r), storedAt(t, r), last)
		}
		requireRowsEqualState(t, r.Store(), st, "after Flush")
		// Then it commits as it goes.
		in := iam.InRealm{Realm: "r1"}
		if err := r.ApplyEntries([]iam.LogEntry{entry(last+1, iam.GroupCreated{InRealm: in, ID: "after-bulk", Name: "After"})}); err != nil {
			t.Fatal(err)
		}
		if storedAt(t, r) != last+1 {
			t.Fatalf("after a batch past the catch-up: stored at %d, want %d", storedAt(t, r), last+1)
		}
	})

	t.Run("a batch caught up", func(t *testing.T) {
		r := inBulk(t, openReplica(t, bulkConfig))
		in := iam.InRealm{Realm: "r1"}
		now := iam.LogEntry{Seq: last + 1, MsgID: "now", Time: time.Now(), Commits: []iam.Commit{{Events: []iam.Event{iam.GroupCreated{InRealm: in, ID: "now", Name: "Now"}}, At: time.Now()}}}
		if err := r.ApplyEntries([]iam.LogEntry{now}); err != nil {
			t.Fatal(err)
		}
		if replica.Bulk(r) || storedAt(t, r) != last+1 {
			t.Fatalf("after a batch of now: bulk %v, stored at %d; want none, %d", replica.Bulk(r), storedAt(t, r), last+1)
		}
		want := st.Clone()
		if err := want.ApplyEntry(now, nil); err != nil {
			t.Fatal(err)
		}
		requireRowsEqualState(t, r.Store(), want, "after a batch caught up")
	})

	t.Run("digest", func(t *testing.T) {
		r := inBulk(t, openReplica(t, bulkConfig))
		ref := openReplica(t, replica.Config{})
		applyInBatches(t, ref, log)
		got, err := r.DigestAt(context.Background(), last, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.DigestAt(context.Background(), last, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("digest after a bulk catch-up %+v, want a replay's %+v", got, want)
		}
	})

	t.Run("the log quiet", func(t *testing.T) {
		cfg := bulkConfig
		cfg.Head = func(context.Context) (uint64, error) { return last, nil }
		cfg.BulkCatchUp = 20 // the first batch ends 27 entries behind
		r := inBulk(t, openReplica(t, cfg))
		eventlogtest.Eventually(t, 10*time.Second, "the catch-up's rows written once the log went quiet", func() bool { return storedAt(t, r) == last })
		requireRowsEqualState(t, r.Store(), st, "once the log went quiet")
	})

	// A pause far behind the log's head, slower than a quiet log's
	// probes (a fetch, a collection), does not end it.
	t.Run("a pause behind the head", func(t *testing.T) {
		r := inBulk(t, openReplica(t, bulkConfig))
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if !replica.Bulk(r) || storedAt(t, r) != 0 {
				t.Fatalf("in a pause behind the head: bulk %v, stored at %d; want a bulk catch-up, nothing stored", replica.Bulk(r), storedAt(t, r))
			}
		}
		if err := r.Flush(); err != nil || storedAt(t, r) != last {
			t.Fatalf("Flush: %v, stored at %d; want %d", err, storedAt(t, r), last)
		}
	})

	t.Run("close", func(t *testing.T) {
		cfg := bulkConfig
		cfg.Region, cfg.Dir = "test", t.TempDir()
		r, err := replica.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := inBulk(t, r).Close(); err != nil {
			t.Fatal(err)
		}
		again := openReplica(t, replica.Config{Dir: cfg.Dir})
		if again.Applied() != last {
			t.Fatalf("reopened at %d, want %d", again.Applied(), last)
		}
		requireRowsEqualState(t, again.Store(), st, "reopened")
	})

	t.Run("an entry refused", func(t *testing.T) {
		r := inBulk(t, openReplica(t, bulkConfig))
		// The first entry of the batch is applied to the index, the second
		// refused (an event of a type the domain does not know).
		in := iam.InRealm{Realm: "r1"}
		batch := []iam.LogEntry{
			entry(last+1, iam.GroupCreated{InRealm: in, ID: "applied", Name: "Applied"}),
			entry(last+2, &iam.GroupCreated{InRealm: in, ID: "refused", Name: "Refused"}),
		}
		for i := range batch {
			batch[i].Time = time.Now().Add(-time.Hour)
		}
		if err := r.ApplyEntries(batch); err == nil {
			t.Fatal("an entry of an unknown event: no error")
		}
		if err := r.Flush(); err == nil {
			t.Fatal("Flush after a refused entry: no error")
		}
		if storedAt(t, r) != 0 {
			t.Fatalf("after a refused entry: stored at %d, want nothing stored", storedAt(t, r))
		}
	})

	for name, cfg := range map[string]replica.Config{
		"not far behind": {Head: func(context.Context) (uint64, error) { return 60, nil }, BulkCatchUp: 100},
		"no head":        {BulkCatchUp: 100},
		"turned off":     {Head: head, BulkCatchUp: -1},
	} {
		t.Run(name, func(t *testing.T) {
			r := openReplica(t, cfg)
			applyInBatches(t, r, log[:50])
			if replica.Bulk(r) || storedAt(t, r) != 50 {
				t.Fatalf("after 50 entries: bulk %v, stored at %d; want none, 50", replica.Bulk(r), storedAt(t, r))
			}
		})
	}
}

// TestReplica_BulkCatchUpFaults: the rows of a bulk catch-up reach the disk
// all together or not at all. A write failing under them (a full disk)
// leaves the read model empty and the replica refusing further entries,
// its index being past what the disk holds; reopened, it starts over from
// the first entry and ends with the state's rows. A crash before the rows
// are written reopens empty; a crash just after Flush, losing every write
// not synced, reopens at the position with every row.
func TestReplica_BulkCatchUpFaults(t *testing.T) {
	st, log := bulkLog(t, 400)
	last := log[len(log)-1].Seq
	head := func(context.Context) (uint64, error) { return last + 1000, nil }
	open := func(t *testing.T, fs vfs.FS) *replica.Replica {
		t.Helper()
		r, err := replica.Open(replica.Config{Region: "faulty", FS: fs, Dir: "/r", Head: head, BulkCatchUp: 100})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// requireStartsOver checks that fs holds an empty read model, and that
	// a replica on it catches up in bulk again to the state's rows.
	requireStartsOver := func(t *testing.T, fs vfs.FS) {
		t.Helper()
		r := open(t, fs)
		defer r.Close()
		if r.Applied() != 0 || storedAt(t, r) != 0 {
			t.Fatalf("reopened at %d, stored at %d; want an empty read model", r.Applied(), storedAt(t, r))
		}
		requireRowsEqualState(t, r.Store(), iam.NewState(), "reopened")
		applyInBatches(t, r, log)
		if !replica.Bulk(r) {
			t.Fatal("starting over: no bulk catch-up")
		}
		if err := r.Flush(); err != nil || storedAt(t, r) != last {
			t.Fatalf("Flush starting over: %v, stored at %d; want %d", err, storedAt(t, r), last)
		}
		requireRowsEqualState(t, r.Store(), st, "started over")
	}

	t.Run("a write failing", func(t *testing.T) {
		mem := vfs.NewMem()
		var failing atomic.Bool
		var injected atomic.Int64
		fs := errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) error {
			// The sstables are written beside the read model, then ingested.
			if failing.Load() && op.Kind == errorfs.OpFileWrite && strings.HasPrefix(op.Path, "/r.loading") {
				injected.Add(1)
				return errorfs.ErrInjected
			}
			return nil
		}))
		r := open(t, fs)
		applyInBatches(t, r, log)
		if !replica.Bulk(r) {
			t.Fatal("no bulk catch-up")
		}
		failing.Store(true)
		if err := r.Flush(); !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("Flush with its writes failing: %v, want the injected error", err)
		}
		if injected.Load() == 0 || storedAt(t, r) != 0 {
			t.Fatalf("%d writes failed, stored at %d; want some failed, nothing stored", injected.Load(), storedAt(t, r))
		}
		in := iam.InRealm{Realm: "r1"}
		if err := r.ApplyEntries([]iam.LogEntry{entry(last+1, iam.GroupCreated{InRealm: in, ID: "after", Name: "After"})}); err == nil {
			t.Fatal("an entry after the rows failed to be written: accepted")
		}
		r.Close() // the failure is Flush's to report
		failing.Store(false)
		if _, err := mem.Stat("/r.loading"); !oserror.IsNotExist(err) {
			t.Fatalf("the sstables' directory is left behind: %v", err)
		}
		requireStartsOver(t, mem)
	})

	t.Run("a crash", func(t *testing.T) {
		fs := vfs.NewCrashableMem()
		r := open(t, fs)
		defer r.Close()
		applyInBatches(t, r, log)
		if !replica.Bulk(r) {
			t.Fatal("no bulk catch-up")
		}
		before := fs.CrashClone(vfs.CrashCloneCfg{})
		if err := r.Flush(); err != nil {
			t.Fatal(err)
		}
		after := fs.CrashClone(vfs.CrashCloneCfg{})

		t.Run("before the rows are written", func(t *testing.T) { requireStartsOver(t, before) })
		t.Run("after Flush", func(t *testing.T) {
			again := open(t, after)
			defer again.Close()
			if again.Applied() != last {
				t.Fatalf("reopened at %d, want %d", again.Applied(), last)
			}
			requireRowsEqualState(t, again.Store(), st, "reopened after the crash")
		})
	})
}
