package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
)

// Log is what a Projector reads: the event log (eventlog.Log), in the
// local JetStream domain or the hub's.
type Log interface {
	// Head returns the log's last sequence; an error wrapping
	// eventlog.ErrStreamGone when the log no longer exists.
	Head(ctx context.Context) (uint64, error)
	// Get returns the entry at seq: not_found when there is none.
	Get(ctx context.Context, seq uint64) (iam.LogEntry, error)
	// Follow delivers entries from sequence from on, in order.
	Follow(ctx context.Context, from uint64) (*eventlog.Follower, error)
	// StreamName names the log in errors.
	StreamName() string
}

var _ Log = (*eventlog.Log)(nil)

// Sink is the read side being fed (a replica). Applied and AppliedMsgID may
// be called from any goroutine; ApplyEntries from one at a time.
type Sink interface {
	// Applied returns the last applied sequence, 0 when none.
	Applied() uint64
	// AppliedMsgID returns the MsgID of the entry at Applied(), "" when
	// unknown or none.
	AppliedMsgID() string
	// ApplyEntries applies entries, which are always Applied()+1, +2, ...,
	// and commits their effects and the new position atomically: after an
	// error, Applied() must tell what was committed.
	ApplyEntries(entries []iam.LogEntry) error
}

// RealmSeqs is implemented by a Sink that knows the last sequence applied
// to each realm (replica.Replica): the Projector then refuses an entry whose
// signed expectation is not that sequence, a replayed or re-ordered copy of
// a genuine entry. known is false when the sink cannot tell (the entry is
// then accepted).
type RealmSeqs interface {
	RealmLastSeq(realm string) (seq uint64, known bool)
}

// Defaults of Projector.
const (
	DefaultMaxBatch     = 512
	DefaultStallTimeout = 5 * time.Second
)

// Errors that stop a Projector for good (see Healthy).
var (
	// ErrRewound: the log holds less than the sink applied, or lost the
	// entry at the sink's position. Following it would serve stale state.
	ErrRewound = errors.New("event log rewound")
	// ErrMsgIDMismatch: the entry at the sink's position is not the one the
	// sink applied. The log was replaced or the sink belongs to another.
	ErrMsgIDMismatch = errors.New("event log entry does not match sink position")
	// ErrSequence: entries arrived out of order at the sink. A bug.
	ErrSequence = errors.New("entries out of sequence")
	// ErrReplayed: a signed entry whose expectation is not the realm's last
	// applied sequence: a copy of a genuine entry appended again.
	ErrReplayed = errors.New("replayed log entry")
)

// RefusedReason names why an error refused an entry ("unsigned", "forged",
// "replayed"), "" when it did not.
func RefusedReason(err error) string {
	switch {
	case errors.Is(err, eventlog.ErrUnsigned):
		return "unsigned"
	case errors.Is(err, eventlog.ErrForged):
		return "forged"
	case errors.Is(err, ErrReplayed):
		return "replayed"
	}
	return ""
}

// Projector follows a Log and feeds its Sink. Configure the exported fields
// before Start; New sets the defaults. Start, Stop, Healthy, Head and
// Applied are safe for concurrent use.
type Projector struct {
	Log  Log
	Sink Sink
	// Region names the read side in logs.
	Region string
	// MaxBatch bounds the entries of one ApplyEntries call. Default 512.
	// Whatever is already waiting is applied at once; a batch is never
	// waited for.
	MaxBatch int
	// StallTimeout: when no entry arrives for this long while the stream's
	// head is ahead of the sink, the consumer is recreated. Default 5s.
	// Missed consumer heartbeats (2s) and a deleted consumer are first
	// handled by the ordered consumer, which recreates itself; this is the
	// backstop for when that does not happen or does not help.
	StallTimeout time.Duration
	// Backoff returns the schedule of retries after a failure. Default
	// exponential from 50ms to 2s, never giving up. If it gives up, the
	// Projector stops with the last error.
	Backoff func() backoff.BackOff
	// Now is the clock used for OnApplied. Default time.Now.
	Now func() time.Time
	// Logger receives one line per lifecycle event. Default slog.Default().
	Logger *slog.Logger
	// OnRetry, if set, is called with a short cause before each retry.
	OnRetry func(cause string)
	// OnApplied, if set, is called after each applied batch with the time
	// it was applied: appliedAt - entry.Time is the propagation delay.
	OnApplied func(entries []iam.LogEntry, appliedAt time.Time)
	// OnRefused, if set, is called once when the Projector stops for good
	// on an entry it refuses, with RefusedReason ("unsigned", "forged",
	// "replayed").
	OnRefused func(reason string)

	mu      sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	fatal   error
	head    atomic.Uint64
	applied atomic.Uint64
}

// New returns a Projector feeding sink from log, with defaults set.
func New(log Log, sink Sink, region string) *Projector {
	p := &Projector{Log: log, Sink: sink, Region: region}
	p.setDefaults()
	return p
}

