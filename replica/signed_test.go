package replica_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/logsign"
	"github.com/iam-project/iam/replica"
)

func signingKeys(t testing.TB) (*logsign.Signer, *logsign.Verifier) {
	t.Helper()
	var r logsign.Ring
	if err := r.Rotate(time.Now()); err != nil {
		t.Fatal(err)
	}
	v, err := logsign.NewVerifier(r.Public())
	if err != nil {
		t.Fatal(err)
	}
	return r.Signer(), v
}

// signedSnapshot writes rep's snapshot signed by signer (unsigned when nil).
func signedSnapshot(t *testing.T, rep *replica.Replica, signer replica.SnapshotSigner) []byte {
	t.Helper()
	snap, err := rep.Store().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var buf bytes.Buffer
	if _, _, err := snap.Write(&buf, replica.SnapshotOptions{Signer: signer}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A snapshot loads only with a signature by a trusted key: LoadSnapshot
// refuses an unsigned or forged one as corrupt, before committing anything.
func TestSnapshot_LoadRefusesUnsigned(t *testing.T) {
	hub, trusted := signingKeys(t)
	other, _ := signingKeys(t)
	src := openReplica(t, replica.Config{})
	applyAll(t, src, smallLog(100), 50)

	tests := []struct {
		name   string
		signer replica.SnapshotSigner
		want   error // nil: loads
	}{
		{"Signed", hub, nil},
		{"Unsigned", nil, logsign.ErrUnsigned},
		{"OtherKey", other, logsign.ErrForged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := signedSnapshot(t, src, tc.signer)
			dir := filepath.Join(t.TempDir(), "rm")
			h, err := replica.LoadSnapshot(context.Background(), dir, bytes.NewReader(data), replica.LoadOptions{Verifier: trusted})
			if tc.want == nil {
				if err != nil || h.Seq != 100 {
					t.Fatalf("LoadSnapshot: got %d (%v), want 100", h.Seq, err)
				}
				return
			}
			if !errors.Is(err, replica.ErrSnapshotCorrupt) || !errors.Is(err, tc.want) {
				t.Fatalf("LoadSnapshot: got %v, want an error wrapping %v and %v", err, replica.ErrSnapshotCorrupt, tc.want)
			}
			rep := openReplica(t, replica.Config{Dir: dir})
			if got := rep.Applied(); got != 0 {
				t.Fatalf("after a refused load: applied %d, want 0 (nothing committed)", got)
			}
		})
	}
}

// Join skips a snapshot whose signature does not hold, as a corrupt one,
// for the older signed one.
func TestJoin_SkipsForgedSnapshot(t *testing.T) {
	ctx := context.Background()
	hub, trusted := signingKeys(t)
	other, _ := signingKeys(t)
	log := smallLog(100)
	src := openReplica(t, replica.Config{})
	bucket := &memBucket{}
	pub := &replica.Publisher{Replica: src, Bucket: bucket.open, Signer: hub}
	applyAll(t, src, log[:60], 60)
	if _, err := pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	applyAll(t, src, log, 40)
	// Newer, well formed, with a digest anyone can recompute, but signed
	// by a key the region does not trust.
	if _, err := bucket.Put(ctx, iam.SnapshotInfo{Seq: 100}, bytes.NewReader(signedSnapshot(t, src, other))); err != nil {
		t.Fatal(err)
	}
	dst := openReplica(t, replica.Config{SnapshotVerifier: trusted})
	h, ok, err := replica.Join(ctx, bucket.open, dst, quietLogger())
	if err != nil || !ok || h.Seq != 60 || dst.Applied() != 60 {
		t.Fatalf("join: got %d, %t (%v), applied %d, want the signed snapshot at 60", h.Seq, ok, err, dst.Applied())
	}
}
