package replica_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/replica"
)

// writeSnapshot snapshots rep's store into a buffer.
func writeSnapshot(tb testing.TB, rep *replica.Replica, compression string) (replica.SnapshotHeader, []byte) {
	tb.Helper()
	snap, err := rep.Store().Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	defer snap.Close()
	var buf bytes.Buffer
	h, n, err := snap.Write(&buf, replica.SnapshotOptions{Compression: compression})
	if err != nil {
		tb.Fatal(err)
	}
	if n != int64(buf.Len()) {
		tb.Fatalf("Write: got %d bytes counted, want %d written", n, buf.Len())
	}
	return h, buf.Bytes()
}

func TestSnapshot_RoundTrip(t *testing.T) {
	w := sharedWorkload(t, 7, 3000)
	src := openReplica(t, replica.Config{})
	applyAll(t, src, w.entries, 97)
	wantDigest, wantSeq, err := src.Store().Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ compression, method string }{
		{replica.CompressionZstd, replica.LoadIngest},
		{replica.CompressionNone, replica.LoadIngest},
		{replica.CompressionZstd, replica.LoadBatch},
	} {
		t.Run(tc.compression+"/"+tc.method, func(t *testing.T) {
			h, data := writeSnapshot(t, src, tc.compression)
			if h.SHA256 != wantDigest || h.Seq != wantSeq || h.MsgID != src.AppliedMsgID() {
				t.Fatalf("header: got %s at %d (%q), want %s at %d (%q)", h.SHA256, h.Seq, h.MsgID, wantDigest, wantSeq, src.AppliedMsgID())
			}
			dir := filepath.Join(t.TempDir(), "r")
			lh, err := replica.LoadSnapshot(context.Background(), dir, bytes.NewReader(data), replica.LoadOptions{Method: tc.method})
			if err != nil {
				t.Fatal(err)
			}
			if lh.Digest != h.Digest {
				t.Fatalf("loaded header: got %+v, want %+v", lh.Digest, h.Digest)
			}
			dst := openReplica(t, replica.Config{Dir: dir})
			if dst.Applied() != wantSeq || dst.AppliedMsgID() != src.AppliedMsgID() {
				t.Fatalf("loaded replica at %d (%q), want %d (%q)", dst.Applied(), dst.AppliedMsgID(), wantSeq, src.AppliedMsgID())
			}
			requireSameStores(t, dst, src, "loaded from a snapshot")
			requireRowsEqualState(t, dst.Store(), w.stateAt(wantSeq), "loaded from a snapshot")
			requireSameChecks(t, dst, src, w.checkSample(3, 500), "loaded from a snapshot")
		})
	}
}

