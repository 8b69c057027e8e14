package snapshots_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/natsnode"
	"github.com/iam-project/iam/eventlog/snapshots"
)

// TestSnapshots_PutLatestOpen stores snapshots on a hub, keeps the newest
// two, and reads the newest from a region across its leaf link (the hub's
// domain), as a joining region does.
func TestSnapshots_PutLatestOpen(t *testing.T) {
	h := eventlogtest.StartHub(t, 1, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hubLog, err := eventlog.Open(ctx, eventlogtest.MustConnectURL(t, h.ClientURLs()), eventlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rs := eventlogtest.StartRegion(t, "eu-west", h.LeafURLs())
	regionLog, err := eventlog.Attach(ctx, eventlogtest.MustConnectURL(t, rs.ClientURL()), eventlog.Config{Domain: natsnode.HubDomain})
	if err != nil {
		t.Fatal(err)
	}

	// Before the hub makes the bucket, a region finds none and makes none.
	if _, err := snapshots.Open(ctx, regionLog, false); iam.ErrorCode(err) != iam.ENotFound {
		t.Fatalf("region opening a missing bucket: got %v, want not_found", err)
	}
	store, err := snapshots.Open(ctx, hubLog, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Latest(ctx); iam.ErrorCode(err) != iam.ENotFound {
		t.Fatalf("latest of an empty bucket: got %v, want not_found", err)
	}

	blobs := map[uint64][]byte{}
	for _, seq := range []uint64{100, 300, 200} {
		blob := make([]byte, 700_000+int(seq)) // several chunks, the last short
		_, _ = rand.Read(blob)
		blobs[seq] = blob
		// A reader that returns little at a time, like the pipe from a
		// snapshot writer.
		info, err := store.Put(ctx, iam.SnapshotInfo{Seq: seq, MsgID: "m", Rows: seq * 2, Digest: "d"}, io.LimitReader(bytes.NewReader(blob), int64(len(blob))))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != uint64(len(blob)) || info.Name != snapshots.Name(seq) {
			t.Fatalf("put %d: got %+v, want size %d", seq, info, len(blob))
		}
	}
	if _, err := store.Put(ctx, iam.SnapshotInfo{}, bytes.NewReader(nil)); iam.ErrorCode(err) != iam.EInvalid {
		t.Fatalf("put at position 0: got %v, want invalid_argument", err)
	}

	remote, err := snapshots.Open(ctx, regionLog, false)
	if err != nil {
		t.Fatal(err)
	}
	list, err := remote.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Put prunes to the newest two after each store: 100 went when 300
	// and 200 were both in.
	if len(list) != 2 || list[0].Seq != 300 || list[1].Seq != 200 {
		t.Fatalf("list from the region: got %+v, want 300 then 200", list)
	}
	latest, err := remote.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Seq != 300 || latest.Rows != 600 || latest.MsgID != "m" || latest.Digest != "d" || latest.Created.IsZero() {
		t.Fatalf("latest: got %+v", latest)
	}
	r, err := remote.Open(ctx, latest.Name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, blobs[300]) {
		t.Fatalf("download across the leaf: %d bytes (%v), want the %d stored", len(got), err, len(blobs[300]))
	}
	if _, err := remote.Open(ctx, snapshots.Name(100)); iam.ErrorCode(err) != iam.ENotFound {
		t.Fatalf("open a pruned snapshot: got %v, want not_found", err)
	}
}
