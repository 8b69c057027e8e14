package iam

import (
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestIDMap checks an IDMap against a Go map through random puts (one at a
// time and in batches, which may grow the array) and deletes, across copies made as Snapshot and Fork make them (the copy by
// value, each side then changed at its own generation): every copy keeps
// exactly the entries it had, whatever the others do after, and a copy's
// first change copies only the bucket it touches.
func TestIDMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	type version struct {
		m    IDMap[int]
		want map[string]int
		gen  uint64
	}
	live := &version{want: map[string]int{}}
	var frozen []*version
	for step := range 20_000 {
		k := "id-" + strconv.Itoa(rng.IntN(3000))
		switch op := rng.IntN(100); {
		case op < 57:
			live.m.put(live.gen, k, step)
			live.want[k] = step
		case op < 60:
			// A batch, keys repeated in it too: the last of a key wins.
			// The smallest take putAll's sparse path, the rest its sort.
			batch := make([]idEntry[int], rng.IntN(300))
			for i := range batch {
				k := "id-" + strconv.Itoa(rng.IntN(3000+step/4))
				batch[i] = idEntry[int]{hash: idHash(k), key: k, val: step*1000 + i}
				live.want[k] = step*1000 + i
			}
			live.m.putAll(live.gen, batch)
		case op < 90:
			live.m.del(live.gen, k)
			delete(live.want, k)
		case op < 91:
			// Snapshot: the copy is frozen, the live one goes on at a
			// new generation.
			frozen = append(frozen, &version{m: live.m, want: maps.Clone(live.want)})
			live.gen = generations.Add(1)
		default:
			continue
		}
		if step%2000 == 0 {
			for i, v := range append([]*version{live}, frozen...) {
				checkIDMap(t, i, &v.m, v.want)
			}
		}
	}
	if len(frozen) < 100 {
		t.Fatalf("only %d copies made", len(frozen))
	}
	// A fork of a frozen copy changes apart from it.
	f := frozen[len(frozen)/2]
	fork := version{m: f.m, want: maps.Clone(f.want), gen: generations.Add(1)}
	for i := range 5000 {
		k := "id-" + strconv.Itoa(rng.IntN(6000))
		fork.m.put(fork.gen, k, -i)
		fork.want[k] = -i
	}
	checkIDMap(t, -1, &fork.m, fork.want)
	clone := fork.m.clone(func(v int) int { return v })
	checkIDMap(t, -2, &clone, fork.want)
	for i, v := range append([]*version{live}, frozen...) {
		checkIDMap(t, i, &v.m, v.want)
	}
}

func checkIDMap(t *testing.T, which int, m *IDMap[int], want map[string]int) {
	t.Helper()
	if m.Len() != len(want) {
		t.Fatalf("version %d: Len %d, want %d", which, m.Len(), len(want))
	}
	got := map[string]int{}
	for k, v := range m.All() {
		if _, dup := got[k]; dup {
			t.Fatalf("version %d: All yields %s twice", which, k)
		}
		got[k] = v
	}
	if !maps.Equal(got, want) {
		t.Fatalf("version %d: All yields %d entries that differ from the %d wanted", which, len(got), len(want))
	}
	for k, v := range want {
		if g, ok := m.Lookup(k); !ok || g != v {
			t.Fatalf("version %d: Lookup(%s) = %d, %v; want %d", which, k, g, ok, v)
		}
	}
	if _, ok := m.Lookup("absent"); ok {
		t.Fatalf("version %d: Lookup finds an absent key", which)
	}
}

// TestIDMap_ChangeCopiesOneBucket: after a copy, a change copies the array
// of buckets and the one bucket it touches; the other buckets stay shared.
func TestIDMap_ChangeCopiesOneBucket(t *testing.T) {
	var m IDMap[int]
	for i := range 10_000 {
		m.put(0, strconv.Itoa(i), i)
	}
	c := m
	gen := generations.Add(1)
	c.put(gen, "new", -1)
	shared := 0
	for i := range m.buckets {
		if m.buckets[i] == c.buckets[i] {
			shared++
		}
	}
	if &m.buckets[0] == &c.buckets[0] || shared != len(m.buckets)-1 {
		t.Fatalf("after one change %d of %d buckets are shared (array shared: %v), want all but one", shared, len(m.buckets), &m.buckets[0] == &c.buckets[0])
	}
	if _, ok := m.Lookup("new"); ok {
		t.Fatal("the original sees the copy's change")
	}
}
