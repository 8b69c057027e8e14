package keyvault

import (
	"context"
	"sync"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
)

// Lazy is a Vault opened on first use, so a process that cannot reach the
// log's JetStream yet (a region cut off from the hub) still starts. A
// failed open is retried on the next use. It is safe for concurrent use.
type Lazy struct {
	// Log is the log whose JetStream holds the bucket. Required.
	Log *eventlog.Log
	// Bucket is the bucket's name. Default DefaultBucket.
	Bucket string

	mu sync.Mutex
	v  *Vault
}

func (l *Lazy) open(ctx context.Context) (*Vault, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.v != nil {
		return l.v, nil
	}
	v, err := Open(ctx, l.Log, l.Bucket)
	if err != nil {
		return nil, iam.Errorf(iam.EUnavailable, "key vault: %v", err)
	}
	l.v = v
	return v, nil
}

// DataKey is Vault.DataKey; the open fails with unavailable.
func (l *Lazy) DataKey(ctx context.Context, realm, user string, create bool) ([]byte, error) {
	v, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	return v.DataKey(ctx, realm, user, create)
}

// Pepper is Vault.Pepper; the open fails with unavailable.
func (l *Lazy) Pepper(ctx context.Context, realm string) ([]byte, error) {
	v, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	return v.Pepper(ctx, realm)
}

// ExistingPepper is Vault.ExistingPepper; the open fails with unavailable.
func (l *Lazy) ExistingPepper(ctx context.Context, realm string) ([]byte, error) {
	v, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	return v.ExistingPepper(ctx, realm)
}

// Destroy is Vault.Destroy; the open fails with unavailable.
func (l *Lazy) Destroy(ctx context.Context, realm, user string) error {
	v, err := l.open(ctx)
	if err != nil {
		return err
	}
	return v.Destroy(ctx, realm, user)
}
