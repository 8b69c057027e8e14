package iam

import (
	"encoding/json"
	"fmt"
	"time"
)

// Rows of the identity provider's state. Sign-in counters, locks, token
// revocation and the reset token hash ride on the identity row; codes and
// disabled API keys are edges; invitations are entities of their own.
const (
	rowInvitation = "7"

	edgeAuthCode       = "ac"
	edgeAPIKeyDisabled = "kd"
)

func invitationKey(r, id string) string { return rowInvitation + r + sep + id }

// identityAuthRow is the part of an identity row this file owns.
type identityAuthRow struct {
	EmailIndex      string    `json:"emailIndex,omitempty"`
	Sealed          []byte    `json:"sealed,omitempty"`
	FailedSignIns   int       `json:"failedSignIns,omitempty"`
	LockedUntil     time.Time `json:"lockedUntil,omitzero"`
	TokensNotBefore time.Time `json:"tokensNotBefore,omitzero"`
	ResetTokenHash  string    `json:"resetTokenHash,omitempty"`
	ResetExpiresAt  time.Time `json:"resetExpiresAt,omitzero"`
	SelfDeactivated bool      `json:"selfDeactivated,omitempty"`
}

func authRowOf(id *Identity) identityAuthRow {
	return identityAuthRow{id.EmailIndex, id.Sealed, id.FailedSignIns, id.LockedUntil, id.TokensNotBefore, id.ResetTokenHash, id.ResetExpiresAt, id.SelfDeactivated}
}

// loadAuthRow restores what authRowOf saved (the email index and sealed data
// come back through IdentityCreated).
func (r *Realm) loadAuthRow(id *Identity, row identityAuthRow) {
	id.FailedSignIns, id.LockedUntil, id.TokensNotBefore = row.FailedSignIns, row.LockedUntil, row.TokensNotBefore
	id.ResetTokenHash, id.ResetExpiresAt = row.ResetTokenHash, row.ResetExpiresAt
	id.SelfDeactivated = row.SelfDeactivated
	if row.ResetTokenHash != "" {
		r.resetTokens[row.ResetTokenHash] = id.ID
	}
}

// authEdgeRow is edgeRow for this file's edge kinds.
func (r *Realm) authEdgeRow(kind, from, to string) ([]byte, bool) {
	id := r.Identities[from]
	if id == nil {
		return nil, false
	}
	switch kind {
	case edgeAuthCode:
		if c, ok := id.AuthCodes[to]; ok {
			return mustJSON(c), true
		}
	case edgeAPIKeyDisabled:
		if id.DisabledAPIKeys.has(to) {
			return []byte{}, true
		}
	}
	return nil, false
}

// authRowKeys lists this file's rows of realm r.
func (r *Realm) authRowKeys(keys []string) []string {
	for id, ident := range r.Identities {
		for h := range ident.AuthCodes {
			keys = append(keys, edgeKey(r.ID, edgeAuthCode, id, h))
		}
		for k := range ident.DisabledAPIKeys {
			keys = append(keys, edgeKey(r.ID, edgeAPIKeyDisabled, id, k))
		}
	}
	for id := range r.Invitations {
		keys = append(keys, invitationKey(r.ID, id))
	}
	return keys
}

func (r *Realm) invitationRow(id string) ([]byte, bool) {
	if inv := r.Invitations[id]; inv != nil {
		return mustJSON(inv), true
	}
	return nil, false
}

func (s *State) loadInvitation(in InRealm, id string, value []byte) error {
	var inv Invitation
	if err := json.Unmarshal(value, &inv); err != nil {
		return err
	}
	accepted := inv.Accepted
	inv.Accepted = false
	s.applyAuth(InvitationCreated{InRealm: in, ID: id, Invitation: inv}, func(string) {})
	if accepted {
		s.applyAuth(InvitationAccepted{InRealm: in, ID: id}, func(string) {})
	}
	return nil
}

// loadAuthEdge is loadEdge for this file's edge kinds.
func (s *State) loadAuthEdge(in InRealm, kind, from, to string, value []byte) error {
	r := s.realms[in.Realm]
	u := r.Identities[from]
	if u == nil {
		return fmt.Errorf("%s edge of a missing identity", kind)
	}
	switch kind {
	case edgeAuthCode:
		var c AuthCode
		if err := json.Unmarshal(value, &c); err != nil {
			return err
		}
		u.AuthCodes[to] = c
		r.authCodes[to] = from
	case edgeAPIKeyDisabled:
		u.DisabledAPIKeys.add(to)
	default:
		return fmt.Errorf("unknown edge kind %q", kind)
	}
	return nil
}
