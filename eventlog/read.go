package eventlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/iam-project/iam"
)

// followBuffer is how many decoded entries a Follower holds for its reader.
const followBuffer = 4096

// Pull settings of a Follower's consumer, chosen by measurement over a
// 50 ± 10 ms link (cmd/iamd/daemon/propagation_test.go):
//
//   - followMaxBytes: the consumer keeps up to this many bytes requested
//     and asks for more when half is left. nats.go's default (500 messages,
//     refill below 250) allows about 250 messages per round trip: a region
//     100 ms away caught up at ~2.4k msgs/s, with 4 MiB at ~60k (1 MiB
//     ~22k, 8 MiB ~78k). It also bounds what waits in the client by bytes
//     rather than by count: every Follower (each change feed too) may hold
//     this much besides followBuffer. It must stay above the largest
//     message (NATS max_payload, 1 MiB by default), which a byte-limited
//     pull could not deliver.
//   - followExpiry: when the only waiting pull request expires (a quiet log
//     consumes less than half of followMaxBytes per expiry), nothing is
//     delivered until the client's next request reaches the server, one
//     round trip later. With a 10 s expiry, at 20 writes/s over the link,
//     0.6% of entries waited up to a round trip more (p99.9 146 ms against
//     61 ms raw); a long expiry makes that rare. Liveness does not depend
//     on it: heartbeats (followHeartbeat) detect a lost request, and the
//     ordered consumer recreates itself.
//   - followHeartbeat: a consumer whose connection was reset is noticed
//     after two missed heartbeats; at 2 s a reset left a region ~2 s behind
//     (iamsim default run), at 500 ms about 1 s. Idle heartbeats cost next
//     to nothing.
const (
	followMaxBytes  = 4 << 20
	followExpiry    = 5 * time.Minute
	followHeartbeat = 500 * time.Millisecond
)

// ErrSequenceGap is wrapped by Follower.Next when the consumer skipped
// sequences. The caller decides whether the missing entries exist (retry
// from where it was) or were deleted (the log is damaged).
var ErrSequenceGap = errors.New("sequence gap")

// ErrFollowerStopped is returned by Next after Stop or after the consumer
// ended for good (connection closed).
var ErrFollowerStopped = errors.New("follower stopped")

// Follower delivers the log's entries in sequence order, from a starting
// sequence on, including entries appended later. It is backed by an ordered
// consumer, which recreates itself after missed heartbeats, a deleted
// consumer or a reconnect, resuming after the last entry it delivered.
//
// Next is for one goroutine; Head, Err and Stop are safe for concurrent use.
type Follower struct {
	cons jetstream.Consumer
	cc   jetstream.ConsumeContext
	v    Verifier
	ch   chan followItem
	done chan struct{}
	stop sync.Once

	next    uint64 // sequence Next expects; owned by Next's caller
	failed  error  // sticky failure; owned by Next's caller
	head    atomic.Uint64
	lastErr atomic.Pointer[error]
}

type followItem struct {
	entry iam.LogEntry
	err   error
}

// Follow starts following the log from sequence from (1 when 0). ctx bounds
// only the creation of the consumer; the Follower lives until Stop.
func (l *Log) Follow(ctx context.Context, from uint64) (*Follower, error) {
	if from == 0 {
		from = 1
	}
	cons, err := l.js.OrderedConsumer(ctx, l.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("follow %s from %d: %w", l.cfg.Stream, from, err)
	}
	f := &Follower{
		cons: cons,
		ch:   make(chan followItem, followBuffer),
		done: make(chan struct{}),
		next: from,
		v:    l.cfg.Verifier,
	}
	cc, err := cons.Consume(f.handle,
		jetstream.PullMaxBytes(followMaxBytes),
		jetstream.PullExpiry(followExpiry),
		jetstream.PullHeartbeat(followHeartbeat),
		jetstream.ConsumeErrHandler(f.consumeErr))
	if err != nil {
		return nil, fmt.Errorf("follow %s from %d: %w", l.cfg.Stream, from, err)
	}
	f.cc = cc
	return f, nil
}

func (f *Follower) handle(m jetstream.Msg) {
	var it followItem
	md, err := m.Metadata()
	if err != nil {
		it.err = fmt.Errorf("follow: metadata: %w", err)
	} else {
		if h := md.Sequence.Stream + md.NumPending; h > f.head.Load() {
			f.head.Store(h) // only this goroutine stores
		}
		it.entry, it.err = decode(f.v, md.Sequence.Stream, m.Subject(), md.Timestamp, m.Headers(), m.Data())
	}
	select {
	case f.ch <- it:
	case <-f.done:
	}
}

func (f *Follower) consumeErr(_ jetstream.ConsumeContext, err error) {
	f.lastErr.Store(&err)
	if errors.Is(err, jetstream.ErrConnectionClosed) {
		select {
		case f.ch <- followItem{err: fmt.Errorf("follow: %w: %w", ErrFollowerStopped, err)}:
		case <-f.done:
		}
	}
}

