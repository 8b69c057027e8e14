package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/replica"
)

// ActionManageSigningKeys is the permission to rotate and revoke the token
// signing keys (on the realm's HRN; OrgAdmin has it).
const ActionManageSigningKeys = iam.ActionManageSigningKeys

// rotateKeys makes a new signer, prunes keys whose tokens have all expired,
// and persists the set. The caller holds s.idp.mu.
func (m *hubMode) rotateKeys(now time.Time) error {
	if err := m.Keys.Rotate(now, m.s.cfg.MaxTokenLifetime); err != nil {
		return err
	}
	m.Keys.Prune(now)
	if m.keyFile != nil {
		if err := m.keyFile.Save(m.Keys); err != nil {
			return err
		}
	}
	m.s.log.Info("signing key rotated", "kid", m.Keys.SigningKID())
	return nil
}

func (m *regionMode) rotateKeys(time.Time) error {
	return iam.Errorf(iam.EUnavailable, "this server does not sign tokens; rotate on the hub")
}

// dropKey removes a revoked key and persists the set, so that the hub
// neither publishes it in JWKS nor verifies with it, now or after a
// restart. The caller holds s.idp.mu.
func (m *hubMode) dropKey(kid string) error {
	if !m.Keys.Remove(kid) {
		return nil
	}
	if m.keyFile != nil {
		if err := m.keyFile.Save(m.Keys); err != nil {
			return err
		}
	}
	m.s.log.Info("signing key revoked", "kid", kid)
	return nil
}

func (m *regionMode) dropKey(string) error {
	return iam.Errorf(iam.EUnavailable, "this server does not sign tokens; revoke on the hub")
}

// maybeRotate rotates keys when the signer is older than KeyRotation; it
// runs on the token paths, so an idle server rotates on its next token.
// It also replaces, and drops, a signer its replica holds revoked: the
// nodes of a hub share their key file but not their memory, so a
// revocation on one reaches the others only through the log.
func (s *Server) maybeRotate(ctx context.Context, keys *auth.KeySet, now time.Time) {
	if kid := keys.SigningKID(); kid != "" && s.keyRevoked(ctx, kid) {
		s.idp.mu.Lock()
		defer s.idp.mu.Unlock()
		if keys.SigningKID() != kid {
			return // another request replaced it meanwhile
		}
		err := s.mode.rotateKeys(now)
		if err == nil {
			err = s.mode.dropKey(kid)
		}
		if err != nil {
			s.log.Error("replace a revoked signing key", "kid", kid, "err", err)
		}
		return
	}
	infos := keys.Keys()
	if len(infos) == 0 || !infos[0].NotAfter.IsZero() || now.Sub(infos[0].Created) >= s.identityConfig().KeyRotation {
		s.idp.mu.Lock()
		defer s.idp.mu.Unlock()
		infos = keys.Keys() // another request may have rotated meanwhile
		if len(infos) == 0 || !infos[0].NotAfter.IsZero() || now.Sub(infos[0].Created) >= s.idp.cfg.KeyRotation {
			if err := s.mode.rotateKeys(now); err != nil {
				s.log.Error("rotate signing key", "err", err)
			}
		}
	}
}

// keyRevoked reports whether the default region's replica, as it stands,
// holds kid revoked. A process without replicas reports false.
func (s *Server) keyRevoked(ctx context.Context, kid string) bool {
	rep := s.replicas[s.cfg.DefaultRegion]
	if rep == nil {
		return false
	}
	var revoked bool
	_, err := rep.Read(ctx, replica.Consistency{Mode: iam.MinimizeLatency}, func(st *iam.State) error {
		_, revoked = st.RevokedKey(kid)
		return nil
	})
	return err == nil && revoked
}

type signingKeyView struct {
	KID      string     `json:"kid"`
	Created  time.Time  `json:"created"`
	NotAfter *time.Time `json:"notAfter,omitempty"`
	Signing  bool       `json:"signing"`
}

