// Package keyvault keeps the keys that protect personal data outside the
// event log, in a JetStream KV bucket: per-user data keys (destroyed on
// deletion: crypto-shredding) and per-realm blind-index peppers.
package keyvault

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the JetStream KV bucket holding per-user data keys and
// per-realm peppers.
const DefaultBucket = "IAM_KEYS"

// Vault keeps the keys that protect personal data, outside the event log:
// one random 256-bit data key per user (destroyed when the user is deleted:
// crypto-shredding) and one pepper per realm (keying the blind index of
// emails). The bucket keeps one revision per key, so a purge leaves no older
// value behind. It is safe for concurrent use.
type Vault struct {
	kv jetstream.KeyValue
}

// Open creates or opens the bucket (file storage, history 1, as many
// replicas as the log) on the log's JetStream.
func Open(ctx context.Context, l *eventlog.Log, bucket string) (*Vault, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	kv, err := l.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "iam data keys and peppers (never in the event log)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    l.Replicas(),
	})
	if err != nil {
		return nil, fmt.Errorf("open key vault %s: %w", bucket, err)
	}
	return &Vault{kv: kv}, nil
}

// ErrKeyDestroyed is returned by DataKey when the user's key does not exist
// (never made, or destroyed by Destroy).
var ErrKeyDestroyed = errors.New("keyvault: data key destroyed or never made")

func dataKeyName(realm, user string) string { return "dk." + realm + "." + user }
func pepperName(realm string) string        { return "pepper." + realm }

// DataKey returns the data key of user in realm; with create, it makes one
// if there is none (two concurrent creators end with the same key).
func (v *Vault) DataKey(ctx context.Context, realm, user string, create bool) ([]byte, error) {
	return v.get(ctx, dataKeyName(realm, user), create)
}

// Pepper returns the realm's blind-index pepper, making it on first use.
func (v *Vault) Pepper(ctx context.Context, realm string) ([]byte, error) {
	return v.get(ctx, pepperName(realm), true)
}

// ExistingPepper returns the realm's pepper without making one. Errors:
// ErrKeyDestroyed when the realm has none.
func (v *Vault) ExistingPepper(ctx context.Context, realm string) ([]byte, error) {
	return v.get(ctx, pepperName(realm), false)
}

// Destroy purges the user's data key: every copy of the user's sealed data
// becomes unreadable. Destroying a missing key is not an error.
func (v *Vault) Destroy(ctx context.Context, realm, user string) error {
	if err := v.kv.Purge(ctx, dataKeyName(realm, user)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return unavailable("destroy data key", err)
	}
	return nil
}

func (v *Vault) get(ctx context.Context, name string, create bool) ([]byte, error) {
	for range 3 {
		e, err := v.kv.Get(ctx, name)
		if err == nil && len(e.Value()) == 32 {
			return e.Value(), nil
		}
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, unavailable("key vault get", err)
		}
		if !create {
			return nil, ErrKeyDestroyed
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		var updErr error
		if err == nil { // a purged key (deleted marker): a new one replaces it
			_, updErr = v.kv.Update(ctx, name, key, e.Revision())
		} else {
			_, updErr = v.kv.Create(ctx, name, key)
		}
		if updErr == nil {
			return key, nil
		}
		if !errors.Is(updErr, jetstream.ErrKeyExists) {
			var apiErr *jetstream.APIError
			if !errors.As(updErr, &apiErr) {
				return nil, unavailable("key vault create", updErr)
			}
		}
		// Someone else made it first: read theirs.
	}
	return nil, iam.Errorf(iam.EUnavailable, "key vault: %s keeps changing", name)
}

// unavailable marks a failure to reach the bucket (a hub node down, its
// stream electing a leader, a timeout) as unavailable (503), which a
// client retries, with the cause kept for the logs and not shown to it;
// any other error (a caller that gave up, a refused permission) stays
// what it is.
func unavailable(what string, err error) error {
	if _, ok := eventlog.Transient(err); ok {
		err = fmt.Errorf("%w: %w", iam.Errorf(iam.EUnavailable, "the key vault is not reachable; try again"), err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
