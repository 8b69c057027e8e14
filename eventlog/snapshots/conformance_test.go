package snapshots_test

import (
	"context"
	"testing"

	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/eventlogtest"
	"github.com/iam-project/iam/eventlog/snapshots"
	"github.com/iam-project/iam/replica"
	"github.com/iam-project/iam/replica/replicatest"
)

var _ replica.SnapshotBucket = (*snapshots.Store)(nil)

// The Object Store bucket meets the replica.SnapshotBucket contract, each
// case on its own JetStream server.
func TestStore_Conformance(t *testing.T) {
	replicatest.RunSnapshotBucketTests(t, func(t *testing.T) replica.SnapshotBucket {
		l := eventlogtest.MustOpenLog(t, eventlog.Config{})
		s, err := snapshots.Open(context.Background(), l, true)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
