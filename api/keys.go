package api

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
)

// Signing keys live beside the log, never in it: DATA/signing-keys.sealed is
// the key set sealed (AES-256-GCM, auth.Seal) under the key-encryption key
// DATA/keys.kek. In production the KEK belongs in a secret manager; keeping
// it in a separate 0600 file at least keeps a copied key file useless alone.
const (
	sealedKeysFile = "signing-keys.sealed"
	kekFile        = "keys.kek"
	plainKeysFile  = "signing-keys.json" // written by earlier versions; migrated
)

// ActionManageSigningKeys is the permission to rotate the token signing keys
// (on the realm's HRN; OrgAdmin has it).
const ActionManageSigningKeys = "manageSigningKeys"

// LoadSigningKeys returns the token signing keys of data directory dir,
// making the first key on first start and sealing a plaintext key file left
// by an earlier version (which it then removes).
func LoadSigningKeys(dir string, now time.Time, maxTokenLifetime time.Duration) (*auth.KeySet, error) {
	kek, err := loadKEK(dir)
	if err != nil {
		return nil, err
	}
	sealed, err := os.ReadFile(filepath.Join(dir, sealedKeysFile))
	if err == nil {
		plain, err := auth.Open(kek, sealed)
		if err != nil {
			return nil, fmt.Errorf("signing keys: %w", err)
		}
		return auth.UnmarshalKeySet(plain)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var ks *auth.KeySet
	legacy := filepath.Join(dir, plainKeysFile)
	if data, err := os.ReadFile(legacy); err == nil {
		if ks, err = auth.UnmarshalKeySet(data); err != nil {
			return nil, err
		}
	} else {
		ks = auth.NewKeySet()
		if maxTokenLifetime == 0 {
			maxTokenLifetime = 24 * time.Hour
		}
		if err := ks.Rotate(now, maxTokenLifetime); err != nil {
			return nil, err
		}
	}
	if err := saveKeys(dir, kek, ks); err != nil {
		return nil, err
	}
	if err := os.Remove(legacy); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return ks, nil
}

func loadKEK(dir string) ([]byte, error) {
	path := filepath.Join(dir, kekFile)
	data, err := os.ReadFile(path)
	if err == nil {
		if len(data) != auth.KEKSize {
			return nil, fmt.Errorf("%s: want %d bytes, got %d", path, auth.KEKSize, len(data))
		}
		return data, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	data = make([]byte, auth.KEKSize)
	_, _ = rand.Read(data)
	return data, writeFileAtomic(path, data)
}

func saveKeys(dir string, kek []byte, ks *auth.KeySet) error {
	plain, err := auth.MarshalKeySet(ks)
	if err != nil {
		return err
	}
	sealed, err := auth.Seal(kek, plain)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, sealedKeysFile), sealed)
}

// writeFileAtomic writes a 0600 file by rename, so a crash leaves the old or
// the new content, never half.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// adoptSealedKeys makes the server persist its key set sealed under
// DATA/keys.kek after each rotation.
func (s *Server) adoptSealedKeys() error {
	kek, err := loadKEK(s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.idp.kek = kek
	s.idp.path = s.cfg.DataDir
	if _, err := os.Stat(filepath.Join(s.cfg.DataDir, sealedKeysFile)); errors.Is(err, os.ErrNotExist) {
		return saveKeys(s.cfg.DataDir, kek, s.keys)
	}
	return nil
}

// rotateKeys makes a new signer, prunes keys whose tokens have all expired,
// and persists the set.
func (s *Server) rotateKeys(now time.Time) error {
	if err := s.keys.Rotate(now, s.cfg.MaxTokenLifetime); err != nil {
		return err
	}
	s.keys.Prune(now)
	if s.idp.kek != nil {
		if err := saveKeys(s.idp.path, s.idp.kek, s.keys); err != nil {
			return err
		}
	}
	s.log.Info("signing key rotated", "kid", s.keys.SigningKID())
	return nil
}

// maybeRotate rotates when the signer is older than KeyRotation; it runs on
// the token paths, so an idle server rotates on its next token.
func (s *Server) maybeRotate(now time.Time) {
	if s.keys == nil {
		return // a regional server: the hub signs
	}
	infos := s.keys.Keys()
	if len(infos) == 0 || !infos[0].NotAfter.IsZero() || now.Sub(infos[0].Created) >= s.identityConfig().KeyRotation {
		s.idp.mu.Lock()
		defer s.idp.mu.Unlock()
		infos = s.keys.Keys() // another request may have rotated meanwhile
		if len(infos) == 0 || !infos[0].NotAfter.IsZero() || now.Sub(infos[0].Created) >= s.idp.cfg.KeyRotation {
			if err := s.rotateKeys(now); err != nil {
				s.log.Error("rotate signing key", "err", err)
			}
		}
	}
}

type signingKeyView struct {
	KID      string     `json:"kid"`
	Created  time.Time  `json:"created"`
	NotAfter *time.Time `json:"notAfter,omitempty"`
	Signing  bool       `json:"signing"`
}

func (s *Server) keysView() map[string]any {
	var out []signingKeyView
	for i, k := range s.keys.Keys() {
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
	return s.latest(func(st *iam.State) error {
		return iam.AuthorizeAction(st, p.Realm, p.ID, ActionManageSigningKeys, iam.RealmHRN(p.Realm))
	})
}

// listSigningKeys serves GET /v1/signingKeys (public parts only).
func (s *Server) listSigningKeys(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeKeys(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.keysView())
	return nil
}

// rotateSigningKeys serves POST /v1/signingKeys/rotate: a new key signs from
// now on; the old ones stay in JWKS until every token they signed expired.
func (s *Server) rotateSigningKeys(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeKeys(r); err != nil {
		return err
	}
	if s.keys == nil {
		return iam.Errorf(iam.EUnavailable, "this server does not sign tokens; rotate on the hub")
	}
	s.idp.mu.Lock()
	err := s.rotateKeys(s.cfg.Now())
	s.idp.mu.Unlock()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.keysView())
	return nil
}
