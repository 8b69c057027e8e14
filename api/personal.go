package api

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/keyvault"
)

// Personal data (a user's email and name) is sealed with AES-256-GCM under
// the user's own data key, which the key vault keeps outside the log.
// Deleting the user purges the key: every copy of the ciphertext — in the
// stream, in each replica, in snapshots — becomes unreadable at once.
// Lookup by email uses a blind index: HMAC-SHA256 of the normalised email
// under the realm's pepper (also in the vault). See docs/authentication.md.

type personal struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

const sealedVersion = 1

func personalAAD(realm, user string) []byte {
	return []byte("iam personal v1\x00" + realm + "\x00" + user)
}

func sealPersonal(key []byte, realm, user string, p personal) ([]byte, error) {
	aead, err := gcm(key)
	if err != nil {
		return nil, err
	}
	plain, _ := json.Marshal(p)
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealedVersion
	_, _ = rand.Read(out[1:])
	return aead.Seal(out, out[1:], plain, personalAAD(realm, user)), nil
}

func openPersonal(key, sealed []byte, realm, user string) (personal, error) {
	aead, err := gcm(key)
	if err != nil {
		return personal{}, err
	}
	n := aead.NonceSize()
	if len(sealed) < 1+n+aead.Overhead() || sealed[0] != sealedVersion {
		return personal{}, errors.New("not sealed personal data")
	}
	plain, err := aead.Open(nil, sealed[1:1+n], sealed[1+n:], personalAAD(realm, user))
	if err != nil {
		return personal{}, err
	}
	var p personal
	return p, json.Unmarshal(plain, &p)
}

func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// normalEmail is the form the blind index is computed on.
func normalEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func blindIndex(pepper []byte, email string) string {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(normalEmail(email)))
	return "bi1." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// keyCache keeps data keys and peppers briefly, so reads do not ask the vault
// each time. A destroyed key is dropped at once here; other processes drop it
// within the TTL.
type keyCache struct {
	mu sync.Mutex
	m  map[string]cachedKey
}

type cachedKey struct {
	key []byte
	exp time.Time
}

func newKeyCache() *keyCache { return &keyCache{m: map[string]cachedKey{}} }

func (c *keyCache) get(name string, now time.Time) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.m[name]; ok && now.Before(k.exp) {
		return k.key
	}
	return nil
}

func (c *keyCache) put(name string, key []byte, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 10_000 {
		c.m = map[string]cachedKey{}
	}
	c.m[name] = cachedKey{key, exp}
}

func (c *keyCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, name)
}

func (s *Server) dataKey(ctx context.Context, realm, user string, create bool) ([]byte, error) {
	name := "dk/" + realm + "/" + user
	if sim := simulationFrom(ctx); sim != nil {
		if k, ok := sim.keys[name]; ok || create {
			// Made here, never in the vault: a simulated user's data is
			// sealed under a key that dies with the simulation.
			if !ok {
				k = make([]byte, 32)
				_, _ = rand.Read(k)
				sim.keys[name] = k
			}
			return k, nil
		}
	}
	now := s.cfg.Now()
	if k := s.idp.keys.get(name, now); k != nil {
		return k, nil
	}
	k, err := s.vault.DataKey(ctx, realm, user, create)
	if err != nil {
		// A vault that cannot be reached (a hub still electing its
		// stream leaders) is unavailable for a moment, not broken. A
		// destroyed key stays itself: callers tell it apart.
		if iam.ErrorCode(err) == "" && !errors.Is(err, keyvault.ErrKeyDestroyed) {
			err = iam.Errorf(iam.EUnavailable, "key vault: %v", err)
		}
		return nil, err
	}
	s.idp.keys.put(name, k, now.Add(s.identityConfig().PersonalDataKeyTTL))
	return k, nil
}

func (s *Server) emailIndex(ctx context.Context, realm, email string) (string, error) {
	if sim := simulationFrom(ctx); sim != nil {
		// The vault makes a realm's pepper on first use: a simulation
		// makes none (see simulation.pepper).
		return blindIndex(sim.pepper, email), nil
	}
	name := "pepper/" + realm
	now := s.cfg.Now()
	pepper := s.idp.keys.get(name, now)
	if pepper == nil {
		var err error
		if pepper, err = s.vault.Pepper(ctx, realm); err != nil {
			if iam.ErrorCode(err) == "" {
				err = iam.Errorf(iam.EUnavailable, "key vault: %v", err)
			}
			return "", err
		}
		s.idp.keys.put(name, pepper, now.Add(time.Hour)) // peppers are never destroyed
	}
	return blindIndex(pepper, email), nil
}

// destroyPersonal purges the user's data key (crypto-shredding).
func (s *Server) destroyPersonal(ctx context.Context, realm, user string) error {
	if simulationFrom(ctx) != nil {
		return nil // a simulated deletion shreds nothing
	}
	s.idp.keys.drop("dk/" + realm + "/" + user)
	return s.vault.Destroy(ctx, realm, user)
}

// reveal decrypts the personal data of an identity view, if sealed. Data
// whose key is destroyed (or unreachable) is shown as absent, never as
// ciphertext.
func (s *Server) reveal(ctx context.Context, realm *iam.Realm, v any) any {
	iv, ok := v.(identityView)
	if !ok {
		return v
	}
	id := realm.Identities.Get(iv.ID)
	if id == nil || len(id.Sealed) == 0 {
		return v
	}
	key, err := s.dataKey(ctx, realm.ID, id.ID, false)
	if err != nil {
		if !errors.Is(err, keyvault.ErrKeyDestroyed) {
			s.log.Warn("personal data unavailable", "realm", realm.ID, "user", id.ID, "err", err)
		}
		return v
	}
	if p, err := openPersonal(key, id.Sealed, realm.ID, id.ID); err == nil {
		iv.Email, iv.Name = p.Email, p.Name
	}
	return iv
}
