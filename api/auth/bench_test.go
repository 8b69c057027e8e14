package auth_test

import (
	"testing"

	"github.com/iam-project/iam/api/auth"
)

// BenchmarkHash measures argon2id settings considered for DefaultHashParams:
// OWASP's m=46MiB,t=1 and m=19MiB,t=2 (the default), two cheaper OWASP
// equivalents, and the test-only LowCostHashParams.
func BenchmarkHash(b *testing.B) {
	p := func(m, t uint32) auth.HashParams {
		return auth.HashParams{Time: t, MemoryKiB: m, Threads: 1, KeyLen: 32, SaltLen: 16}
	}
	for _, bc := range []struct {
		name string
		p    auth.HashParams
	}{
		{"m=46MiB,t=1,p=1", p(46*1024, 1)},
		{"m=19MiB,t=2,p=1/default", auth.DefaultHashParams()},
		{"m=12MiB,t=3,p=1", p(12*1024, 3)},
		{"m=7MiB,t=5,p=1", p(7*1024, 5)},
		{"m=64KiB,t=1,p=1/lowcost", auth.LowCostHashParams()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := auth.Hash("correct horse battery staple", bc.p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/hash")
		})
	}
}
