package logsign_test

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/iam-project/iam/eventlog/logsign"
)

func ring(t testing.TB, keys int) *logsign.Ring {
	t.Helper()
	var r logsign.Ring
	for range keys {
		if err := r.Rotate(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return &r
}

func TestVerifier_Verify(t *testing.T) {
	r := ring(t, 1)
	v, err := logsign.NewVerifier(r.Public())
	if err != nil {
		t.Fatal(err)
	}
	m := logsign.Entry("iam.evt.r1.commit", "id1", logsign.Expect("r1", 7), []byte(`[{"events":[]}]`))
	sig := r.Signer().Sign(m)
	other := ring(t, 1).Signer().Sign(m)
	tests := []struct {
		name string
		sig  string
		m    logsign.Message
		want error
	}{
		{"Genuine", sig, m, nil},
		{"Unsigned", "", m, logsign.ErrUnsigned},
		{"OtherKey", other, m, logsign.ErrForged},
		{"Malformed", "nokid", m, logsign.ErrForged},
		{"Subject", sig, logsign.Entry("iam.evt.r2.commit", m.MsgID, m.Expect, m.Body), logsign.ErrForged},
		{"MsgID", sig, logsign.Entry(m.Subject, "id2", m.Expect, m.Body), logsign.ErrForged},
		{"Expect", sig, logsign.Entry(m.Subject, m.MsgID, logsign.Expect("r1", 8), m.Body), logsign.ErrForged},
		{"Body", sig, logsign.Entry(m.Subject, m.MsgID, m.Expect, []byte(`[]`)), logsign.ErrForged},
		// The same fields as a snapshot's message do not verify.
		{"Domain", r.Signer().SignSnapshot(7, "id1", 1, "ab"), logsign.Snapshot(7, "id1", 1, "ab"), nil},
		{"SnapshotAsEntry", r.Signer().SignSnapshot(7, "id1", 1, "ab"), logsign.Entry("", "id1", "7 1", []byte("ab")), logsign.ErrForged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(tc.sig, tc.m)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify: got %v, want %v", err, tc.want)
			}
		})
	}
}

// After a rotation the newest key signs and every key still verifies; the
// sealed form and the public-key file round-trip.
func TestRing_Rotate(t *testing.T) {
	r := ring(t, 1)
	m := logsign.Entry("iam.evt.r1.commit", "id1", "", nil)
	old := r.Signer().Sign(m)
	if err := r.Rotate(time.Now()); err != nil {
		t.Fatal(err)
	}
	if r.Signer().Kid() != r.Keys[1].ID {
		t.Fatalf("signer: got kid %s, want the newest %s", r.Signer().Kid(), r.Keys[1].ID)
	}
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := logsign.UnmarshalRing(data)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "log-keys.pub.json")
	if err := logsign.WritePublicKeys(path, r2.Public()); err != nil {
		t.Fatal(err)
	}
	v, err := logsign.LoadPublicKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{old, r2.Signer().Sign(m)} {
		if err := v.Verify(sig, m); err != nil {
			t.Errorf("Verify %s: got %v, want nil", sig[:10], err)
		}
	}
}

// BenchmarkVerify is the cost of verifying one entry's signature, by body
// size (a single-event commit is about 200 bytes).
func BenchmarkVerify(b *testing.B) {
	r := ring(b, 1)
	v, err := logsign.NewVerifier(r.Public())
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{256, 4096, 64 << 10} {
		m := logsign.Entry("iam.evt.r1.commit", "0123456789abcdefghijkl", logsign.Expect("r1", 12345), make([]byte, size))
		sig := r.Signer().Sign(m)
		b.Run(byteSize(size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Verify(sig, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	s := ring(b, 1).Signer()
	m := logsign.Entry("iam.evt.r1.commit", "0123456789abcdefghijkl", logsign.Expect("r1", 12345), make([]byte, 256))
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Sign(m)
	}
}

func byteSize(n int) string {
	if n >= 1024 {
		return strconv.Itoa(n/1024) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
