package sim

import (
	"math"
	"slices"
	"time"
)

// Dist summarizes a set of durations.
type Dist struct {
	N    int      `json:"n"`
	Min  Duration `json:"min"`
	P50  Duration `json:"p50"`
	P90  Duration `json:"p90"`
	P99  Duration `json:"p99"`
	Max  Duration `json:"max"`
	Mean Duration `json:"mean"`
	// CDF has at most 200 points (value, share of samples at or below it).
	CDF []CDFPoint `json:"cdf,omitempty"`
}

// CDFPoint is one point of an empirical CDF.
type CDFPoint struct {
	Value    Duration `json:"value"`
	Fraction float64  `json:"fraction"`
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func newDist(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	d := Dist{N: len(s), Min: Duration(s[0]), P50: Duration(percentile(s, 0.5)), P90: Duration(percentile(s, 0.9)),
		P99: Duration(percentile(s, 0.99)), Max: Duration(s[len(s)-1]), Mean: Duration(sum / time.Duration(len(s)))}
	step := max(1, len(s)/200)
	for i := 0; i < len(s); i += step {
		d.CDF = append(d.CDF, CDFPoint{Duration(s[i]), float64(i+1) / float64(len(s))})
	}
	if last := d.CDF[len(d.CDF)-1]; last.Fraction < 1 {
		d.CDF = append(d.CDF, CDFPoint{Duration(s[len(s)-1]), 1})
	}
	return d
}

// overlaps reports whether [a, b] meets any window in ws.
func overlaps(ws []FaultWindow, a, b Duration) bool {
	for _, w := range ws {
		if a <= w.End && w.Start <= b {
			return true
		}
	}
	return false
}

func ms(d Duration) float64 { return float64(d) / float64(time.Millisecond) }
