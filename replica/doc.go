// Package replica is a region's read side. It owns:
//
//   - replica.go: the Replica, its index (iam.State) kept in step with the
//     Pebble read model, the three consistency modes, and waiting for a
//     token without polling;
//   - store.go: the Pebble read model (rows and position committed in one
//     batch);
//   - head.go: sharing log-head lookups between fully_consistent reads;
//   - snapshot.go: the snapshot format and writing a snapshot of a Store;
//   - load.go: loading a snapshot into an empty read model (and index);
//   - digest.go: digests of the read model, and Replica.DigestAt, which
//     holds ApplyEntries at a position to pin a Pebble snapshot there;
//   - publish.go: Publisher, storing snapshots in a SnapshotBucket on
//     request and periodically;
//   - join.go: Join, starting an empty replica from a bucket's snapshot.
//
// Pebble is the durable form: a replica killed at any instant reopens at its
// stored position with exactly the state of that prefix of the log. Checks
// are answered from an in-memory index (iam.State) loaded from Pebble at open
// and kept in step with it by the same events, because a check must cost
// microseconds, not the several Pebble reads a group walk needs.
package replica
