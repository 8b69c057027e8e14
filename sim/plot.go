package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/common/expfmt"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/iam-project/iam/api/client"
)

// Report files written by WriteReport.
const (
	FileJSON        = "report.json"
	FileSummary     = "summary.txt"
	FileMetrics     = "metrics.txt"
	FileHTML        = "index.html"
	FilePropagation = "propagation_cdf.png"
	FileLag         = "lag.png"
	FileRetries     = "retries.png"
)

// ReportFiles lists what WriteReport writes.
var ReportFiles = []string{FileJSON, FileSummary, FileMetrics, FileHTML, FilePropagation, FileLag, FileRetries}

// WriteReport writes the report to dir: report.json (every figure),
// summary.txt, metrics.txt (Prometheus text format), three PNG plots
// (propagation and time-to-revoke CDFs; lag over time with fault windows
// shaded; retries over time by cause) and index.html showing them.
func WriteReport(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, FileJSON), data, 0o644); err != nil {
		return err
	}
	var sum bytes.Buffer
	r.WriteSummary(&sum)
	if err := os.WriteFile(filepath.Join(dir, FileSummary), sum.Bytes(), 0o644); err != nil {
		return err
	}
	var mt bytes.Buffer
	if r.metrics != nil {
		mfs, err := r.metrics.Registry.Gather()
		if err != nil {
			return err
		}
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&mt, mf); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, FileMetrics), mt.Bytes(), 0o644); err != nil {
		return err
	}
	for name, mk := range map[string]func(*Report) (*plot.Plot, error){
		FilePropagation: plotPropagation, FileLag: plotLag, FileRetries: plotRetries,
	} {
		p, err := mk(r)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		if err := p.Save(10*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
	}
	return writeHTML(filepath.Join(dir, FileHTML), r, sum.String())
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	return p
}

