package replica_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/iam-project/iam/replica"
)

// hugeHeapChild names, in a child process's environment, whether it
// readies its heap ("grow") or not ("plain") before filling it.
const hugeHeapChild = "IAM_TEST_HUGE_HEAP"

// TestGrowHeapFor_HugePages: in a new process, a heap readied for an
// index is filled from huge pages where the kernel gives them on request;
// a heap that holds much already, or under a memory limit too low for
// the blocks, is left as it is.
func TestGrowHeapFor_HugePages(t *testing.T) {
	switch os.Getenv(hugeHeapChild) {
	case "grow", "plain":
		fillHeap(t, os.Getenv(hugeHeapChild) == "grow")
		return
	case "limited":
		// A new process, under a memory limit too low to hold the blocks.
		debug.SetMemoryLimit(48 << 20)
		if replica.GrowHeapFor(1 << 20) {
			t.Error("readied 384 MB of heap under a memory limit of 48 MB")
		}
		return
	}
	thp, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || bytes.Contains(thp, []byte("[never]")) {
		t.Skipf("no transparent huge pages here (%q, %v)", thp, err)
	}
	if replica.GrowHeapFor(1000) {
		t.Error("readied the heap for 1,000 rows: too few to pay")
	}
	runChild(t, "limited")
	grown, plain := hugeKB(t, "grow"), hugeKB(t, "plain")
	t.Logf("huge pages under 96 MB of small objects: %d kB readied, %d kB not (%s)", grown, plain, bytes.TrimSpace(thp))
	if grown < 48<<10 {
		t.Errorf("readied heap: %d kB of huge pages under 96 MB of objects, want at least 48 MB", grown)
	}
	if bytes.Contains(thp, []byte("[madvise]")) && plain >= grown/2 {
		t.Errorf("plain heap: %d kB of huge pages against %d readied; the readying made no difference", plain, grown)
	}
}

// runChild runs the test in a child process in mode and returns its
// output; the child's failure fails the test.
func runChild(t *testing.T, mode string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestGrowHeapFor_HugePages$", "-test.count", "1")
	cmd.Env = append(os.Environ(), hugeHeapChild+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", mode, err, out)
	}
	return string(out)
}

// hugeKB runs the test in a child process in mode and returns the kB of
// huge pages its filled heap had.
func hugeKB(t *testing.T, mode string) int {
	t.Helper()
	out := runChild(t, mode)
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "anon-huge-kb "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("child %s: %q", mode, line)
			}
			return n
		}
	}
	t.Fatalf("child %s gave no figure:\n%s", mode, out)
	return 0
}

// fillHeap fills a new process's heap with 96 MB of small objects, as an
// index load does, readying it first if grow (after leaving freed pages
// where the heap grows), and prints the kB of huge pages the process then
// has.
func fillHeap(t *testing.T, grow bool) {
	const objects = 96 << 20 / 64
	leaveFreedPages()
	if grow && !replica.GrowHeapFor(objects*64/384*2) {
		t.Fatal("a new process did not ready its heap")
	}
	keep := make([]*[8]uint64, objects)
	for i := range keep {
		keep[i] = &[8]uint64{uint64(i)} // written, so its page is in
	}
	if replica.GrowHeapFor(objects * 64 / 384 * 2) {
		t.Error("readied a heap that holds 96 MB already")
	}
	kb := anonHugeKB(t)
	fmt.Printf("anon-huge-kb %d\n", kb)
	if keep[len(keep)-1][0] != objects-1 {
		t.Fatal("objects lost")
	}
}

// leaveFreedPages leaves pages the heap has used, and freed, where it
// grows next, as a join's download does: the runtime zeroes whatever it
// lays over them again.
func leaveFreedPages() {
	used := make([][]byte, 24) // held together, so that they take 6 MB
	for i := range used {
		used[i] = bytes.Repeat([]byte{1}, 256<<10)
	}
	runtime.KeepAlive(used)
	runtime.GC()
}

// anonHugeKB returns the kB of anonymous huge pages the process has.
func anonHugeKB(t *testing.T) int {
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "AnonHugePages:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("AnonHugePages: %q", v)
			}
			return n
		}
	}
	t.Fatal("no AnonHugePages in /proc/self/smaps_rollup")
	return 0
}
