package replica

import (
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// The heap growHeapFor readies: heapPerRow per row of the index (the
// workload snapshot's 820k rows took 295 MB), between minHugeHeap, below
// which its faults cost little, and maxHugeHeap, beyond which the heap
// grows as it would have.
const (
	heapPerRow  = 384
	minHugeHeap = 32 << 20
	maxHugeHeap = 1 << 30
)

// readyBlock is the size of the blocks growHeapFor takes. The runtime
// zeroes a block laid over pages the heap has used before, which faults it
// in 4 KiB at a time before the advice comes. One block for the whole
// heap was zeroed whole whenever freed pages lay where it began (a join's
// download leaves some), and got no huge page; small blocks confine that
// to the few laid over such pages.
const readyBlock = 4 << 20

// growHeapFor readies the heap for an index of about rows rows, backed by
// transparent huge pages where the kernel gives them on request (its
// common "madvise" setting). A new process's heap otherwise grows 4 KiB at
// a time as the index fills it: loading the workload snapshot (820k rows)
// took 73k page faults in a process of its own, and a third of its wall
// time. The heap grows once, by blocks marked MADV_HUGEPAGE and freed at
// once; the runtime then carves the index's spans from those pages, which
// fault in 2 MiB at a time. It reports whether it did.
//
// It does nothing for a small index (or under a memory limit that leaves
// room for little), or when the heap has grown that far already (its
// pages are in, or were given back), or holds more than a quarter of it:
// the collection that frees the blocks would then cost more than the
// faults it saves.
func growHeapFor(rows uint64) bool {
	n := min(rows, maxHugeHeap/heapPerRow) * heapPerRow
	// Blocks beyond half a memory limit (GOMEMLIMIT) would have the
	// collector run without end while they are held.
	n = min(n, uint64(max(debug.SetMemoryLimit(-1), 0))/2)
	if n < minHugeHeap {
		return false
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapSys >= n || ms.HeapAlloc > n/4 {
		return false
	}
	blocks := make([][]byte, 0, n/readyBlock)
	for range n / readyBlock {
		blocks = append(blocks, make([]byte, readyBlock))
	}
	var err error
	for _, b := range blocks {
		if err = unix.Madvise(b, unix.MADV_HUGEPAGE); err != nil {
			break
		}
	}
	// blocks is dead here: the collection frees them, and the index takes
	// their pages next.
	runtime.GC()
	return err == nil
}
