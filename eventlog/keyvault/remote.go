package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/bus"
)

// A region decrypts personal data with keys it asks a hub process for, one
// at a time, instead of reading the vault's bucket: its leaf credential then
// grants no listing, no write and no purge of keys (a thief of it cannot
// shred every user, nor mint peppers), and what it can read is bounded by
// the ids it asks about. Keys are made and destroyed only on the hub, where
// the writes that need that happen.

// Source is what Serve reads keys from: a Vault or a Lazy.
type Source interface {
	DataKey(ctx context.Context, realm, user string, create bool) ([]byte, error)
	ExistingPepper(ctx context.Context, realm string) ([]byte, error)
}

var (
	_ Source = (*Vault)(nil)
	_ Source = (*Lazy)(nil)
)

type keyRequest struct {
	Op    string `json:"op"` // "dataKey" or "pepper"
	Realm string `json:"realm"`
	User  string `json:"user,omitempty"`
}

type keyReply struct {
	Key []byte `json:"key,omitempty"`
	// Missing is set when there is no such key (never made or destroyed).
	Missing bool   `json:"missing,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Serve answers key requests from regions on bus.KeysSubject with keys read
// from src; it never makes one. stop ends serving.
func Serve(b *bus.Bus, src Source) (stop func(), err error) {
	return b.Serve(bus.KeysSubject, bus.RPCQueue, func(ctx context.Context, data []byte) []byte {
		var req keyRequest
		var key []byte
		err := json.Unmarshal(data, &req)
		switch {
		case err != nil:
		case req.Op == "dataKey" && req.Realm != "" && req.User != "":
			key, err = src.DataKey(ctx, req.Realm, req.User, false)
		case req.Op == "pepper" && req.Realm != "":
			key, err = src.ExistingPepper(ctx, req.Realm)
		default:
			err = fmt.Errorf("bad key request %q", req.Op)
		}
		var rep keyReply
		switch {
		case errors.Is(err, ErrKeyDestroyed):
			rep.Missing = true
		case err != nil:
			rep.Error = err.Error()
		default:
			rep.Key = key
		}
		out, _ := json.Marshal(rep)
		return out
	})
}

// Remote is the vault of a region: it asks hub processes (Serve) for keys
// over the bus. It only reads: making or destroying a key happens on the
// hub, with the write that needs it. It is safe for concurrent use.
type Remote struct {
	// Bus reaches the hub. Required.
	Bus *bus.Bus
}

// DataKey returns the user's data key from the hub. Errors: ErrKeyDestroyed
// when there is none; unavailable when create is set or the hub cannot be
// asked.
func (r *Remote) DataKey(ctx context.Context, realm, user string, create bool) ([]byte, error) {
	if create {
		return nil, iam.Errorf(iam.EUnavailable, "data keys are made on the hub")
	}
	return r.ask(ctx, keyRequest{Op: "dataKey", Realm: realm, User: user})
}

// Pepper returns the realm's pepper from the hub. Errors: ErrKeyDestroyed
// when the realm has none yet (no e-mail was ever indexed there);
// unavailable when the hub cannot be asked.
func (r *Remote) Pepper(ctx context.Context, realm string) ([]byte, error) {
	return r.ask(ctx, keyRequest{Op: "pepper", Realm: realm})
}

// Destroy always fails: keys are destroyed on the hub, with the deletion.
func (r *Remote) Destroy(context.Context, string, string) error {
	return iam.Errorf(iam.EUnavailable, "data keys are destroyed on the hub")
}

func (r *Remote) ask(ctx context.Context, req keyRequest) ([]byte, error) {
	data, _ := json.Marshal(req)
	out, err := r.Bus.Request(ctx, bus.KeysSubject, data)
	if err != nil {
		return nil, fmt.Errorf("key vault: %w", err)
	}
	var rep keyReply
	if err := json.Unmarshal(out, &rep); err != nil {
		return nil, iam.Errorf(iam.EUnavailable, "key vault: bad reply: %v", err)
	}
	switch {
	case rep.Missing:
		return nil, ErrKeyDestroyed
	case rep.Error != "":
		return nil, iam.Errorf(iam.EUnavailable, "key vault on the hub: %s", rep.Error)
	case len(rep.Key) != 32:
		return nil, iam.Errorf(iam.EUnavailable, "key vault: reply holds a %d-byte key", len(rep.Key))
	}
	return rep.Key, nil
}
