package iam

import (
	"cmp"
	"hash/maphash"
	"iter"
	"slices"
	"strings"
)

// IDMap is a hash map from ids that shares its memory with its copies, for
// a realm's largest maps (its identities, and its emails). A time-travel
// read forks a checkpoint's state and replays the log's tail onto the fork
// (cow.go): with Go maps, each fork and each checkpoint copied every map
// whole, ~12 MB at 90,000 users, and those copies, each on freshly faulted
// pages and each more for the GC to mark, were most of a read's tail
// latency. An IDMap is an array of small buckets: a copy shares the array
// and the buckets, and a change copies the array (a pointer a bucket) and
// the one bucket it touches, unless they already belong to the changer's
// generation (cow.go's ownership by generation). A replay of a few
// thousand entries so copies kilobytes, not megabytes.
//
// The zero IDMap is empty and ready to use. Its methods that read may run
// on any number of goroutines at once; put and del only where the realm
// holding the map is changed, with that realm's generation.
type IDMap[V any] struct {
	buckets []*idBucket[V] // length a power of two; a nil bucket is empty
	n       int
	gen     uint64 // the generation the array of buckets belongs to
}

type idBucket[V any] struct {
	gen uint64 // the generation it belongs to
	// entries are in hash order (then key order), so that maps that hold
	// the same lay out alike (clone); they are inline[:n] until they
	// outgrow it. Inline, a lookup's bucket and its entries are one
	// allocation: a separate one cost every lookup a cache miss more,
	// which at 1M identities made a restart a quarter slower.
	entries []idEntry[V]
	inline  [idMaxLoad]idEntry[V]
}

type idEntry[V any] struct {
	hash uint64 // of key: compared before it, and kept for growing
	key  string
	val  V
}

// idMaxLoad is the most entries a bucket holds on average before the array
// doubles: small enough that a change copies a few hundred bytes, large
// enough that a copy of the array is a byte or two an entry.
const idMaxLoad = 8

var idSeed = maphash.MakeSeed()

func idHash(k string) uint64 { return maphash.String(idSeed, k) }

// Len returns the number of entries.
func (m *IDMap[V]) Len() int { return m.n }

// Get returns the value at k, the zero value when there is none.
func (m *IDMap[V]) Get(k string) V {
	v, _ := m.Lookup(k)
	return v
}

// Lookup returns the value at k and whether there is one.
func (m *IDMap[V]) Lookup(k string) (V, bool) {
	if e := m.find(idHash(k), k); e != nil {
		return e.val, true
	}
	var zero V
	return zero, false
}

// find returns the entry of k, whose hash is h; nil when there is none.
func (m *IDMap[V]) find(h uint64, k string) *idEntry[V] {
	if m.n == 0 {
		return nil
	}
	if b := m.buckets[h&uint64(len(m.buckets)-1)]; b != nil {
		for i := range b.entries {
			if e := &b.entries[i]; e.hash == h && e.key == k {
				return e
			}
		}
	}
	return nil
}

// All yields every entry once, in no particular order.
func (m *IDMap[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		for _, b := range m.buckets {
			if b == nil {
				continue
			}
			for _, e := range b.entries {
				if !yield(e.key, e.val) {
					return
				}
			}
		}
	}
}

// reserve sizes an empty map for n entries, so that a bulk load does not
// grow it an array at a time.
func (m *IDMap[V]) reserve(gen uint64, n int) {
	if m.n == 0 {
		m.buckets, m.gen = make([]*idBucket[V], bucketsFor(n)), gen
	}
}

func bucketsFor(n int) int {
	size := 8
	for size*idMaxLoad < n {
		size *= 2
	}
	return size
}

// put sets k to v for a realm of generation gen.
func (m *IDMap[V]) put(gen uint64, k string, v V) {
	m.insert(gen, idEntry[V]{hash: idHash(k), key: k, val: v})
	if m.n > idMaxLoad*len(m.buckets) {
		m.grow(gen)
	}
}

// insert puts e (its hash set) without growing the array.
func (m *IDMap[V]) insert(gen uint64, e idEntry[V]) {
	b := m.own(gen, e.hash)
	i, found := slices.BinarySearchFunc(b.entries, e, compareEntries)
	if found {
		b.entries[i].val = e.val
		return
	}
	b.entries = slices.Insert(b.entries, i, e)
	b.dropSpilt()
	m.n++
}

// sparsePut: putAll sorts its entries by bucket only when they are at
// least one in sparsePut of the buckets.
const sparsePut = 16

