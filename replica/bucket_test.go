package replica_test

import (
	"testing"

	"github.com/iam-project/iam/replica"
	"github.com/iam-project/iam/replica/replicatest"
)

// The in-memory bucket the Publisher and Join tests use meets the same
// contract as the real one (eventlog/snapshots runs the suite on that).
func TestMemBucket_Conformance(t *testing.T) {
	replicatest.RunSnapshotBucketTests(t, func(t *testing.T) replica.SnapshotBucket { return &memBucket{} })
}
