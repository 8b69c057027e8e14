//go:build !linux

package replica

// growHeapFor does nothing where there are no transparent huge pages.
func growHeapFor(uint64) bool { return false }
