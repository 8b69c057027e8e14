package api

import (
	"context"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/keyvault"
	"github.com/iam-project/iam/replica"
	"github.com/iam-project/iam/replica/lag"
)

// What the server consumes besides the mode's Writer (mode.go): the
// replicas that answer reads, the log the change feed follows, the vault
// of personal-data keys.

// Replica is one region's read model (replica.Replica).
type Replica interface {
	// Region, Applied and LastApplied serve the lag figures.
	lag.Replica
	// Read runs fn on the replica's state once it is as fresh as c asks,
	// and returns the position read at. Errors: replica_behind when it is
	// not fresh enough within c.Wait; unavailable when the log's head
	// cannot be learnt (fully_consistent); fn's own error.
	Read(ctx context.Context, c replica.Consistency, fn func(*iam.State) error) (uint64, error)
	// DigestAt returns the digest of the read model at exactly seq (0:
	// where it stands), waiting up to wait for it. Errors: replica_behind;
	// conflict when the replica is already past seq.
	DigestAt(ctx context.Context, seq uint64, wait time.Duration) (replica.Digest, error)
	// CheckpointState returns a state of the caller's own at the latest
	// checkpoint at or before seq (empty when there is none), for a
	// replay of the log towards seq.
	CheckpointState(ctx context.Context, seq uint64) (*iam.State, error)
}

// Snapshots publishes and lists read-model snapshots (replica.Publisher).
type Snapshots interface {
	// PublishCurrent stores a snapshot once the replica has applied the
	// log's head, waiting up to wait; replica_behind when it does not.
	PublishCurrent(ctx context.Context, wait time.Duration) (iam.SnapshotInfo, error)
	// List returns the stored snapshots, newest first.
	List(ctx context.Context) ([]iam.SnapshotInfo, error)
	// Region names the region whose read model is published.
	Region() string
}

// Log is the event log as the server reads it (eventlog.Log): the change
// feed follows it, the lag monitor measures against it.
type Log interface {
	// Head and Get: see lag.Log.
	lag.Log
	// Follow returns a follower of the entries from sequence from on;
	// unavailable when the log cannot be reached.
	Follow(ctx context.Context, from uint64) (*eventlog.Follower, error)
}

// Vault keeps the keys that protect personal data (keyvault.Vault).
type Vault interface {
	// DataKey returns the user's data key, making it when create is set.
	// Errors: keyvault.ErrKeyDestroyed when there is none; unavailable.
	DataKey(ctx context.Context, realm, user string, create bool) ([]byte, error)
	// Pepper returns the realm's blind-index pepper, making it on first use.
	Pepper(ctx context.Context, realm string) ([]byte, error)
	// Destroy purges the user's data key (crypto-shredding).
	Destroy(ctx context.Context, realm, user string) error
}

var (
	_ Replica   = (*replica.Replica)(nil)
	_ Snapshots = (*replica.Publisher)(nil)
	_ Log       = (*eventlog.Log)(nil)
	_ Vault     = (*keyvault.Vault)(nil)
	_ Vault     = (*keyvault.Lazy)(nil)
	_ Vault     = (*keyvault.Remote)(nil)
)
