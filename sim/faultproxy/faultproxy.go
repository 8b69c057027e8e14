// Package faultproxy puts a controllable TCP proxy on a link (a region's
// leaf connection to the hub, in tests and simulations): latency and jitter
// on the bytes that cross it, and cuts. It is a thin layer over
// github.com/Shopify/toxiproxy/v2 used in-process as a library, so delays
// and partitions are real network behaviour that NATS has to live with.
package faultproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxy forwards a loopback listener to one upstream address. Cut closes
// the listener and every connection through it (the peer sees the link
// drop, as with a partition that resets connections); Heal listens again on
// the same address. It is safe for concurrent use.
type Proxy struct {
	mu sync.Mutex
	p  *toxiproxy.Proxy
}

var (
	serverOnce sync.Once
	server     *toxiproxy.ApiServer
)

func apiServer() *toxiproxy.ApiServer {
	serverOnce.Do(func() {
		server = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	})
	return server
}

// New starts a proxy named name from a free loopback port to upstream
// (host:port, or a URL such as nats-leaf://host:port whose host:port is
// used).
func New(name, upstream string) (*Proxy, error) {
	if i := strings.Index(upstream, "://"); i >= 0 {
		upstream = upstream[i+3:]
	}
	p := toxiproxy.NewProxy(apiServer(), name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("faultproxy %s: %w", name, err)
	}
	return &Proxy{p: p}, nil
}

// Addr is the proxy's listening address, host:port.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.p.Listen
}

// Cut drops the link: the listener closes and every connection through it
// is closed.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.Stop()
}

// Heal listens again on the same address.
func (p *Proxy) Heal() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p.Enabled {
		return nil
	}
	if err := p.p.Update(&toxiproxy.Proxy{Listen: p.p.Listen, Upstream: p.p.Upstream, Enabled: true}); err != nil {
		return fmt.Errorf("faultproxy %s: heal: %w", p.p.Name, err)
	}
	return nil
}

// Direction of a toxic: Downstream is upstream → client (hub → region for
// a region's leaf link), Upstream the other way.
const (
	Downstream = "downstream"
	Upstream   = "upstream"
)

// SetLatency delays every chunk crossing the link in the given directions
// by latency ± jitter (uniform), replacing any latency set before. Zero
// latency and jitter remove it.
func (p *Proxy) SetLatency(latency, jitter time.Duration, directions ...string) error {
	if len(directions) == 0 {
		directions = []string{Downstream, Upstream}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, dir := range directions {
		name := "latency_" + dir
		if p.p.Toxics.GetToxic(name) != nil {
			if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
				return fmt.Errorf("faultproxy %s: %w", p.p.Name, err)
			}
		}
		if latency == 0 && jitter == 0 {
			continue
		}
		spec, _ := json.Marshal(map[string]any{
			"name": name, "type": "latency", "stream": dir, "toxicity": 1.0,
			"attributes": map[string]int64{"latency": latency.Milliseconds(), "jitter": jitter.Milliseconds()},
		})
		if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(string(spec))); err != nil {
			return fmt.Errorf("faultproxy %s: add latency: %w", p.p.Name, err)
		}
	}
	return nil
}

// SetBandwidth limits the link to kbps kilobytes per second in the given
// directions (both when none are named); 0 removes the limit.
func (p *Proxy) SetBandwidth(kbps int64, directions ...string) error {
	if len(directions) == 0 {
		directions = []string{Downstream, Upstream}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, dir := range directions {
		name := "bandwidth_" + dir
		if p.p.Toxics.GetToxic(name) != nil {
			if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
				return fmt.Errorf("faultproxy %s: %w", p.p.Name, err)
			}
		}
		if kbps == 0 {
			continue
		}
		spec, _ := json.Marshal(map[string]any{
			"name": name, "type": "bandwidth", "stream": dir, "toxicity": 1.0,
			"attributes": map[string]int64{"rate": kbps},
		})
		if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(string(spec))); err != nil {
			return fmt.Errorf("faultproxy %s: add bandwidth: %w", p.p.Name, err)
		}
	}
	return nil
}

// Close stops the proxy for good.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Toxics are not removed first: removing a bandwidth toxic waits for
	// its link goroutines, which a stopped proxy never finishes (a hang seen
	// in toxiproxy 2.5). A stopped proxy's toxics are dropped with it.
	p.p.Stop()
}

// Link is the set of proxies between one region and the nodes of its hub:
// cutting the link cuts them all.
type Link []*Proxy

// NewLink starts one proxy per upstream, named name-0, name-1, ...
func NewLink(name string, upstreams []string) (Link, error) {
	var l Link
	for i, u := range upstreams {
		p, err := New(fmt.Sprintf("%s-%d", name, i), u)
		if err != nil {
			l.Close()
			return nil, err
		}
		l = append(l, p)
	}
	return l, nil
}

// URLs are the proxies' addresses as scheme://host:port.
func (l Link) URLs(scheme string) []string {
	out := make([]string, len(l))
	for i, p := range l {
		out[i] = scheme + "://" + p.Addr()
	}
	return out
}

// Cut cuts every proxy of the link.
func (l Link) Cut() {
	for _, p := range l {
		p.Cut()
	}
}

// Heal heals every proxy of the link.
func (l Link) Heal() error {
	for _, p := range l {
		if err := p.Heal(); err != nil {
			return err
		}
	}
	return nil
}

// SetLatency sets latency ± jitter on every proxy of the link.
func (l Link) SetLatency(latency, jitter time.Duration, directions ...string) error {
	for _, p := range l {
		if err := p.SetLatency(latency, jitter, directions...); err != nil {
			return err
		}
	}
	return nil
}

// SetBandwidth limits every proxy of the link.
func (l Link) SetBandwidth(kbps int64, directions ...string) error {
	for _, p := range l {
		if err := p.SetBandwidth(kbps, directions...); err != nil {
			return err
		}
	}
	return nil
}

// Close closes every proxy of the link.
func (l Link) Close() {
	for _, p := range l {
		p.Close()
	}
}