func (p *Projector) setDefaults() {
	if p.MaxBatch <= 0 {
		p.MaxBatch = DefaultMaxBatch
	}
	if p.StallTimeout <= 0 {
		p.StallTimeout = DefaultStallTimeout
	}
	if p.Backoff == nil {
		p.Backoff = func() backoff.BackOff {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval = 50 * time.Millisecond
			b.MaxInterval = 2 * time.Second
			b.MaxElapsedTime = 0
			return b
		}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
}

// Start starts following in the background. It fails if the Projector is
// already running or lacks a Log or Sink. Failures after Start are retried,
// or reported by Healthy when permanent.
func (p *Projector) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		return errors.New("projector: already started")
	}
	if p.Log == nil || p.Sink == nil {
		return errors.New("projector: Log and Sink are required")
	}
	p.setDefaults()
	p.fatal = nil
	p.applied.Store(p.Sink.Applied())
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(1)
	go p.run(ctx)
	return nil
}

// Stop stops following and waits until the Sink is no longer called.
func (p *Projector) Stop() {
	p.mu.Lock()
	cancel := p.cancel
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	p.wg.Wait()
	p.mu.Lock()
	p.cancel = nil
	p.mu.Unlock()
}

// Healthy reports false, with the error, once the Projector stopped for good
// (a rewound or mismatched log, an undecodable entry, a bug). Transient
// failures being retried do not make it unhealthy.
func (p *Projector) Healthy() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fatal == nil, p.fatal
}

// Head returns the last known stream head sequence.
func (p *Projector) Head() uint64 { return p.head.Load() }

// Applied returns the last sequence applied through this Projector (or the
// sink's position at Start).
func (p *Projector) Applied() uint64 { return p.applied.Load() }

// observeHead records h as the head when it is ahead of what is known. A
// head that moves back is caught by verify, not here.
func (p *Projector) observeHead(h uint64) {
	for {
		old := p.head.Load()
		if h <= old || p.head.CompareAndSwap(old, h) {
			return
		}
	}
}

// retryError carries the cause of a retryable failure.
type retryError struct {
	cause string
	err   error
}

func (r *retryError) Error() string { return r.cause + ": " + r.err.Error() }
func (r *retryError) Unwrap() error { return r.err }

func retry(cause string, err error) error { return &retryError{cause: cause, err: err} }

func (p *Projector) run(ctx context.Context) {
	defer p.wg.Done()
	log := p.Logger.With("region", p.Region)
	log.Info("projector started", "applied", p.Sink.Applied())
	b := backoff.WithContext(p.Backoff(), ctx)
	err := backoff.RetryNotify(func() error { return p.follow(ctx, log, b) }, b,
		func(err error, wait time.Duration) {
			cause := "unknown"
			var r *retryError
			if errors.As(err, &r) {
				cause = r.cause
			}
			if p.OnRetry != nil {
				p.OnRetry(cause)
			}
			log.Warn("projector retrying", "cause", cause, "wait", wait, "err", err)
		})
	if ctx.Err() != nil {
		log.Info("projector stopped", "applied", p.applied.Load())
		return
	}
	if err == nil {
		err = errors.New("projector: follow ended")
	}
	// The refusal is counted before Healthy reports it, so whoever sees the
	// Projector unhealthy also sees the count.
	if reason := RefusedReason(err); reason != "" && p.OnRefused != nil {
		p.OnRefused(reason)
	}
	p.mu.Lock()
	p.fatal = err
	p.mu.Unlock()
	log.Error("projector stopped for good", "applied", p.applied.Load(), "head", p.head.Load(), "err", err)
}

