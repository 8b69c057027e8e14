package replica

import (
	"errors"
	"fmt"
	"testing"
)

// TestIngestRows_GeneratorFails: when the walk that makes a bulk catch-up's
// rows fails part way, after it handed over several chunks (some written
// into sstables already), the ingest fails with its error and the store
// keeps nothing, neither a row nor the position. When it does not fail,
// the store holds every row and the position.
func TestIngestRows_GeneratorFails(t *testing.T) {
	broken := errors.New("a row listed but absent")
	const n = 3 * rowChunkSize / 100 // three chunks of rows of 100 bytes
	for _, fail := range []bool{true, false} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenStore(dir, StoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.ingestRows(dir, nil, Position{Seq: 7, MsgID: "m7"}, func(emit func(k, v []byte) error) error {
				v := make([]byte, 100)
				for i := range n {
					if err := emit(fmt.Appendf(nil, "2r\x00u%08d", i), v); err != nil {
						return err
					}
				}
				if fail {
					return broken
				}
				return nil
			})
			if fail {
				if !errors.Is(err, broken) {
					t.Fatalf("ingest: %v, want the walk's error", err)
				}
				if err := s.requireEmpty(); err != nil {
					t.Fatalf("after the walk failed: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rows := 0
			if err := s.Scan(func(string, []byte) error { rows++; return nil }); err != nil {
				t.Fatal(err)
			}
			if pos, err := s.Position(); err != nil || pos.Seq != 7 || rows != n {
				t.Fatalf("position %+v (%v), %d rows; want 7, %d", pos, err, rows, n)
			}
		})
	}
}
