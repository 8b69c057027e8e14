package api

import (
	"embed"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica/lag"
)

// The lag page: a static HTML/JS/CSS page (api/ui/, embedded) that polls
// GET /ui/lag/data once a second and draws each region's lag as an SVG
// chart. It is public like /metrics: it shows lag figures and tokens, no
// secrets and no error details.

//go:embed ui
var uiFiles embed.FS

const (
	// lagHistoryLen is how many samples the lag page can show: 10 minutes
	// at the lag monitor's one sample a second.
	lagHistoryLen = lag.HistoryLen
	// defaultLagWindow is what the page shows unless asked for more.
	defaultLagWindow = 5 * time.Minute
)

// uiRoutes registers the pages for people (the lag chart).
func (s *Server) uiRoutes(m *http.ServeMux, h handle) {
	static, _ := fs.Sub(uiFiles, "ui")
	files := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	m.Handle("GET /ui/static/", uiHeaders(files))
	m.Handle("GET /ui/lag", uiHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "lag.html")
	})))
	m.Handle("GET /ui/lag/data", uiHeaders(http.HandlerFunc(s.lagData)))
}

// uiHeaders forbids everything the page does not need: it loads its own
// script and style and fetches its own data, nothing else.
func uiHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// lagRegion is one region's row on the page.
type lagRegion struct {
	Region       string  `json:"region"`
	AppliedToken string  `json:"appliedToken"`
	HeadToken    string  `json:"headToken"`
	LagEvents    uint64  `json:"lagEvents"`
	LagSeconds   float64 `json:"lagSeconds"`
	Healthy      bool    `json:"healthy"`
}

// lagPoint is one sample: the time (Unix ms) and each region's lag, in the
// order of lagData.Regions (null where the region was not reported).
type lagPoint struct {
	T          int64      `json:"t"`
	LagSeconds []*float64 `json:"lagSeconds"`
	LagEvents  []*uint64  `json:"lagEvents"`
}

type lagData struct {
	Now           int64       `json:"now"`
	IntervalMs    int64       `json:"intervalMs"`
	WindowSeconds int64       `json:"windowSeconds"`
	MaxLagSeconds float64     `json:"maxLagSeconds"` // 0: no threshold
	Regions       []string    `json:"regions"`
	Current       []lagRegion `json:"current"`
	Samples       []lagPoint  `json:"samples"`
}

// lagData serves GET /ui/lag/data?window=SECONDS: the samples of the last
// window (default 5 minutes, at most the 10 kept) and the latest figures.
func (s *Server) lagData(w http.ResponseWriter, r *http.Request) {
	window := defaultLagWindow
	if v := r.URL.Query().Get("window"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 10 || secs > lagHistoryLen {
			s.writeError(w, r, iam.FieldErrorf("window", "must be a number of seconds from 10 to %d", lagHistoryLen))
			return
		}
		window = time.Duration(secs) * time.Second
	}
	now := s.cfg.Now()
	samples := s.lag.History(now.Add(-window))
	out := lagData{Now: now.UnixMilli(), IntervalMs: time.Second.Milliseconds(), WindowSeconds: int64(window / time.Second),
		MaxLagSeconds: s.cfg.MaxLag.Seconds(), Regions: slices.Clone(s.regions)}
	var current []ReplicaStatus
	if len(samples) > 0 {
		current = samples[len(samples)-1].Statuses
	} else {
		current = s.lag.Measure(r.Context())
	}
	// Every region seen in the window, the local ones first.
	for _, sm := range samples {
		for _, st := range sm.Statuses {
			if !slices.Contains(out.Regions, st.Region) {
				out.Regions = append(out.Regions, st.Region)
			}
		}
	}
	for _, st := range current {
		if !slices.Contains(out.Regions, st.Region) {
			out.Regions = append(out.Regions, st.Region)
		}
		out.Current = append(out.Current, lagRegion{Region: st.Region, AppliedToken: st.AppliedToken, HeadToken: st.HeadToken,
			LagEvents: st.LagEvents, LagSeconds: st.LagSeconds, Healthy: st.Healthy})
	}
	index := map[string]int{}
	for i, r := range out.Regions {
		index[r] = i
	}
	out.Samples = make([]lagPoint, 0, len(samples))
	for _, sm := range samples {
		p := lagPoint{T: sm.At.UnixMilli(), LagSeconds: make([]*float64, len(out.Regions)), LagEvents: make([]*uint64, len(out.Regions))}
		for _, st := range sm.Statuses {
			i := index[st.Region]
			p.LagSeconds[i], p.LagEvents[i] = &st.LagSeconds, &st.LagEvents
		}
		out.Samples = append(out.Samples, p)
	}
	writeJSON(w, http.StatusOK, out)
}
