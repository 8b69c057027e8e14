package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Signing keys live beside the log, never in it: DIR/signing-keys.sealed is
// the key set sealed (AES-256-GCM, Seal) under the key-encryption key
// DIR/keys.kek. In production the KEK belongs in a secret manager; keeping
// it in a separate 0600 file at least keeps a copied key file useless alone.
const (
	sealedKeysFile = "signing-keys.sealed"
	kekFile        = "keys.kek"
	plainKeysFile  = "signing-keys.json" // written by earlier versions; migrated
)

// KeyFile is the sealed signing-key file of a data directory and the KEK
// that seals it. Save is not safe for concurrent use: the caller serialises
// rotations.
type KeyFile struct {
	dir string
	kek []byte
}

// OpenKeyFile returns the key file of dir, making its KEK on first use.
func OpenKeyFile(dir string) (*KeyFile, error) {
	kek, err := loadKEK(dir)
	if err != nil {
		return nil, err
	}
	return &KeyFile{dir: dir, kek: kek}, nil
}

// Save seals ks into the file (atomically: a crash leaves the old or the
// new set).
func (f *KeyFile) Save(ks *KeySet) error {
	plain, err := MarshalKeySet(ks)
	if err != nil {
		return err
	}
	sealed, err := Seal(f.kek, plain)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(f.dir, sealedKeysFile), sealed)
}

// Adopt saves ks unless the file already exists.
func (f *KeyFile) Adopt(ks *KeySet) error {
	if _, err := os.Stat(filepath.Join(f.dir, sealedKeysFile)); errors.Is(err, os.ErrNotExist) {
		return f.Save(ks)
	}
	return nil
}

// LoadSigningKeys returns the token signing keys of data directory dir,
// making the first key (valid for tokens of maxTokenLifetime, default 24h)
// on first start and sealing a plaintext key file left by an earlier
// version (which it then removes).
func LoadSigningKeys(dir string, now time.Time, maxTokenLifetime time.Duration) (*KeySet, error) {
	f, err := OpenKeyFile(dir)
	if err != nil {
		return nil, err
	}
	sealed, err := os.ReadFile(filepath.Join(dir, sealedKeysFile))
	if err == nil {
		plain, err := Open(f.kek, sealed)
		if err != nil {
			return nil, fmt.Errorf("signing keys: %w", err)
		}
		return UnmarshalKeySet(plain)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var ks *KeySet
	legacy := filepath.Join(dir, plainKeysFile)
	if data, err := os.ReadFile(legacy); err == nil {
		if ks, err = UnmarshalKeySet(data); err != nil {
			return nil, err
		}
	} else {
		ks = NewKeySet()
		if maxTokenLifetime == 0 {
			maxTokenLifetime = 24 * time.Hour
		}
		if err := ks.Rotate(now, maxTokenLifetime); err != nil {
			return nil, err
		}
	}
	if err := f.Save(ks); err != nil {
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
		if len(data) != KEKSize {
			return nil, fmt.Errorf("%s: want %d bytes, got %d", path, KEKSize, len(data))
		}
		return data, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	data = make([]byte, KEKSize)
	_, _ = rand.Read(data)
	return data, writeFileAtomic(path, data)
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

// LoadSecret reads the 32-byte secret in the 0600 file at path, making it
// on first use (the idempotency secret: every hub node must have the same).
func LoadSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil && len(data) == 32 {
		return data, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	data = make([]byte, 32)
	_, _ = rand.Read(data)
	return data, writeFileAtomic(path, data)
}

// LoadSealed returns the plaintext of the file name in dir, sealed under
// dir's KEK (as the signing keys are), making it from create's output on
// first use. It keeps other secrets, such as the log signing keys, beside
// the token signing keys.
func LoadSealed(dir, name string, create func() ([]byte, error)) ([]byte, error) {
	f, err := OpenKeyFile(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name)
	sealed, err := os.ReadFile(path)
	if err == nil {
		plain, err := Open(f.kek, sealed)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return plain, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	plain, err := create()
	if err != nil {
		return nil, err
	}
	if sealed, err = Seal(f.kek, plain); err != nil {
		return nil, err
	}
	return plain, writeFileAtomic(path, sealed)
}

// SaveSealed seals plain under dir's KEK into the file name in dir
// (atomically), as LoadSealed reads it.
func SaveSealed(dir, name string, plain []byte) error {
	f, err := OpenKeyFile(dir)
	if err != nil {
		return err
	}
	sealed, err := Seal(f.kek, plain)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, name), sealed)
}
