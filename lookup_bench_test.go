package iam_test

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLookupSubjects measures a first page of 100 subjects of "who
// can" against the 100k-identity state of BenchmarkCheck (1M direct policy
// attachments), and reports the p50 and p99 of its latency. The lookups
// are a mix: a resource of one policy's own pattern (held by ~100
// identities directly and some groups), one that 100 policies share
// (~10k holders), a team resource that 20 policies share, a resource
// nobody holds, and a project resource scoped to its project (read by the
// 50 of its 100 members given the project readers' policy).
func BenchmarkLookupSubjects(b *testing.B) {
	bw := buildBench(b)
	runtime.GC() // the build's garbage is not the lookup's to collect
	rng := rand.New(rand.NewPCG(3, 4))
	type lookup struct{ name, action, resource, scope string }
	var lookups []lookup
	for range 64 {
		p := rng.IntN(benchProjects)
		lookups = append(lookups,
			lookup{"own", "read", data("ds-" + strconv.Itoa(rng.IntN(benchPolicies)) + "-x"), ""},
			lookup{"shared", "read", data("shared-" + strconv.Itoa(rng.IntN(100))), ""},
			lookup{"team", "write", data("team-" + strconv.Itoa(rng.IntN(500)) + "-x"), ""},
			lookup{"nobody", "read", data("nobody-" + strconv.Itoa(rng.IntN(1000))), ""},
			lookup{"scoped", "read", data("p" + strconv.Itoa(p) + "-res0"), benchProject(p)},
		)
	}
	for _, kind := range []string{"own", "shared", "team", "nobody", "scoped"} {
		b.Run(kind, func(b *testing.B) {
			var qs []lookup
			for _, l := range lookups {
				if l.name == kind {
					qs = append(qs, l)
				}
			}
			var lat []time.Duration
			found := 0
			i := 0
			for b.Loop() {
				q := qs[i%len(qs)]
				start := time.Now()
				got, _ := bw.s.LookupSubjects(realm, q.action, q.resource, q.scope, "", 100)
				lat = append(lat, time.Since(start))
				found += len(got)
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(found)/float64(i), "subjects/op")
		})
	}
}
