// Package logsign signs and verifies the event log's entries and the read
// model's snapshots with Ed25519 (crypto/ed25519). The hub's writer signs
// with the newest key of a Ring; every region verifies with the public keys
// it trusts (several at once, so that keys rotate without a flag day).
//
// A signature covers a Message (the subject, MsgID, signed expectation and
// body of a log entry, or a snapshot's header fields), encoded without
// ambiguity; it travels as "<kid>.<base64url signature>".
package logsign

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Headers of a signed log message.
const (
	// SigHeader carries "<kid>.<base64url signature>".
	SigHeader = "Iam-Sig"
	// ExpectHeader carries the signed expectation "<realm> <seq>": the
	// realm's last sequence the entry was appended after.
	ExpectHeader = "Iam-Expect"
)

// Errors of Verify.
var (
	// ErrUnsigned: the entry or snapshot carries no signature, or lacks a
	// part that must be signed.
	ErrUnsigned = errors.New("unsigned")
	// ErrForged: the signature is malformed, names a key not trusted, or
	// does not match.
	ErrForged = errors.New("forged signature")
)

// domain separates log entries from snapshots and from any other use of
// the key.
const (
	domainEntry    = "iam-log-entry-v1"
	domainSnapshot = "iam-snapshot-v1"
)

// Message is what a signature covers. Parts are length-prefixed, so no two
// different messages encode alike.
type Message struct {
	Subject string
	MsgID   string
	// Expect is the signed expectation ("<realm> <seq>"), "" when none.
	Expect string
	Body   []byte

	domain string // domainEntry (when empty) or domainSnapshot
}

// Entry is the message of a log entry.
func Entry(subject, msgID, expect string, body []byte) Message {
	return Message{Subject: subject, MsgID: msgID, Expect: expect, Body: body}
}

// Snapshot is the message of a snapshot header: its position, row count
// and digest. No log entry's message encodes alike.
func Snapshot(seq uint64, msgID string, rows uint64, digest string) Message {
	return Message{MsgID: msgID, Expect: fmt.Sprintf("%d %d", seq, rows), Body: []byte(digest), domain: domainSnapshot}
}

func (m Message) encode() []byte {
	dom := domainEntry
	if m.domain != "" {
		dom = m.domain
	}
	b := make([]byte, 0, len(dom)+len(m.Subject)+len(m.MsgID)+len(m.Expect)+len(m.Body)+5*binary.MaxVarintLen64)
	for _, p := range [][]byte{[]byte(dom), []byte(m.Subject), []byte(m.MsgID), []byte(m.Expect), m.Body} {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// Expect formats a signed expectation.
func Expect(realm string, seq uint64) string { return fmt.Sprintf("%s %d", realm, seq) }

// ParseExpect parses a signed expectation.
func ParseExpect(s string) (realm string, seq uint64, err error) {
	realm, n, ok := strings.Cut(s, " ")
	if !ok || realm == "" {
		return "", 0, fmt.Errorf("expectation %q: want \"<realm> <seq>\"", s)
	}
	if _, err := fmt.Sscanf(n, "%d", &seq); err != nil {
		return "", 0, fmt.Errorf("expectation %q: %w", s, err)
	}
	return realm, seq, nil
}

// Key is one signing key of a Ring.
type Key struct {
	ID      string             `json:"kid"`
	Created time.Time          `json:"created"`
	Private ed25519.PrivateKey `json:"private"`
}

// Ring is the hub's log signing keys, oldest first: the newest signs, all
// verify. It is not safe for concurrent use; Signer and Verifier are.
type Ring struct {
	Keys []Key `json:"keys"`
	// SignedFrom is the first log sequence the ring signs: entries before
	// it were appended before the log was signed (a deployment upgraded
	// to signing) and are read unsigned; every later one must be signed.
	// An attacker cannot place an entry below it: those sequences exist.
	SignedFrom uint64 `json:"signedFrom,omitempty"`
}

// Rotate adds a new key, which signs from now on.
func (r *Ring) Rotate(now time.Time) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	r.Keys = append(r.Keys, Key{ID: "log-" + base64.RawURLEncoding.EncodeToString(id[:]), Created: now.UTC(), Private: priv})
	return nil
}

// Signer returns a Signer with the newest key; nil when the ring is empty.
func (r *Ring) Signer() *Signer {
	if len(r.Keys) == 0 {
		return nil
	}
	k := r.Keys[len(r.Keys)-1]
	return &Signer{kid: k.ID, priv: k.Private}
}

// Public returns the ring's public keys, for regions to trust.
func (r *Ring) Public() PublicKeys {
	p := PublicKeys{SignedFrom: r.SignedFrom}
	for _, k := range r.Keys {
		p.Keys = append(p.Keys, PublicKey{ID: k.ID, Public: k.Private.Public().(ed25519.PublicKey)})
	}
	return p
}

// Marshal encodes the ring (private keys: seal it, never store it plain).
func (r *Ring) Marshal() ([]byte, error) { return json.Marshal(r) }

// UnmarshalRing decodes a ring written by Marshal.
func UnmarshalRing(data []byte) (*Ring, error) {
	var r Ring
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("log signing keys: %w", err)
	}
	for _, k := range r.Keys {
		if k.ID == "" || len(k.Private) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("log signing keys: key %q is malformed", k.ID)
		}
	}
	return &r, nil
}

