package load

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Target is one endpoint to drive: every request POSTs one of Bodies (in
// turn) to URL with Header.
type Target struct {
	Name   string
	URL    string
	Header http.Header
	Bodies [][]byte
	// TLS is the client's configuration for an https URL.
	TLS *tls.Config
	// Checks is the checks each request asks (a boxcar's items); 0 is 1.
	Checks int
}

// Options shape a run.
type Options struct {
	// Conns is the number of concurrent closed-loop workers, each with its
	// own keep-alive connection. Default 32.
	Conns int
	// Duration is how long requests are measured. Default 5s.
	Duration time.Duration
	// Warmup runs before the measurement and is not counted. Default 500ms.
	Warmup time.Duration
}

func (o *Options) defaults() {
	if o.Conns <= 0 {
		o.Conns = 32
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	} else if o.Warmup == 0 {
		o.Warmup = 500 * time.Millisecond
	}
}

// Result is one target's figures.
type Result struct {
	Name     string
	Requests int // answered 200 within the measured window
	Checks   int // checks per request (Target.Checks)
	Failures int // transport errors and non-200 answers
	Elapsed  time.Duration
	P50, P99 time.Duration
	// FirstFailure describes the first failure, if any.
	FirstFailure string

	lat []time.Duration // sorted
}

// Merge adds the figures of another run of the same target.
func (r Result) Merge(o Result) Result {
	if r.Name == "" {
		r.Name, r.Checks = o.Name, o.Checks
	}
	r.Requests += o.Requests
	r.Failures += o.Failures
	r.Elapsed += o.Elapsed
	if r.FirstFailure == "" {
		r.FirstFailure = o.FirstFailure
	}
	r.lat = append(slices.Clone(r.lat), o.lat...)
	slices.Sort(r.lat)
	r.P50, r.P99 = quantile(r.lat, 0.50), quantile(r.lat, 0.99)
	return r
}

// Rate is the checks answered per second: requests times the checks
// each asks.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests*max(r.Checks, 1)) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	return fmt.Sprintf("%-11s %9.0f checks/s  p50 %8s  p99 %8s  (%d ok, %d failed, %s)",
		r.Name, r.Rate(), r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Requests, r.Failures, r.Elapsed.Round(time.Millisecond))
}

// Run drives t with o.Conns closed-loop workers: each sends a request,
// reads the whole answer and sends the next, over one keep-alive
// connection (HTTP/1.1, also over TLS: one handshake per connection, then
// resumed use, as a pooling client does). It returns when ctx ends or o.Duration has passed.
func Run(ctx context.Context, t Target, o Options) (Result, error) {
	o.defaults()
	if len(t.Bodies) == 0 {
		return Result{}, errors.New("load: a target needs at least one body")
	}
	transport := &http.Transport{MaxIdleConns: o.Conns, MaxIdleConnsPerHost: o.Conns, MaxConnsPerHost: o.Conns, IdleConnTimeout: time.Minute,
		TLSClientConfig: t.TLS}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now().Add(o.Warmup)
	end := start.Add(o.Duration)
	type worker struct {
		lat      []time.Duration
		failures int
		first    string
	}
	workers := make([]worker, o.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &workers[i]
			w.lat = make([]time.Duration, 0, 1<<14)
			for n := i; ctx.Err() == nil; n += o.Conns {
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(t.Bodies[n%len(t.Bodies)]))
				if err != nil {
					w.failures++
					return
				}
				req.Header = t.Header.Clone()
				resp, err := client.Do(req)
				var status int
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				t1 := time.Now()
				if t0.Before(start) || t1.After(end) {
					continue // warmup, or past the window
				}
				if err != nil || status != http.StatusOK {
					if ctx.Err() != nil {
						return
					}
					w.failures++
					if w.first == "" {
						w.first = fmt.Sprintf("status %d, err %v", status, err)
					}
					continue
				}
				w.lat = append(w.lat, t1.Sub(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := min(time.Since(start), o.Duration)
	res := Result{Name: t.Name, Checks: max(t.Checks, 1), Elapsed: elapsed}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		res.Failures += w.failures
		if res.FirstFailure == "" {
			res.FirstFailure = w.first
		}
	}
	res.Requests = len(all)
	slices.Sort(all)
	res.lat = all
	res.P50, res.P99 = quantile(all, 0.50), quantile(all, 0.99)
	return res, ctx.Err()
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