// putAll puts the entries (their hashes set) as put would one at a time,
// but bucket after bucket: at 1M ids put's random order made each insert
// a cache miss or two, on the array and on the bucket. It sorts entries
// by bucket with a counting sort (scattering them is stores, which do not
// wait on each other as the loads of a lookup do).
func (m *IDMap[V]) putAll(gen uint64, entries []idEntry[V]) {
	if len(entries) == 0 {
		return
	}
	if size := bucketsFor(m.n + len(entries)); m.buckets == nil || len(m.buckets) < size {
		m.buckets, m.gen = m.spread(size, gen, nil)
	}
	if len(entries)*sparsePut < len(m.buckets) {
		// Too few to share buckets: the sort's array, one slot a bucket,
		// would cost more than the misses it saves. A read model whose
		// plain identities alternate with others loads them a few at a
		// time, and allocating that array each time made its snapshot
		// load 3.0-3.5 s rather than 1.4-1.5 s (workload join, 829k rows).
		for _, e := range entries {
			m.insert(gen, e)
		}
		return
	}
	mask := uint64(len(m.buckets) - 1)
	starts := make([]int32, len(m.buckets)+1)
	for _, e := range entries {
		starts[e.hash&mask+1]++
	}
	for i := 1; i < len(starts); i++ {
		starts[i] += starts[i-1]
	}
	sorted := make([]idEntry[V], len(entries))
	for _, e := range entries {
		sorted[starts[e.hash&mask]] = e
		starts[e.hash&mask]++
	}
	for _, e := range sorted {
		m.insert(gen, e)
	}
}

// del removes k for a realm of generation gen.
func (m *IDMap[V]) del(gen uint64, k string) {
	h := idHash(k)
	if m.find(h, k) == nil {
		return // nothing to copy for
	}
	b := m.own(gen, h)
	b.entries = slices.DeleteFunc(b.entries, func(e idEntry[V]) bool { return e.hash == h && e.key == k })
	if len(b.entries) == 0 {
		m.buckets[h&uint64(len(m.buckets)-1)] = nil // as a bucket never used is
	}
	m.n--
}

// own returns the bucket of hash h for generation gen to change, copying
// the array and the bucket first when they belong to another.
func (m *IDMap[V]) own(gen, h uint64) *idBucket[V] {
	if m.buckets == nil {
		m.buckets, m.gen = make([]*idBucket[V], bucketsFor(0)), gen
	} else if m.gen != gen {
		m.buckets, m.gen = slices.Clone(m.buckets), gen
	}
	i := h & uint64(len(m.buckets)-1)
	b := m.buckets[i]
	switch {
	case b == nil:
		b = newBucket[V](gen, nil)
		m.buckets[i] = b
	case b.gen != gen:
		b = newBucket(gen, b.entries)
		m.buckets[i] = b
	}
	return b
}

// dropSpilt clears inline once the entries have outgrown it: it would hold
// stale copies of them (for the collector, and for a clone's layout).
func (b *idBucket[V]) dropSpilt() {
	if len(b.entries) > len(b.inline) {
		b.inline = [idMaxLoad]idEntry[V]{}
	}
}

func newBucket[V any](gen uint64, entries []idEntry[V]) *idBucket[V] {
	b := &idBucket[V]{gen: gen}
	b.entries = append(b.inline[:0], entries...)
	return b
}

func compareEntries[V any](x, y idEntry[V]) int {
	if c := cmp.Compare(x.hash, y.hash); c != 0 {
		return c
	}
	return strings.Compare(x.key, y.key)
}

// grow doubles the array, every bucket then new and gen's own.
func (m *IDMap[V]) grow(gen uint64) {
	m.buckets, m.gen = m.spread(2*len(m.buckets), gen, nil)
}

// clone returns a copy of m that shares nothing with it, each value copied
// by f, for a State of generation 0 (State.Clone). The copy is laid out
// canonically, sized for its entries, each bucket in hash order and inline
// when it fits, so that clones of maps that hold the same compare equal
// (reflect.DeepEqual), whatever order their entries came in.
func (m *IDMap[V]) clone(f func(V) V) IDMap[V] {
	if m.buckets == nil {
		return IDMap[V]{}
	}
	buckets, _ := m.spread(bucketsFor(m.n), 0, f)
	return IDMap[V]{n: m.n, buckets: buckets}
}

// spread puts m's entries, each value copied by f unless f is nil, into
// size new buckets of generation gen, each in hash order.
func (m *IDMap[V]) spread(size int, gen uint64, f func(V) V) ([]*idBucket[V], uint64) {
	buckets := make([]*idBucket[V], size)
	mask := uint64(size - 1)
	for _, b := range m.buckets {
		if b == nil {
			continue
		}
		for _, e := range b.entries {
			nb := buckets[e.hash&mask]
			if nb == nil {
				nb = newBucket[V](gen, nil)
				buckets[e.hash&mask] = nb
			}
			if f != nil {
				e.val = f(e.val)
			}
			nb.entries = append(nb.entries, e)
		}
	}
	for _, b := range buckets {
		if b != nil {
			// Already in order when the array grows (a bucket splits in
			// two), not when a clone's is smaller.
			slices.SortFunc(b.entries, compareEntries)
			b.dropSpilt()
		}
	}
	return buckets, gen
}
