// Package bus is request/reply and publish/subscribe between iamd
// processes over the NATS connection each already has: how regions relay
// writes to the hub and tell each other their lag.
package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/iam-project/iam"
)

// Subjects of the core-NATS messages iamd processes exchange besides the
// log. They cross leaf connections like any subject.
const (
	// RPCSubject carries requests forwarded by regions to the hub; hub
	// processes answer in queue group RPCQueue, so each request is served
	// once, by whichever hub process is up.
	RPCSubject = "iam.rpc.http"
	RPCQueue   = "iam-hub"
	// KeysSubject carries a region's requests for the keys of personal
	// data (keyvault.Remote), answered by hub processes in RPCQueue.
	KeysSubject = "iam.rpc.keys"
	// StatusSubjectPrefix + "." + region carries each region's periodic
	// replica status.
	StatusSubjectPrefix = "iam.status"
)

// DefaultMaxInFlight bounds the requests a Bus serves at once.
const DefaultMaxInFlight = 256

// Bus is request/reply and publish/subscribe over one NATS connection.
// Messages are opaque bytes to it. It is safe for
// concurrent use.
type Bus struct {
	nc *nats.Conn
	// MaxInFlight bounds concurrent handlers of Serve. Default
	// DefaultMaxInFlight.
	MaxInFlight int

	mu    sync.Mutex
	subs  []*nats.Subscription
	stops []func()
}

// New returns a Bus over nc. Close it to drop its subscriptions.
func New(nc *nats.Conn) *Bus { return &Bus{nc: nc, MaxInFlight: DefaultMaxInFlight} }

// Request sends data on subject and waits for one reply, until ctx ends.
//
// Errors: unavailable when nobody serves the subject (a region cut off from
// its hub learns it at once: "no responders"), when the connection is down,
// or when no reply came before ctx's deadline (then the request may or may
// not have been served).
func (b *Bus) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	m, err := b.nc.RequestWithContext(ctx, subject, data)
	if err == nil {
		return m.Data, nil
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("request %s: %w", subject, iam.Errorf(iam.EUnavailable, "the hub is not reachable (no responders)"))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, fmt.Errorf("request %s: %w", subject, iam.Errorf(iam.EUnavailable, "the hub did not answer in time; the outcome is unknown"))
	case errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("request %s: %w", subject, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected):
		return nil, fmt.Errorf("request %s: %w", subject, iam.Errorf(iam.EUnavailable, "not connected to the message bus"))
	}
	return nil, fmt.Errorf("request %s: %w", subject, err)
}

// Serve answers requests on subject in queue group queue with fn's reply;
// what a JetStream consumer pushed there is no request (streamDelivery).
// Each request runs in its own goroutine (at most MaxInFlight at once; more
// wait), with a context that stop (or Close) cancels. stop ends serving and
// waits for the requests in flight.
func (b *Bus) Serve(subject, queue string, fn func(ctx context.Context, data []byte) []byte) (stop func(), err error) {
	n := b.MaxInFlight
	if n <= 0 {
		n = DefaultMaxInFlight
	}
	sem := make(chan struct{}, n)
	ctx, cancel := context.WithCancel(context.Background())
	var inFlight sync.WaitGroup
	var mu sync.Mutex
	stopped := false
	sub, err := b.nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		if m.Reply == "" || streamDelivery(m) {
			return
		}
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		inFlight.Add(1)
		mu.Unlock()
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; inFlight.Done() }()
			_ = m.Respond(fn(ctx, m.Data))
		}()
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("serve %s: %w", subject, err)
	}
	// The subscription's interest must reach the hub's other nodes and the
	// leaf nodes before a request can find it.
	if err := b.nc.Flush(); err != nil {
		cancel()
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("serve %s: %w", subject, err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = sub.Unsubscribe()
			mu.Lock()
			stopped = true
			mu.Unlock()
			inFlight.Wait()
			cancel()
		})
	}
	b.mu.Lock()
	b.stops = append(b.stops, stop)
	b.mu.Unlock()
	return stop, nil
}

// Publish sends data on subject, fire and forget.
func (b *Bus) Publish(subject string, data []byte) error {
	if err := b.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// streamDelivery reports whether m was pushed by a JetStream consumer (its
// reply is the consumer's ack subject) rather than published by a process:
// whoever may create a consumer picks its deliver subject, so a region
// credential could aim stream messages at iam.rpc.http or another region's
// status subject (docs/deploy/nats-security.md). No iamd process publishes
// with such a reply, so these are dropped.
func streamDelivery(m *nats.Msg) bool { return strings.HasPrefix(m.Reply, "$JS.ACK.") }

// Subscribe calls fn (from one goroutine, in order) with every message on
// subject, which may hold wildcards, except what a JetStream consumer
// pushed there (streamDelivery).
func (b *Bus) Subscribe(subject string, fn func(subject string, data []byte)) error {
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) {
		if !streamDelivery(m) {
			fn(m.Subject, m.Data)
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", subject, err)
	}
	// Messages published after Subscribe returns must find the interest.
	if err := b.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribe %s: %w", subject, err)
	}
	b.mu.Lock()
	b.subs = append(b.subs, sub)
	b.mu.Unlock()
	return nil
}

// Close drops every subscription and stops serving, waiting for the
// requests in flight.
func (b *Bus) Close() {
	b.mu.Lock()
	subs, stops := b.subs, b.stops
	b.subs, b.stops = nil, nil
	b.mu.Unlock()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	for _, stop := range stops {
		stop()
	}
}
