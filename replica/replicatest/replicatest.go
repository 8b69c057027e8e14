// Package replicatest is the conformance suite of replica.SnapshotBucket,
// run by the tests of every implementation (OpenFGA's storage suite,
// litestream's RunWithReplicaClient): RunSnapshotBucketTests checks the
// contract documented on replica.SnapshotBucket and on *snapshots.Store, the
// real bucket, and nothing an implementation adds to it.
package replicatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/snapshots"
	"github.com/iam-project/iam/replica"
)

// Blob returns n bytes of a snapshot body that differ by seq, so that
// reading back the wrong object shows.
func Blob(seq uint64, n int) []byte {
	b := make([]byte, n)
	x := seq*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// blobSize spans several 256 KiB Object Store chunks, the last one short.
const blobSize = 600_000 + 123

// trickle returns r's bytes a little at a time, like the pipe from a
// snapshot writer.
type trickle struct{ r io.Reader }

func (t trickle) Read(p []byte) (int, error) { return t.r.Read(p[:min(len(p), 4093)]) }

// failing returns n bytes, then fails.
type failing struct{ n int }

var errUpload = errors.New("replicatest: upload failed")

func (f *failing) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errUpload
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

// RunSnapshotBucketTests runs the replica.SnapshotBucket conformance
// suite, each case on a fresh, empty bucket from open that keeps
// snapshots.DefaultKeep snapshots (the default of *snapshots.Store):
//
//   - an empty bucket lists nothing, Latest is not_found, and Open of any
//     name is not_found;
//   - Put stores the body under snapshots.Name(seq) and returns the info
//     given (position, MsgID, rows, digest, creation time) with that Name
//     and the body's Size; a zero creation time is stamped; List and Latest
//     then give the same info, and Open streams the body back byte for
//     byte, however the reader handed to Put delivers it;
//   - Put at position 0 is refused with invalid_argument and stores nothing;
//   - List is newest (highest position) first whatever the order of the
//     Puts, Latest is the newest, and the bucket keeps only the newest
//     snapshots.DefaultKeep: Open of a pruned one is not_found;
//   - Put at a position already stored replaces that snapshot;
//   - a Put whose reader fails returns an error and leaves nothing;
//   - the methods may be called from several goroutines (run it under
//     -race).
func RunSnapshotBucketTests(t *testing.T, open func(t *testing.T) replica.SnapshotBucket) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	info := func(seq uint64) iam.SnapshotInfo {
		return iam.SnapshotInfo{Seq: seq, MsgID: fmt.Sprintf("msg-%d", seq), Rows: seq * 3,
			Digest: fmt.Sprintf("sha256-%d", seq), Created: created.Add(time.Duration(seq) * time.Second)}
	}

	t.Run("Empty", func(t *testing.T) {
		ctx := testContext(t)
		b := open(t)
		wantList(t, b)
		if got, err := b.Latest(ctx); iam.ErrorCode(err) != iam.ENotFound {
			t.Errorf("Latest of an empty bucket: got %+v (%v), want not_found", got, err)
		}
		wantNotFound(t, b, snapshots.Name(1))
	})

	t.Run("PutOpen", func(t *testing.T) {
		ctx := testContext(t)
		b := open(t)
		want := info(42)
		body := Blob(42, blobSize)
		got := mustPut(t, b, want, trickle{bytes.NewReader(body)})
		want.Name, want.Size = snapshots.Name(42), uint64(len(body))
		wantInfo(t, "Put", got, want)
		latest, err := b.Latest(ctx)
		if err != nil {
			t.Fatalf("Latest: %v", err)
		}
		wantInfo(t, "Latest", latest, want)
		wantList(t, b, want)
		wantBody(t, b, want.Name, body)
	})

	t.Run("PutEmptyBody", func(t *testing.T) {
		b := open(t)
		got := mustPut(t, b, info(7), bytes.NewReader(nil))
		if got.Size != 0 || got.Name != snapshots.Name(7) {
			t.Errorf("Put of an empty body: got %+v, want %s of size 0", got, snapshots.Name(7))
		}
		wantBody(t, b, snapshots.Name(7), nil)
	})

	t.Run("PutStampsCreated", func(t *testing.T) {
		ctx := testContext(t)
		b := open(t)
		in := info(5)
		in.Created = time.Time{}
		got := mustPut(t, b, in, bytes.NewReader([]byte("x")))
		if got.Created.IsZero() {
			t.Errorf("Put without a creation time: got %+v, want it stamped", got)
		}
		latest, err := b.Latest(ctx)
		if err != nil || latest.Created.IsZero() {
			t.Errorf("Latest after a Put without a creation time: got %+v (%v), want it stamped", latest, err)
		}
	})

	t.Run("PutSeqZero", func(t *testing.T) {
		ctx := testContext(t)
		b := open(t)
		if got, err := b.Put(ctx, info(0), bytes.NewReader([]byte("nothing"))); iam.ErrorCode(err) != iam.EInvalid {
			t.Fatalf("Put at position 0: got %+v (%v), want invalid_argument", got, err)
		}
		wantList(t, b)
		if _, err := b.Latest(ctx); iam.ErrorCode(err) != iam.ENotFound {
			t.Errorf("Latest after a refused Put: got %v, want not_found", err)
		}
		wantNotFound(t, b, snapshots.Name(0))
	})

	t.Run("NewestFirstAndKeep", func(t *testing.T) {
		ctx := testContext(t)
		b := open(t)
		if keep := snapshots.DefaultKeep; keep != 2 {
			t.Fatalf("the suite assumes snapshots.DefaultKeep is 2, not %d", keep)
		}
		stored := map[uint64]iam.SnapshotInfo{}
		put := func(seq uint64) {
			stored[seq] = mustPut(t, b, info(seq), bytes.NewReader(Blob(seq, 1000+int(seq))))
		}
		// Out of order: List sorts by position, not by arrival.
		put(200)
		put(100)
		wantList(t, b, stored[200], stored[100])
		put(300) // 100 goes: it is not among the newest two
		wantList(t, b, stored[300], stored[200])
		wantNotFound(t, b, snapshots.Name(100))
		put(250) // 200 goes
		wantList(t, b, stored[300], stored[250])
		wantNotFound(t, b, snapshots.Name(200))
		put(150) // older than both kept: it goes at once
		wantList(t, b, stored[300], stored[250])
		wantNotFound(t, b, snapshots.Name(150))
		latest, err := b.Latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantInfo(t, "Latest", latest, stored[300])
		for _, seq := range []uint64{300, 250} {
			wantBody(t, b, snapshots.Name(seq), Blob(seq, 1000+int(seq)))
		}
	})

	t.Run("PutSameSeqReplaces", func(t *testing.T) {
		b := open(t)
		mustPut(t, b, info(10), bytes.NewReader(Blob(1, 500)))
		again := info(10)
		again.Rows, again.Digest = 99, "other"
		want := mustPut(t, b, again, bytes.NewReader(Blob(2, 700)))
		wantList(t, b, want)
		wantBody(t, b, snapshots.Name(10), Blob(2, 700))
	})

	t.Run("PutFails", func(t *testing.T) {
		ctx := testContext(t)
		b := open(t)
		kept := mustPut(t, b, info(1), bytes.NewReader([]byte("kept")))
		if got, err := b.Put(ctx, info(2), &failing{n: blobSize}); err == nil {
			t.Fatalf("Put from a failing reader: got %+v, want an error", got)
		}
		wantList(t, b, kept)
		wantNotFound(t, b, snapshots.Name(2))
		wantBody(t, b, kept.Name, []byte("kept"))
	})

	t.Run("Concurrent", func(t *testing.T) {
		ctx := testContext(t)
		b := open(t)
		const n = 6
		var wg sync.WaitGroup
		errs := make(chan error, 4*n)
		for i := range n {
			seq := uint64(i + 1)
			wg.Go(func() {
				if _, err := b.Put(ctx, info(seq), bytes.NewReader(Blob(seq, 2000))); err != nil {
					errs <- fmt.Errorf("put %d: %w", seq, err)
				}
			})
			wg.Go(func() {
				if _, err := b.List(ctx); err != nil {
					errs <- fmt.Errorf("list: %w", err)
				}
				if _, err := b.Latest(ctx); err != nil && iam.ErrorCode(err) != iam.ENotFound {
					errs <- fmt.Errorf("latest: %w", err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		list, err := b.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Each Put prunes after storing, so concurrent ones may leave fewer
		// than Keep, but never the newest out and never more than n.
		if len(list) == 0 || len(list) > n || list[0].Seq != n {
			t.Fatalf("List after concurrent Puts: got %v, want %s first", names(list), snapshots.Name(n))
		}
		wantBody(t, b, snapshots.Name(n), Blob(n, 2000))
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t *testing.T, b replica.SnapshotBucket, info iam.SnapshotInfo, r io.Reader) iam.SnapshotInfo {
	t.Helper()
	got, err := b.Put(testContext(t), info, r)
	if err != nil {
		t.Fatalf("Put %d: %v", info.Seq, err)
	}
	return got
}

// sameInfo compares infos, times by instant (a bucket may store them in
// another location).
func sameInfo(a, b iam.SnapshotInfo) bool {
	return a.Name == b.Name && a.Seq == b.Seq && a.MsgID == b.MsgID && a.Rows == b.Rows &&
		a.Digest == b.Digest && a.Size == b.Size && a.Created.Equal(b.Created)
}

func wantInfo(t *testing.T, what string, got, want iam.SnapshotInfo) {
	t.Helper()
	if !sameInfo(got, want) {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
}

func names(l []iam.SnapshotInfo) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.Name
	}
	return out
}

func wantList(t *testing.T, b replica.SnapshotBucket, want ...iam.SnapshotInfo) {
	t.Helper()
	got, err := b.List(testContext(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("List: got %v, want %v", names(got), names(want))
	}
	for i := range got {
		if !sameInfo(got[i], want[i]) {
			t.Errorf("List[%d]: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func wantBody(t *testing.T, b replica.SnapshotBucket, name string, want []byte) {
	t.Helper()
	r, err := b.Open(testContext(t), name)
	if err != nil {
		t.Fatalf("Open %s: %v", name, err)
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read %s: got %d bytes, want the %d stored", name, len(got), len(want))
	}
}

func wantNotFound(t *testing.T, b replica.SnapshotBucket, name string) {
	t.Helper()
	r, err := b.Open(testContext(t), name)
	if err == nil {
		r.Close()
	}
	if iam.ErrorCode(err) != iam.ENotFound {
		t.Errorf("Open %s: got %v, want not_found", name, err)
	}
}