// Signer signs with one key. It is safe for concurrent use.
type Signer struct {
	kid  string
	priv ed25519.PrivateKey
}

// Kid names the key.
func (s *Signer) Kid() string { return s.kid }

// Sign returns the signature of m as "<kid>.<base64url signature>".
func (s *Signer) Sign(m Message) string {
	return s.kid + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(s.priv, m.encode()))
}

// SignSnapshot signs a snapshot header's position and digest
// (replica.SnapshotSigner).
func (s *Signer) SignSnapshot(seq uint64, msgID string, rows uint64, sha256 string) string {
	return s.Sign(Snapshot(seq, msgID, rows, sha256))
}

// PublicKey is one trusted key.
type PublicKey struct {
	ID     string            `json:"kid"`
	Public ed25519.PublicKey `json:"public"`
}

// PublicKeys is the file of trusted public keys an operator distributes to
// regions (iamd region --log-keys FILE).
type PublicKeys struct {
	Keys []PublicKey `json:"keys"`
	// SignedFrom: see Ring.SignedFrom.
	SignedFrom uint64 `json:"signedFrom,omitempty"`
}

// Verifier verifies signatures by any of its keys. It is safe for
// concurrent use.
type Verifier struct {
	keys       map[string]ed25519.PublicKey
	signedFrom uint64
}

// NewVerifier trusts keys.
func NewVerifier(keys PublicKeys) (*Verifier, error) {
	v := &Verifier{keys: map[string]ed25519.PublicKey{}, signedFrom: keys.SignedFrom}
	for _, k := range keys.Keys {
		if k.ID == "" || strings.Contains(k.ID, ".") || len(k.Public) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("log public key %q is malformed", k.ID)
		}
		v.keys[k.ID] = k.Public
	}
	if len(v.keys) == 0 {
		return nil, errors.New("no log public key to trust")
	}
	return v, nil
}

// SignedFrom returns the first log sequence that must be signed (see
// Ring.SignedFrom); 0 and 1 both mean every entry.
func (v *Verifier) SignedFrom() uint64 { return v.signedFrom }

// Verify checks sig over m. Errors wrap ErrUnsigned when sig is empty and
// ErrForged otherwise.
func (v *Verifier) Verify(sig string, m Message) error {
	if sig == "" {
		return ErrUnsigned
	}
	kid, b64, ok := strings.Cut(sig, ".")
	if !ok {
		return fmt.Errorf("%w: malformed", ErrForged)
	}
	pub, ok := v.keys[kid]
	if !ok {
		return fmt.Errorf("%w: key %q is not trusted", ErrForged, kid)
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("%w: malformed", ErrForged)
	}
	if !ed25519.Verify(pub, m.encode(), raw) {
		return fmt.Errorf("%w: does not match (key %q)", ErrForged, kid)
	}
	return nil
}

// VerifySnapshot checks a snapshot header's signature
// (replica.SnapshotVerifier). Errors as Verify.
func (v *Verifier) VerifySnapshot(sig string, seq uint64, msgID string, rows uint64, sha256 string) error {
	return v.Verify(sig, Snapshot(seq, msgID, rows, sha256))
}

// LoadPublicKeys reads a file of trusted public keys (JSON, as
// WritePublicKeys writes it) and returns a Verifier over them.
func LoadPublicKeys(path string) (*Verifier, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("log public keys: %w", err)
	}
	var p PublicKeys
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("log public keys %s: %w", path, err)
	}
	return NewVerifier(p)
}

// WritePublicKeys writes the public keys to path (0644: they are public),
// atomically, also when several hub nodes sharing a secrets directory write
// it at once.
func WritePublicKeys(path string, p PublicKeys) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