// follow verifies the log against the sink, then feeds the sink until a
// failure. It returns a *retryError for failures worth retrying, and a
// backoff.Permanent error otherwise.
func (p *Projector) follow(ctx context.Context, log *slog.Logger, b backoff.BackOff) error {
	applied := p.Sink.Applied()
	if err := p.verify(ctx, applied); err != nil {
		return err
	}
	f, err := p.Log.Follow(ctx, applied+1)
	if err != nil {
		return retry("follow", err)
	}
	defer f.Stop()
	log.Info("projector following", "from", applied+1, "head", p.head.Load())

	next, progressed := applied+1, false
	for {
		nctx, cancel := context.WithTimeout(ctx, p.StallTimeout)
		batch, err := f.Next(nctx, p.MaxBatch)
		cancel()
		if ctx.Err() != nil {
			return backoff.Permanent(ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Idle for StallTimeout: fine if the log is idle too.
			hctx, cancel := context.WithTimeout(ctx, p.StallTimeout)
			head, err := p.Log.Head(hctx)
			cancel()
			if err != nil {
				return retry("head", err)
			}
			p.observeHead(head)
			if head >= next {
				return retry("stall", fmt.Errorf("no entry for %s while head %d >= next %d (consumer: %v)", p.StallTimeout, head, next, f.Err()))
			}
			continue
		}
		if err != nil {
			switch {
			case errors.Is(err, eventlog.ErrEnvelope), errors.Is(err, eventlog.ErrUnsigned), errors.Is(err, eventlog.ErrForged):
				return backoff.Permanent(err)
			case errors.Is(err, eventlog.ErrSequenceGap):
				// Retry from the sink's position, unless the entry
				// is gone from the log.
				if _, gerr := p.Log.Get(ctx, next); iam.ErrorCode(gerr) == iam.ENotFound {
					return backoff.Permanent(fmt.Errorf("%w: entry %d is missing: %w", ErrRewound, next, err))
				}
				return retry("gap", err)
			}
			return retry("follow", err)
		}
		for i, e := range batch {
			if want := next + uint64(i); e.Seq != want {
				return backoff.Permanent(fmt.Errorf("%w: got sequence %d, want %d", ErrSequence, e.Seq, want))
			}
		}
		if got := p.Sink.Applied(); got != next-1 {
			return backoff.Permanent(fmt.Errorf("%w: sink applied %d behind the projector's back, want %d", ErrSequence, got, next-1))
		}
		batch, refused := p.checkExpect(batch)
		if len(batch) == 0 {
			return backoff.Permanent(refused)
		}
		if err := p.Sink.ApplyEntries(batch); err != nil {
			return retry("apply", err)
		}
		last := batch[len(batch)-1].Seq
		if got := p.Sink.Applied(); got != last {
			return backoff.Permanent(fmt.Errorf("%w: sink applied %d after a batch ending at %d", ErrSequence, got, last))
		}
		appliedAt := p.Now()
		next = last + 1
		p.applied.Store(last)
		p.observeHead(max(f.Head(), last))
		if p.OnApplied != nil {
			p.OnApplied(batch, appliedAt)
		}
		if refused != nil {
			return backoff.Permanent(refused)
		}
		if !progressed {
			// Healthy again: the next failure starts the schedule over.
			b.Reset()
			progressed = true
		}
	}
}

// checkExpect returns the entries of batch before the first one whose
// signed expectation is not its realm's last sequence, and an error
// wrapping ErrReplayed for that one (nil when all pass). Entries without
// an expectation pass: with a Verifier, the log refuses a realm's entry
// that lacks one.
func (p *Projector) checkExpect(batch []iam.LogEntry) ([]iam.LogEntry, error) {
	rs, ok := p.Sink.(RealmSeqs)
	if !ok {
		return batch, nil
	}
	var last map[string]uint64 // realms advanced within the batch
	for i, e := range batch {
		if e.ExpectRealm == "" {
			continue
		}
		want, known := last[e.ExpectRealm]
		if !known {
			want, known = rs.RealmLastSeq(e.ExpectRealm)
		}
		if known && e.ExpectSeq != want {
			return batch[:i], fmt.Errorf("%w: entry %d on %s expects realm %s at %d, which is at %d",
				ErrReplayed, e.Seq, e.Subject, e.ExpectRealm, e.ExpectSeq, want)
		}
		if last == nil {
			last = map[string]uint64{}
		}
		last[e.ExpectRealm] = e.Seq
	}
	return batch, nil
}

// verify refuses a log that is behind the sink or whose entry at the sink's
// position is not the one the sink applied.
func (p *Projector) verify(ctx context.Context, applied uint64) error {
	head, err := p.Log.Head(ctx)
	if errors.Is(err, eventlog.ErrStreamGone) && applied > 0 {
		return backoff.Permanent(fmt.Errorf("%w: stream %s is gone, sink applied %d", ErrRewound, p.Log.StreamName(), applied))
	} else if err != nil {
		return retry("head", err)
	}
	p.head.Store(head)
	if head < applied {
		return backoff.Permanent(fmt.Errorf("%w: stream head %d is behind applied %d", ErrRewound, head, applied))
	}
	want := p.Sink.AppliedMsgID()
	if applied == 0 || want == "" {
		return nil
	}
	e, err := p.Log.Get(ctx, applied)
	switch {
	case iam.ErrorCode(err) == iam.ENotFound:
		return backoff.Permanent(fmt.Errorf("%w: entry %d is missing", ErrRewound, applied))
	case errors.Is(err, eventlog.ErrEnvelope), errors.Is(err, eventlog.ErrUnsigned), errors.Is(err, eventlog.ErrForged):
		return backoff.Permanent(err)
	case err != nil:
		return retry("get", err)
	case e.MsgID != want:
		return backoff.Permanent(fmt.Errorf("%w: entry %d has msg id %q, sink applied %q", ErrMsgIDMismatch, applied, e.MsgID, want))
	}
	return nil
}