func keysView(keys *auth.KeySet) map[string]any {
	var out []signingKeyView
	for i, k := range keys.Keys() {
		v := signingKeyView{KID: k.KID, Created: k.Created, Signing: i == 0 && k.NotAfter.IsZero()}
		if !k.NotAfter.IsZero() {
			na := k.NotAfter
			v.NotAfter = &na
		}
		out = append(out, v)
	}
	return map[string]any{"keys": out}
}

func (s *Server) authorizeKeys(r *http.Request) error {
	p := principal(r)
	return s.latest(r.Context(), func(st *iam.State) error {
		return iam.AuthorizeAction(st, p.Realm, p.ID, ActionManageSigningKeys, iam.RealmHRN(p.Realm))
	})
}

// listSigningKeys serves GET /v1/signingKeys (public parts only).
func (s *Server) listSigningKeys(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeKeys(r); err != nil {
		return err
	}
	keys, err := s.mode.signer()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keysView(keys))
	return nil
}

// rotateSigningKeys serves POST /v1/signingKeys/rotate: a new key signs from
// now on; the old ones stay in JWKS until every token they signed expired.
func (s *Server) rotateSigningKeys(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeKeys(r); err != nil {
		return err
	}
	if simulationFrom(r.Context()) != nil {
		return errNotSimulated("a signing key rotation")
	}
	keys, err := s.mode.signer()
	if err != nil {
		return iam.Errorf(iam.EUnavailable, "this server does not sign tokens; rotate on the hub")
	}
	s.idp.mu.Lock()
	err = s.mode.rotateKeys(s.cfg.Now())
	s.idp.mu.Unlock()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, keysView(keys))
	return nil
}

// revokeSigningKey serves DELETE /v1/signingKeys/{kid}: every token the key
// signed is refused by each process (hub or region) as soon as its replica
// applies the revocation (the answer's consistency token), whatever copy
// of the keys or cache of verified tokens it holds. Only an operator of the
// system realm may: the keys sign every realm's tokens. A revoked signer is
// first replaced, so that signing goes on. Revoking a revoked key again
// succeeds and changes nothing; an unknown kid is not_found.
func (s *Server) revokeSigningKey(w http.ResponseWriter, r *http.Request) error {
	kid := r.PathValue("kid")
	c, err := s.beginWrite(w, r, iam.RevokeSigningKey{KID: kid})
	if err != nil {
		return err
	}
	var revoked bool
	err = s.latest(r.Context(), func(st *iam.State) error {
		if !st.SystemRealm(c.p.Realm) {
			return iam.Errorf(iam.EPermissionDenied, "signing keys sign every realm's tokens: only an operator of the system realm (the bootstrap realm) may revoke one")
		}
		_, revoked = st.RevokedKey(kid)
		return nil
	})
	if err != nil {
		return err
	}
	if simulationFrom(r.Context()) != nil {
		return errNotSimulated("a signing key revocation") // it drops the key from the key set too
	}
	keys, err := s.mode.signer()
	if err != nil {
		return err
	}
	// Held across the append (revocations are rare) so that no rotation
	// interleaves between the check of the key and its removal.
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	if !revoked && !slices.ContainsFunc(keys.Keys(), func(k auth.KeyInfo) bool { return k.KID == kid }) {
		return iam.Errorf(iam.ENotFound, "signing key %q not found (GET /v1/signingKeys lists them)", kid)
	}
	now := s.cfg.Now()
	if keys.SigningKID() == kid {
		if err := s.mode.rotateKeys(now); err != nil {
			return err
		}
	}
	res, err := c.execute(iam.RevokeSigningKey{KID: kid, At: now.UTC()})
	if err != nil {
		return err
	}
	// After the append: a key dropped but not revoked would still verify
	// in the regions that cache it.
	if err := s.mode.dropKey(kid); err != nil {
		return err
	}
	body := keysView(keys)
	body["revoked"] = kid
	return c.answer(http.StatusOK, res, body)
}
