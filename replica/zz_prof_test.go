package replica_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/iam-project/iam/replica"
)

func TestProfLoad(t *testing.T) {
	if os.Getenv("PROF") == "" { t.Skip() }
	dir := filepath.Join(t.TempDir(), "src")
	rep, _ := replica.Open(replica.Config{Region: "b", Dir: dir})
	if os.Getenv("PROF") == "grow" {
		applyAll(t, rep, newBenchData(90709).entries, 512)
	} else {
		applyAll(t, rep, newWorkload(t, 11, 1_000_000).entries, 512)
	}
	_, data := writeSnapshot(t, rep, "")
	rep.Close()
	runtime.GC()
	for i, m := range []string{"ingest", "batch", "ingest"} {
		dst, _ := replica.Open(replica.Config{Region: "b", Dir: filepath.Join(t.TempDir(), "dst")})
		runtime.GC()
		var f *os.File
		if i == 2 {
			f, _ = os.Create("/tmp/prof/load.pprof")
			pprof.StartCPUProfile(f)
		}
		t0 := time.Now()
		if _, err := dst.LoadSnapshot(context.Background(), bytes.NewReader(data), replica.LoadOptions{Method: m}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: load with index %s", m, time.Since(t0))
		if f != nil { pprof.StopCPUProfile() }
		dst.Close()
		t0 = time.Now()
		_, err := replica.LoadSnapshot(context.Background(), filepath.Join(t.TempDir(), "p"), bytes.NewReader(data), replica.LoadOptions{Method: m})
		if err != nil { t.Fatal(err) }
		t.Logf("%s: load pebble only %s", m, time.Since(t0))
	}
}
