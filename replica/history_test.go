package replica_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"sync"
	"testing"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// rowsDigest is a digest of every row of st.
func rowsDigest(tb testing.TB, st *iam.State) string {
	h := sha256.New()
	if err := replica.Rows(st, func(k string, v []byte) error {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write(v)
		h.Write([]byte{0})
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestReplica_StateAt: the state at every position, built from thinned
// checkpoints and a replay while the projector goes on applying, holds the
// rows a fresh replay to that position holds; the checkpoints stay bounded.
func TestReplica_StateAt(t *testing.T) {
	d := newBenchData(60) // ~3k entries
	want := make([]string, len(d.entries)+1)
	fresh := iam.NewState()
	want[0] = rowsDigest(t, fresh)
	for i, e := range d.entries {
		if err := fresh.ApplyEntry(e, nil); err != nil {
			t.Fatal(err)
		}
		if i%97 == 0 || i == len(d.entries)-1 {
			want[e.Seq] = rowsDigest(t, fresh)
		}
	}
	history := func(_ context.Context, from, to uint64, fn func(iam.LogEntry) error) error {
		for _, e := range d.entries[from-1 : to] {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	const maxCheckpoints = 6
	rep, err := replica.Open(replica.Config{Region: "h", Dir: filepath.Join(t.TempDir(), "r"), History: history,
		CheckpointEvery: 50, MaxCheckpoints: maxCheckpoints, HistoryCache: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()

	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < len(d.entries); i += 64 {
			if err := rep.ApplyEntries(d.entries[i:min(i+64, len(d.entries))]); err != nil {
				t.Error(err)
				return
			}
		}
	})
	// While applying: whatever is applied can be asked for.
	for seq := uint64(1); seq < uint64(len(d.entries)); seq += 97 {
		if err := rep.WaitFor(ctx, seq, 10e9); err != nil {
			t.Fatal(err)
		}
		st, err := rep.StateAt(ctx, seq)
		if err != nil {
			t.Fatalf("state at %d: %v", seq, err)
		}
		if got := rowsDigest(t, st); st.Seq() != seq || got != want[seq] {
			t.Fatalf("state at %d (seq %d): rows digest %s, want %s", seq, st.Seq(), got, want[seq])
		}
	}
	wg.Wait()
	cps := rep.Checkpoints()
	if len(cps) > maxCheckpoints || len(cps) == 0 {
		t.Errorf("checkpoints %v: got %d, want 1 to %d", cps, len(cps), maxCheckpoints)
	}
	for seq, w := range want {
		if w == "" || seq == 0 {
			continue
		}
		st, err := rep.StateAt(ctx, uint64(seq))
		if err != nil {
			t.Fatalf("state at %d: %v", seq, err)
		}
		if got := rowsDigest(t, st); got != w {
			t.Fatalf("state at %d after applying all: rows digest %s, want %s", seq, got, w)
		}
	}
	if _, err := rep.StateAt(ctx, uint64(len(d.entries))+1); iam.ErrorCode(err) != iam.EInvalid {
		t.Errorf("state past the applied position: got %v, want invalid_argument", err)
	}
	t.Logf("%d entries, checkpoints %v", len(d.entries), cps)
}
