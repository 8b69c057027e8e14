package auth

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// DefaultVerifyCacheSize is the capacity NewVerifyCache uses when given a
// size below 1.
const DefaultVerifyCacheSize = 10000

// VerifyCache remembers successful argon2id verifications so that a
// credential presented on every request — an API key or a client secret — is
// checked with argon2id once, then by a hash lookup.
//
// It holds only digests, never a secret: each entry is
// HMAC-SHA-256(k, len(secret) || secret || phc) under a random key k made by
// NewVerifyCache and never exported or persisted, mapped to "ok". (A plain
// SHA-256 of secret||phc would do for lookup, but would let anyone who reads
// process memory test guesses at SHA-256 speed instead of argon2id speed.)
// Only successes are cached; a wrong secret costs a full Verify every time.
//
// Because the key includes phc, an entry can only match the hash it was
// verified against: when a credential is revoked or rotated and its stored
// hash disappears or changes, the caller looks up no phc or a new one and the
// old entry is never hit again (it ages out of the LRU). Callers must
// therefore always fetch the current phc before calling Verify.
//
// Use it for high-entropy machine credentials. For user passwords, prefer
// plain Verify: the cost of argon2id on every sign-in is the point.
//
// Concurrent misses for the same secret and phc share one argon2id
// computation. A VerifyCache is safe for concurrent use.
type VerifyCache struct {
	// Compute verifies a miss; nil: Verify. A server sets it to bound the
	// argon2id work it runs at once. Set it before first use.
	Compute func(secret, phc string) (bool, error)

	key  [32]byte
	size int

	mu       sync.Mutex
	lru      *list.List                 // of [32]byte digests, most recent first
	entries  map[[32]byte]*list.Element // digest -> its lru element
	inflight map[[32]byte]*verifyCall
	hits     uint64
	misses   uint64
}

type verifyCall struct {
	done chan struct{}
	ok   bool
	err  error
}

// NewVerifyCache returns an empty cache holding at most size entries
// (DefaultVerifyCacheSize if size < 1), evicting the least recently used.
func NewVerifyCache(size int) *VerifyCache {
	if size < 1 {
		size = DefaultVerifyCacheSize
	}
	c := &VerifyCache{
		size:     size,
		lru:      list.New(),
		entries:  make(map[[32]byte]*list.Element),
		inflight: make(map[[32]byte]*verifyCall),
	}
	rand.Read(c.key[:]) // never fails (crypto/rand crashes the program instead)
	return c
}

// Verify is Verify(secret, phc), answered from the cache when this secret was
// already verified against this phc. Its results and errors are Verify's.
func (c *VerifyCache) Verify(secret, phc string) (bool, error) {
	d := c.digest(secret, phc)

	c.mu.Lock()
	if e, ok := c.entries[d]; ok {
		c.lru.MoveToFront(e)
		c.hits++
		c.mu.Unlock()
		return true, nil
	}
	c.misses++
	if call, ok := c.inflight[d]; ok {
		c.mu.Unlock()
		<-call.done
		return call.ok, call.err
	}
	call := &verifyCall{done: make(chan struct{})}
	c.inflight[d] = call
	c.mu.Unlock()

	compute := c.Compute
	if compute == nil {
		compute = Verify
	}
	call.ok, call.err = compute(secret, phc)

	c.mu.Lock()
	delete(c.inflight, d)
	if call.ok {
		c.add(d)
	}
	c.mu.Unlock()
	close(call.done)
	return call.ok, call.err
}

// add records d as verified; c.mu must be held.
func (c *VerifyCache) add(d [32]byte) {
	if _, ok := c.entries[d]; ok {
		return
	}
	for c.lru.Len() >= c.size {
		oldest := c.lru.Back()
		delete(c.entries, oldest.Value.([32]byte))
		c.lru.Remove(oldest)
	}
	c.entries[d] = c.lru.PushFront(d)
}

// Len returns the number of cached verifications.
func (c *VerifyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Stats returns the number of lookups answered from the cache and the number
// that were not (including those that waited on a concurrent computation).
func (c *VerifyCache) Stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// Purge empties the cache, e.g. after a bulk credential revocation.
func (c *VerifyCache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	clear(c.entries)
}

func (c *VerifyCache) digest(secret, phc string) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(secret)))
	m.Write(n[:])
	m.Write([]byte(secret))
	m.Write([]byte(phc))
	var d [32]byte
	m.Sum(d[:0])
	return d
}
