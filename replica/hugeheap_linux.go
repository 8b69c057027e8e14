package replica

import (
	"runtime"

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

// growHeapFor readies the heap for an index of about rows rows, backed by
// transparent huge pages where the kernel gives them on request (its
// common "madvise" setting). A new process's heap otherwise grows 4 KiB at
// a time as the index fills it: loading the workload snapshot (820k rows)
// took 73k page faults in a process of its own, and a third of its wall
// time. The heap grows once, by one block marked MADV_HUGEPAGE and freed
// at once; the runtime then carves the index's spans from those pages,
// which fault in 2 MiB at a time. It reports whether it did.
//
// It does nothing for a small index, or when the heap has grown that far
// already (its pages are in, or were given back), or holds more than a
// quarter of it: the collection that frees the block would then cost more
// than the faults it saves.
func growHeapFor(rows uint64) bool {
	n := min(rows, maxHugeHeap/heapPerRow) * heapPerRow
	if n < minHugeHeap {
		return false
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapSys >= n || ms.HeapAlloc > n/4 {
		return false
	}
	// The runtime does not zero a block of pages the process has not used
	// yet, so none is faulted in before the advice.
	err := unix.Madvise(make([]byte, n), unix.MADV_HUGEPAGE)
	runtime.GC() // frees the block, whose pages the index takes next
	return err == nil
}