// plotPropagation draws each region's propagation CDF and the
// time-to-revoke CDF, on a log scale of milliseconds.
func plotPropagation(r *Report) (*plot.Plot, error) {
	p := newPlot(fmt.Sprintf("%s: propagation (ack → applied) per region, and time-to-revoke", r.Scenario.Name),
		"delay (ms, log scale)", "fraction of writes / revokes")
	p.Legend.Top = false // the curves leave the bottom right empty
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	line := func(d Dist, i int, name string, dashed bool) error {
		if len(d.CDF) == 0 {
			return nil
		}
		pts := make(plotter.XYs, 0, len(d.CDF)+1)
		pts = append(pts, plotter.XY{X: math.Max(ms(d.CDF[0].Value), 0.01), Y: 0})
		for _, c := range d.CDF {
			pts = append(pts, plotter.XY{X: math.Max(ms(c.Value), 0.01), Y: c.Fraction})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width = plotutil.Color(i), vg.Points(1.5)
		if dashed {
			l.Color, l.Dashes = color.Black, []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	for i, region := range r.Regions {
		d := r.Propagation[region]
		if err := line(d, i, fmt.Sprintf("%s (p99 %s)", region, fmtD(d.P99)), false); err != nil {
			return nil, err
		}
	}
	t := r.TimeToRevoke.All
	if err := line(t, 0, fmt.Sprintf("time-to-revoke (p99 %s)", fmtD(t.P99)), true); err != nil {
		return nil, err
	}
	return p, nil
}

// shadeFaults adds each fault window (and its recovery, lighter) as a
// band from 0 to top.
func shadeFaults(p *plot.Plot, r *Report, top float64) error {
	band := func(a, b float64, c color.Color) error {
		if b <= a {
			b = a + 0.05 // an instant (a reset) as a thin band
		}
		poly, err := plotter.NewPolygon(plotter.XYs{{X: a, Y: 0}, {X: b, Y: 0}, {X: b, Y: top}, {X: a, Y: top}})
		if err != nil {
			return err
		}
		poly.Color, poly.LineStyle.Width, poly.LineStyle.Color = c, 0, color.Transparent
		p.Add(poly)
		return nil
	}
	var legend bool
	for _, f := range r.Faults {
		c := color.NRGBA{R: 230, G: 60, B: 60, A: 70}
		if !(Fault{Kind: f.Kind}).Disruptive() {
			c = color.NRGBA{R: 60, G: 60, B: 230, A: 30}
		}
		if err := band(f.Start.D().Seconds(), f.End.D().Seconds(), c); err != nil {
			return err
		}
		if f.Recovered > f.End {
			if err := band(f.End.D().Seconds(), f.Recovered.D().Seconds(), color.NRGBA{R: 240, G: 160, B: 40, A: 70}); err != nil {
				return err
			}
		}
		if !legend && (Fault{Kind: f.Kind}).Disruptive() {
			legend = true
			l, _ := plotter.NewPolygon(plotter.XYs{{}, {}, {}})
			l.Color = c
			p.Legend.Add("fault (red) / until current again (orange)", l)
		}
	}
	// Labels of the faults along the top.
	var pts plotter.XYs
	var labels []string
	for _, f := range r.Faults {
		pts = append(pts, plotter.XY{X: f.Start.D().Seconds(), Y: top * 0.97})
		name := f.Kind
		for _, reg := range f.Regions {
			name += " " + reg
		}
		if f.Node != "" {
			name += " " + f.Node
		}
		labels = append(labels, name)
	}
	if len(pts) > 0 {
		ls, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
		if err != nil {
			return err
		}
		for i := range ls.TextStyle {
			ls.TextStyle[i].Font.Size = vg.Points(8)
		}
		p.Add(ls)
	}
	return nil
}

// plotLag draws each region's lag over time: measured (age of the oldest
// acknowledged write it had not applied) as lines, the region's own
// lagSeconds from GET /v1/replicas as dashed lines.
func plotLag(r *Report) (*plot.Plot, error) {
	p := newPlot(fmt.Sprintf("%s: lag per region over time (faults shaded)", r.Scenario.Name), "time since start (s)", "lag (s)")
	top := 0.05
	for _, pts := range r.Lag {
		for _, v := range pts {
			top = max(top, v.Value)
		}
	}
	for _, pts := range r.ServerLag {
		for _, v := range pts {
			top = max(top, v.Value)
		}
	}
	top *= 1.15
	if err := shadeFaults(p, r, top); err != nil {
		return nil, err
	}
	for i, region := range r.Regions {
		add := func(series []SeriesPoint, dashed bool, name string) error {
			if len(series) == 0 {
				return nil
			}
			xy := make(plotter.XYs, len(series))
			for k, s := range series {
				xy[k] = plotter.XY{X: s.At.D().Seconds(), Y: s.Value}
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return err
			}
			l.Color, l.Width = plotutil.Color(i), vg.Points(1.5)
			if dashed {
				l.Width, l.Dashes = vg.Points(1), []vg.Length{vg.Points(3), vg.Points(3)}
			}
			p.Add(l)
			p.Legend.Add(name, l)
			return nil
		}
		if err := add(r.Lag[region], false, region+" measured"); err != nil {
			return nil, err
		}
		if err := add(r.ServerLag[region], true, region+" /v1/replicas"); err != nil {
			return nil, err
		}
	}
	p.Y.Min, p.Y.Max = 0, top
	p.X.Min = 0
	return p, nil
}

// plotRetries draws the workload clients' retries per second by cause,
// and failovers, over time.
func plotRetries(r *Report) (*plot.Plot, error) {
	bucket := r.Retries.BucketLen.D()
	if bucket <= 0 {
		bucket = 250 * time.Millisecond
	}
	p := newPlot(fmt.Sprintf("%s: client retries per second by cause (backoff %s×%g up to %s, jitter %g)", r.Scenario.Name,
		fmtD(r.Scenario.Backoff.Initial), r.Scenario.Backoff.Multiplier, fmtD(r.Scenario.Backoff.MaxInterval), r.Scenario.Backoff.jitter()),
		"time since start (s)", "retries / s")
	top := 1.0
	perSec := func(n int) float64 { return float64(n) / bucket.Seconds() }
	for _, b := range r.Retries.Timeline {
		var n int
		for _, c := range b.ByCause {
			n = max(n, c)
		}
		top = max(top, perSec(n), perSec(b.Failovers))
	}
	top *= 1.15
	if err := shadeFaults(p, r, top); err != nil {
		return nil, err
	}
	series := func(get func(RetryBucket) int) plotter.XYs {
		xy := make(plotter.XYs, len(r.Retries.Timeline))
		for i, b := range r.Retries.Timeline {
			xy[i] = plotter.XY{X: b.At.D().Seconds() + bucket.Seconds()/2, Y: perSec(get(b))}
		}
		return xy
	}
	causes := make([]string, 0, len(client.Causes))
	for _, c := range client.Causes {
		causes = append(causes, string(c))
	}
	sort.Strings(causes)
	for i, c := range causes {
		cf := r.Retries.ByCause[c]
		if cf == nil || cf.Retries+cf.Failovers == 0 {
			continue
		}
		l, err := plotter.NewLine(series(func(b RetryBucket) int { return b.ByCause[c] }))
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = plotutil.Color(i), vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (%d, wait p50 %s)", c, cf.Retries+cf.Failovers, fmtD(cf.Delay.P50)), l)
	}
	l, err := plotter.NewLine(series(func(b RetryBucket) int { return b.Failovers }))
	if err != nil {
		return nil, err
	}
	l.Color, l.Width, l.Dashes = color.Black, vg.Points(1), []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(l)
	p.Legend.Add("of which failovers", l)
	p.Y.Min, p.Y.Max, p.X.Min = 0, top, 0
	p.Legend.ThumbnailWidth = vg.Points(20)
	return p, nil
}

var page = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>iamsim: {{.R.Scenario.Name}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.ok{color:#17702c}.fail{color:#b00020;font-weight:bold}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
</style></head><body>
<h1>iamsim: {{.R.Scenario.Name}} — <span class="{{if .R.Pass}}ok{{else}}fail{{end}}">{{if .R.Pass}}PASS{{else}}FAIL{{end}}</span></h1>
<p>{{.R.Scenario.Description}}</p>
<p>Started {{.R.Started.Format "2006-01-02 15:04:05"}}; seed {{.R.Scenario.Seed}}; hub of {{.R.Scenario.Hub.Nodes}} node(s); regions {{range $i, $r := .R.Regions}}{{if $i}}, {{end}}{{$r}}{{end}}.
Figures: <a href="report.json">report.json</a>, metrics: <a href="metrics.txt">metrics.txt</a>, summary: <a href="summary.txt">summary.txt</a>.</p>
<h2>SLOs</h2>
<table><tr><th>assertion</th><th>target</th><th>got</th><th></th></tr>
{{range .R.SLOs}}<tr><td>{{.Name}}</td><td>{{.Target}}</td><td>{{.Got}}</td><td class="{{if .OK}}ok{{else}}fail{{end}}">{{if .OK}}ok{{else}}FAIL{{end}}</td></tr>
{{end}}</table>
<h2>Propagation and time-to-revoke</h2><img src="propagation_cdf.png" alt="propagation CDF per region">
<h2>Lag over time</h2><img src="lag.png" alt="lag per region over time, faults shaded">
<h2>Retries over time</h2><img src="retries.png" alt="client retries per second by cause">
<h2>Summary</h2><pre>{{.Summary}}</pre>
{{if .R.Violations}}<h2>Violations</h2><ul>{{range .R.Violations}}<li>{{.}}</li>{{end}}</ul>{{end}}
</body></html>
`))

func writeHTML(path string, r *Report, summary string) error {
	var b bytes.Buffer
	if err := page.Execute(&b, map[string]any{"R": r, "Summary": summary}); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
