package iam

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
)

// TestSet_AgainstMap drives a set with random adds and removes over ids
// enough to cross smallSet both ways and checks it against a plain map
// after each step: same members, and the same representation as a set
// built afresh from those members in another order (replay and a load from
// rows must compare equal).
func TestSet_AgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 6))
	universe := make([]string, 3*smallSet)
	for i := range universe {
		universe[i] = fmt.Sprintf("set-test-%d", i)
	}
	var s set
	model := map[string]bool{}
	for step := range 5000 {
		k := universe[rng.IntN(len(universe))]
		if rng.IntN(2) == 0 {
			s.add(k)
			model[k] = true
		} else {
			s.remove(k)
			delete(model, k)
		}
		want := make([]string, 0, len(model))
		for k := range model {
			want = append(want, k)
		}
		sort.Strings(want)
		if got := s.Sorted(); !slices.Equal(got, want) {
			t.Fatalf("step %d: got %v, want %v", step, got, want)
		}
		if s.Len() != len(want) {
			t.Fatalf("step %d: Len %d, want %d", step, s.Len(), len(want))
		}
		for _, k := range universe {
			if s.Has(k) != model[k] {
				t.Fatalf("step %d: Has(%s) = %v, want %v", step, k, s.Has(k), model[k])
			}
		}
		var fresh set
		for _, i := range rng.Perm(len(want)) {
			fresh.add(want[i])
		}
		if !reflect.DeepEqual(s, fresh) {
			t.Fatalf("step %d: the set and one built afresh with the same %d ids differ", step, len(want))
		}
	}
}

// TestSet_ReadsDoNotIntern: checks carry whatever ids callers send; asking
// a set about an id must not grow the process-wide table.
func TestSet_ReadsDoNotIntern(t *testing.T) {
	var s set
	s.add("set-test-known")
	before := len(names.snapshot())
	for i := range 100 {
		unknown := fmt.Sprintf("set-test-never-added-%d", i)
		if s.Has(unknown) {
			t.Fatalf("Has(%s) on a set without it", unknown)
		}
		s.remove(unknown)
	}
	if after := len(names.snapshot()); after != before {
		t.Errorf("table grew from %d to %d ids on reads and removes of unknown ids", before, after)
	}
}