// Replica.LoadSnapshot builds the index while it loads: the replica
// answers as the one the snapshot was taken from, without reopening.
func TestReplica_LoadSnapshot(t *testing.T) {
	w := sharedWorkload(t, 7, 3000)
	src := openReplica(t, replica.Config{})
	applyAll(t, src, w.entries[:2000], 97)
	for _, method := range []string{replica.LoadIngest, replica.LoadBatch} {
		t.Run(method, func(t *testing.T) {
			_, data := writeSnapshot(t, src, "")
			dst := openReplica(t, replica.Config{})
			h, err := dst.LoadSnapshot(context.Background(), bytes.NewReader(data), replica.LoadOptions{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			if dst.Applied() != h.Seq || h.Seq != 2000 || dst.AppliedMsgID() != src.AppliedMsgID() {
				t.Fatalf("loaded at %d (%q), header %d, want 2000 (%q)", dst.Applied(), dst.AppliedMsgID(), h.Seq, src.AppliedMsgID())
			}
			requireSameStores(t, dst, src, "loaded")
			requireSameChecks(t, dst, src, w.checkSample(5, 500), "loaded")
			// It goes on like a replica that replayed.
			applyAll(t, dst, w.entries, 97)
			ref := openReplica(t, replica.Config{})
			applyAll(t, ref, w.entries, 97)
			requireSameStores(t, dst, ref, "loaded then tail")
			requireSameChecks(t, dst, ref, w.checkSample(6, 500), "loaded then tail")
			if _, err := dst.LoadSnapshot(context.Background(), bytes.NewReader(data), replica.LoadOptions{}); !errors.Is(err, replica.ErrNotEmpty) {
				t.Fatalf("load into a fed replica: got %v, want ErrNotEmpty", err)
			}
		})
	}
	t.Run("corrupt", func(t *testing.T) {
		_, data := writeSnapshot(t, src, replica.CompressionNone)
		data[len(data)-3] ^= 1
		dst := openReplica(t, replica.Config{})
		if _, err := dst.LoadSnapshot(context.Background(), bytes.NewReader(data), replica.LoadOptions{}); !errors.Is(err, replica.ErrSnapshotCorrupt) {
			t.Fatalf("got %v, want ErrSnapshotCorrupt", err)
		}
		if dst.Applied() != 0 {
			t.Fatalf("after a refused snapshot: applied %d, want 0", dst.Applied())
		}
		u := w.realms[0]
		_, err := dst.Read(context.Background(), replica.Consistency{}, func(st *iam.State) error {
			if st.Identity(u.id, u.users[0]) != nil {
				return errors.New("the index holds the refused snapshot's identities")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// A snapshot continues exactly like the replica it was taken from.
func TestSnapshot_ThenTail(t *testing.T) {
	w := sharedWorkload(t, 7, 3000)
	src := openReplica(t, replica.Config{})
	applyAll(t, src, w.entries[:1000], 64)
	_, data := writeSnapshot(t, src, "")
	dir := filepath.Join(t.TempDir(), "r")
	if _, err := replica.LoadSnapshot(context.Background(), dir, bytes.NewReader(data), replica.LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := openReplica(t, replica.Config{Dir: dir})
	applyAll(t, src, w.entries, 64)
	applyAll(t, dst, w.entries, 64)
	requireSameStores(t, dst, src, "snapshot then tail")
	requireSameChecks(t, dst, src, w.checkSample(4, 500), "snapshot then tail")
}

func TestSnapshot_LoadRefuses(t *testing.T) {
	src := openReplica(t, replica.Config{})
	applyAll(t, src, smallLog(200), 50)
	h, good := writeSnapshot(t, src, replica.CompressionNone)

	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x01
		return b
	}
	headerEnd := bytes.Index(good, []byte(`"}`)) + 2 // the JSON header ends the first "...}" run
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, replica.ErrSnapshotCorrupt},
		{"bad magic", flip(0), replica.ErrSnapshotCorrupt},
		{"truncated", good[:len(good)-100], replica.ErrSnapshotCorrupt},
		{"no end marker", good[:len(good)-1], replica.ErrSnapshotCorrupt},
		{"value bit flipped", flip(len(good) - 3), replica.ErrSnapshotCorrupt},
		{"row bit flipped", flip(headerEnd + 40), replica.ErrSnapshotCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{replica.LoadIngest, replica.LoadBatch} {
				dir := filepath.Join(t.TempDir(), "r")
				_, err := replica.LoadSnapshot(context.Background(), dir, bytes.NewReader(tc.data), replica.LoadOptions{Method: method})
				if !errors.Is(err, tc.want) {
					t.Fatalf("%s: got %v, want %v", method, err, tc.want)
				}
				if empty, err := replica.Empty(dir, replica.StoreOptions{}); err != nil || !empty {
					t.Fatalf("%s: read model after a refused snapshot: empty %t (%v), want empty", method, empty, err)
				}
			}
		})
	}
	t.Run("not empty", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "r")
		rep, err := replica.Open(replica.Config{Region: "test", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		applyAll(t, rep, smallLog(3), 3)
		rep.Close()
		_, err = replica.LoadSnapshot(context.Background(), dir, bytes.NewReader(good), replica.LoadOptions{})
		if !errors.Is(err, replica.ErrNotEmpty) {
			t.Fatalf("got %v, want ErrNotEmpty", err)
		}
	})
	if h.Rows == 0 {
		t.Fatal("snapshot without rows")
	}
}

// The header's identity counts are an unsigned hint that only sizes maps:
// a snapshot whose counts are forged (more than its rows, negative, or
// naming realms it lacks) loads the same state as the true counts.
func TestReplica_LoadSnapshotIdentityHint(t *testing.T) {
	w := sharedWorkload(t, 7, 3000)
	src := openReplica(t, replica.Config{})
	applyAll(t, src, w.entries[:2000], 97)
	h, data := writeSnapshot(t, src, replica.CompressionNone)
	if len(h.Identities) == 0 {
		t.Fatal("header without identity counts")
	}
	// The stream: magic, header length, header JSON, body.
	_, body, err := replica.ReadSnapshotHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	headStart := bytes.IndexByte(data, '{')
	magic := data[:headStart-len(binary.AppendUvarint(nil, uint64(len(data)-len(rest)-headStart)))]
	realm := w.realms[0].id
	for name, hint := range map[string]map[string]int{
		"true":          h.Identities,
		"past the rows": {realm: int(h.Rows) + 1},
		"huge":          {realm: 1 << 62, "elsewhere": 1 << 62},
		"negative":      {realm: -1},
		"other realms":  {"nowhere": 5},
	} {
		t.Run(name, func(t *testing.T) {
			forged := h
			forged.Identities = hint
			head, err := json.Marshal(forged)
			if err != nil {
				t.Fatal(err)
			}
			stream := append(binary.AppendUvarint(bytes.Clone(magic), uint64(len(head))), head...)
			stream = append(stream, rest...)
			dst := openReplica(t, replica.Config{})
			if _, err := dst.LoadSnapshot(context.Background(), bytes.NewReader(stream), replica.LoadOptions{}); err != nil {
				t.Fatal(err)
			}
			requireSameStores(t, dst, src, "loaded with identity counts "+name)
			requireSameChecks(t, dst, src, w.checkSample(5, 500), "loaded with identity counts "+name)
		})
	}
}

// Replica.DigestAt answers at exactly the token asked for, even when the
// projector's batch runs past it.
func TestReplica_DigestAt(t *testing.T) {
	log := smallLog(300)
	// The digest of each prefix, from replicas fed exactly that far.
	digestAfter := func(n int) string {
		r := openReplica(t, replica.Config{})
		applyAll(t, r, log[:n], 1000)
		d, _, err := r.Store().Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ctx := context.Background()

	t.Run("split batch", func(t *testing.T) {
		rep := openReplica(t, replica.Config{})
		if err := rep.ApplyEntries(log[:10]); err != nil {
			t.Fatal(err)
		}
		now, err := rep.DigestAt(ctx, 0, 0)
		if err != nil || now.Seq != 10 || now.SHA256 != digestAfter(10) {
			t.Fatalf("digest now: got %+v (%v), want at 10 = %s", now, err, digestAfter(10))
		}
		// Ask for 150 and 151, then feed one batch 11..300.
		type result struct {
			d   replica.Digest
			err error
		}
		res := map[uint64]chan result{150: make(chan result, 1), 151: make(chan result, 1)}
		for seq, ch := range res {
			go func() {
				d, err := rep.DigestAt(ctx, seq, 10*time.Second)
				ch <- result{d, err}
			}()
		}
		eventlogtest.Eventually(t, 10*time.Second, "both digest requests to wait", func() bool { return replica.DigestsWaiting(rep) == 2 })
		if err := rep.ApplyEntries(log[10:]); err != nil {
			t.Fatal(err)
		}
		for seq, ch := range res {
			r := <-ch
			if r.err != nil || r.d.Seq != seq || r.d.SHA256 != digestAfter(int(seq)) {
				t.Fatalf("digest at %d: got %+v (%v), want %s", seq, r.d, r.err, digestAfter(int(seq)))
			}
		}
		if rep.Applied() != 300 || rep.AppliedEntries() != 300 {
			t.Fatalf("after the split batch: applied %d, %d entries applied, want 300 and 300", rep.Applied(), rep.AppliedEntries())
		}
		// Passed, but remembered; passed and never taken: conflict.
		if d, err := rep.DigestAt(ctx, 150, 0); err != nil || d.SHA256 != digestAfter(150) {
			t.Fatalf("digest at 150 again: got %+v (%v)", d, err)
		}
		if _, err := rep.DigestAt(ctx, 100, 0); iam.ErrorCode(err) != iam.EConflict {
			t.Fatalf("digest at a passed token: got %v, want conflict", err)
		}
		// Never reached in time: replica_behind.
		if _, err := rep.DigestAt(ctx, 301, 50*time.Millisecond); iam.ErrorCode(err) != iam.EReplicaBehind {
			t.Fatalf("digest at a token not reached: got %v, want replica_behind", err)
		}
	})

	t.Run("at the applied position", func(t *testing.T) {
		rep := openReplica(t, replica.Config{})
		applyAll(t, rep, log[:20], 20)
		d, err := rep.DigestAt(ctx, 20, time.Second)
		if err != nil || d.SHA256 != digestAfter(20) {
			t.Fatalf("digest at 20: got %+v (%v), want %s", d, err, digestAfter(20))
		}
		if _, err := rep.DigestAt(ctx, 10, time.Second); iam.ErrorCode(err) != iam.EConflict {
			t.Fatalf("digest at a passed token: got %v, want conflict", err)
		}
	})
}

// TestReplica_DigestAtStopsWhenItsCallerGoes: a digest is a pass over
// every row; one whose caller has gone gives up with its context's error
// rather than scan the rest (it looks every few thousand rows).
func TestReplica_DigestAtStopsWhenItsCallerGoes(t *testing.T) {
	rep := openReplica(t, replica.Config{})
	applyAll(t, rep, newBenchData(400).entries, 512)
	if d, err := rep.DigestAt(context.Background(), 0, 0); err != nil || d.Rows < 5000 {
		t.Fatalf("digest: %+v (%v), want one of more than 5,000 rows", d, err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := rep.DigestAt(gone, 0, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("digest for a caller gone: %+v (%v), want context.Canceled", d, err)
	}
}
