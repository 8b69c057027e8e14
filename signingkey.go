package iam

import "time"

// Token signing keys live outside the log (the hub's sealed key file); the
// log records only their revocation, so that every replica refuses a
// revoked key's tokens once the revocation reaches it, whatever copy of the
// hub's public keys it caches.

// ActionManageSigningKeys is the permission to rotate and revoke the token
// signing keys (on the realm's HRN; OrgAdmin has it). Revoking also needs
// the system realm: the keys sign every realm's tokens.
const ActionManageSigningKeys = "manageSigningKeys"

// RevokeSigningKey refuses, from now on, every token signed by the key KID,
// however long it has to live. Only the system realm may: the keys sign
// every realm's tokens.
type RevokeSigningKey struct {
	KID string
	At  time.Time
}

func (c RevokeSigningKey) permission(r *Realm) (string, string) {
	return ActionManageSigningKeys, RealmHRN(r.ID)
}
func (c RevokeSigningKey) validate() error {
	if c.KID == "" {
		return FieldErrorf("kid", "required")
	}
	if c.At.IsZero() {
		return Errorf(EInternal, "revoke needs a time")
	}
	return nil
}
func (c RevokeSigningKey) decide(s *State, r *Realm) ([]Event, error) {
	if !r.System {
		return nil, Errorf(EPermissionDenied, "signing keys sign every realm's tokens: only an operator of the system realm (the bootstrap realm) may revoke one")
	}
	if _, ok := s.revokedKeys[c.KID]; ok {
		return nil, nil // revoked already; the first revocation's time stands
	}
	return []Event{SigningKeyRevoked{InRealm{r.ID}, c.KID, c.At}}, nil
}

// SigningKeyRevoked refuses every token signed by the key KID (the token's
// kid header). It is written in the system realm.
type SigningKeyRevoked struct {
	InRealm
	KID string    `json:"kid"`
	At  time.Time `json:"at"`
}

// EventType implements Event.
func (SigningKeyRevoked) EventType() string { return "SigningKeyRevoked" }

func (e SigningKeyRevoked) apply(s *State, touch Touch) {
	if _, ok := s.revokedKeys[e.KID]; ok {
		return
	}
	s.ownRevokedKeys()
	s.revokedKeys[e.KID] = RevokedKey{Realm: e.Realm, At: e.At}
	touch(Change{Kind: ChangeRevokedKey, Realm: e.Realm, From: e.KID})
}

// RevokedKey is the record of a revoked signing key: the realm that revoked
// it (the system realm) and when.
type RevokedKey struct {
	Realm string
	At    time.Time
}

// RevokedKey returns the revocation of the signing key kid, and false when
// it is not revoked.
func (s *State) RevokedKey(kid string) (RevokedKey, bool) {
	k, ok := s.revokedKeys[kid]
	return k, ok
}

// RevokedKeys lists the revoked signing keys' kids in order.
func (s *State) RevokedKeys() []string { return sortedKeys(s.revokedKeys) }
