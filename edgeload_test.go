package iam

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestSet_AddNums: a set built in bulk is the set that adding the same
// ids one at a time makes, whether it started empty or not, with
// duplicates, and on either side of smallSet (a slice or a map).
func TestSet_AddNums(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 7))
	universe := make([]uint32, 4*smallSet)
	for i := range universe {
		universe[i] = names.intern(fmt.Sprintf("add-nums-test-%d", i))
	}
	for round := range 2000 {
		var before []uint32
		if rng.IntN(3) == 0 {
			for range rng.IntN(2 * smallSet) {
				before = append(before, universe[rng.IntN(len(universe))])
			}
		}
		ids := make([]uint32, rng.IntN(3*smallSet))
		for i := range ids {
			ids[i] = universe[rng.IntN(len(universe))]
		}
		var bulk, oneByOne set
		for _, id := range before {
			bulk.addNum(id)
			oneByOne.addNum(id)
		}
		bulk.addNums(ids)
		for _, id := range ids {
			oneByOne.addNum(id)
		}
		if !reflect.DeepEqual(bulk, oneByOne) {
			t.Fatalf("round %d: %d ids in bulk onto %d: got %v, want %v", round, len(ids), len(before), bulk.Sorted(), oneByOne.Sorted())
		}
	}
}