// Next waits for at least one entry, then returns it together with every
// entry already waiting, up to max (all of them when max <= 0), without
// waiting to fill the batch. Entries are contiguous: the first is the one
// after the last entry returned before. Repeats are dropped; a gap fails
// with an error wrapping ErrSequenceGap; an undecodable message with one
// wrapping ErrEnvelope; with a Verifier, an unsigned or forged one with one
// wrapping ErrUnsigned or ErrForged. Entries before a failure are returned first; after a
// failure every call returns it. It returns ctx's error when ctx ends first.
func (f *Follower) Next(ctx context.Context, max int) ([]iam.LogEntry, error) {
	if f.failed != nil {
		return nil, f.failed
	}
	var batch []iam.LogEntry
	for {
		var it followItem
		if len(batch) == 0 {
			select {
			case it = <-f.ch:
			case <-f.done:
				return nil, ErrFollowerStopped
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		} else {
			select {
			case it = <-f.ch:
			default:
				return batch, nil
			}
		}
		if it.err == nil {
			switch s := it.entry.Seq; {
			case s < f.next:
				continue // a repeat after a consumer reset: already delivered
			case s > f.next:
				it.err = fmt.Errorf("follow: %w: got sequence %d, want %d", ErrSequenceGap, s, f.next)
			}
		}
		if it.err != nil {
			f.failed = it.err
			if len(batch) > 0 {
				return batch, nil
			}
			return nil, it.err
		}
		f.next++
		batch = append(batch, it.entry)
		if max > 0 && len(batch) >= max {
			return batch, nil
		}
	}
}

// Head returns the stream's last sequence as last seen by the consumer
// (delivered sequence plus pending), 0 before the first message.
func (f *Follower) Head() uint64 { return f.head.Load() }

// Err returns the last error the consumer reported (missed heartbeats,
// reconnects, ...), which it tries to recover from by itself; nil if none.
func (f *Follower) Err() error {
	if p := f.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Stop stops the consumer. Next then returns ErrFollowerStopped.
func (f *Follower) Stop() {
	f.stop.Do(func() {
		close(f.done)
		if f.cc != nil {
			f.cc.Stop()
		}
	})
}

// Read calls fn for every entry from sequence from up to the stream's head
// as of the call, in order, and returns fn's first error. It is how a writer
// catches up before deciding.
func (l *Log) Read(ctx context.Context, from uint64, fn func(iam.LogEntry) error) error {
	if from == 0 {
		from = 1
	}
	head, err := l.HeadRetry(ctx)
	if err != nil {
		return fmt.Errorf("read from %d: %w", from, err)
	}
	if head < from {
		return nil
	}
	f, err := l.Follow(ctx, from)
	if err != nil {
		return fmt.Errorf("read from %d: %w", from, err)
	}
	defer f.Stop()
	for {
		batch, err := f.Next(ctx, 0)
		if err != nil {
			return fmt.Errorf("read from %d: %w", from, err)
		}
		for _, e := range batch {
			if e.Seq > head {
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
			if e.Seq == head {
				return nil
			}
		}
	}
}

// readRangeGets is the longest range ReadRange reads with one direct get
// per entry. Measured (BenchmarkReadRange, BenchmarkRead, embedded
// server): a get costs ~65 µs an entry; a consumer ~60 ms to create and
// delete, then ~14 µs an entry. Gets win below ~1,200 entries, which
// covers every replay from a checkpoint at the default spacing.
const readRangeGets = 1200

// ReadRange calls fn for every entry from sequence from to sequence to
// (which must be stored), in order, verified as Get's and Follow's are,
// and returns fn's first error. Unlike Read it learns no head; a long
// range is read by a consumer, which is deleted when done: at_exact_snapshot
// reads (package replica) may run many, and a stopped consumer would
// otherwise count against the consumer limit for its inactive threshold.
func (l *Log) ReadRange(ctx context.Context, from, to uint64, fn func(iam.LogEntry) error) error {
	if from == 0 {
		from = 1
	}
	if to < from {
		return nil
	}
	if to-from < readRangeGets {
		for seq := from; seq <= to; seq++ {
			e, err := l.Get(ctx, seq)
			if err != nil {
				return fmt.Errorf("read %d to %d: %w", from, to, err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	f, err := l.Follow(ctx, from)
	if err != nil {
		return fmt.Errorf("read %d to %d: %w", from, to, err)
	}
	defer l.deleteConsumer(f)
	for {
		batch, err := f.Next(ctx, 0)
		if err != nil {
			return fmt.Errorf("read %d to %d: %w", from, to, err)
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
			if e.Seq >= to {
				return nil
			}
		}
	}
}

// deleteConsumer stops f and deletes its consumer. A failed delete is not
// an error: the consumer's inactive threshold removes it later.
func (l *Log) deleteConsumer(f *Follower) {
	f.Stop()
	info := f.cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.js.DeleteConsumer(ctx, l.cfg.Stream, info.Name)
}
