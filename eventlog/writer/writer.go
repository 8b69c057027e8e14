// Package writer is iam's command side: it decides commands against the
// latest state (iam.Decide) and appends their events to the log, grouping
// the commands of one realm that wait together into one conditional append
// (group commit) and re-deciding after a conflict with another writer.
// Bootstrap makes the first realm and its admin on an empty log.
package writer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nuid"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
)

// Config configures a Writer.
type Config struct {
	// MaxGroup bounds how many queued commands of one realm are appended as
	// one message (group commit). Default 256.
	MaxGroup int
	// Backoff is the schedule for re-deciding after a conflict with another
	// writer. Default exponential 5ms..200ms, at most 2s in all.
	Backoff func() backoff.BackOff
	// OnRetry is told each retry's cause ("conflict", "rebuild").
	OnRetry func(cause string)
	Limits  *iam.Limits
	Logger  *slog.Logger
	// Now stamps commands that carry no time. Default time.Now.
	Now func() time.Time
}

// Log is what the writer needs of the event log (eventlog.Log).
type Log interface {
	// Append stores one conditional, idempotent message (see
	// eventlog.Log.Append); conflict when the realm expectation is stale.
	Append(ctx context.Context, req eventlog.AppendRequest) (uint64, error)
	// LastForRealm returns the sequence of the realm's last message.
	LastForRealm(ctx context.Context, realm string) (uint64, error)
	// Read calls fn for every entry from sequence from up to the head.
	Read(ctx context.Context, from uint64, fn func(iam.LogEntry) error) error
}

var _ Log = (*eventlog.Log)(nil)

// Result is the outcome of one command.
type Result struct {
	// Seq is the consistency token: the sequence of the log entry holding
	// the command's events, or the state's position when there were none.
	Seq uint64
	// Events are what the command changed (none for a no-op).
	Events []iam.Event
	// Replayed is true when an idempotency key matched an earlier request:
	// nothing was appended and Seq is the first request's.
	Replayed bool
}

type pending struct {
	req  iam.Request
	res  Result
	err  error
	done chan struct{}
}

// Writer decides commands against the latest state and appends their events.
//
// Concurrency: one goroutine decides and appends; concurrent Execute calls
// queue up and the commands of one realm that are waiting together are
// appended as one message (group commit), so many writers cost one publish.
// The message is conditional on the realm's last sequence
// (ExpectRealm/ExpectSeq): a cross-aggregate rule such as "500 members per
// group and 50 groups per identity" holds because the whole realm is decided
// on one state and no other writer process can slip a change in between. A
// conflict (another writer process got there first) rebuilds the state from
// the log and decides again, with backoff.
type Writer struct {
	log   Log
	cfg   Config
	queue chan *pending

	mu    sync.RWMutex
	state *iam.State
	dirty bool // state holds events that may not be in the log

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped chan struct{} // closed by Stop
	stop    sync.Once
}

// New returns a writer over log; Start it before use.
func New(log Log, cfg Config) *Writer {
	if cfg.MaxGroup <= 0 {
		cfg.MaxGroup = 256
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func() backoff.BackOff {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 5*time.Millisecond, 200*time.Millisecond, 2*time.Second
			return b
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Writer{log: log, cfg: cfg, queue: make(chan *pending, 4*cfg.MaxGroup), stopped: make(chan struct{})}
}

// Start loads the state from the log and starts the writing goroutine.
func (w *Writer) Start(ctx context.Context) error {
	if err := w.rebuild(ctx); err != nil {
		return err
	}
	ctx, w.cancel = context.WithCancel(context.Background())
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.loop(ctx)
	}()
	return nil
}

// Stop ends the writing goroutine; queued commands fail with unavailable.
func (w *Writer) Stop() {
	w.stop.Do(func() {
		if w.cancel != nil {
			w.cancel()
			w.wg.Wait()
		}
		close(w.stopped)
		w.drain()
	})
}

func (w *Writer) newState() *iam.State {
	s := iam.NewState()
	s.TrackIdempotency = true
	if w.cfg.Limits != nil {
		s.Limits = *w.cfg.Limits
	}
	return s
}

// rebuild replaces the state by a fresh replay of the whole log.
func (w *Writer) rebuild(ctx context.Context) error {
	s := w.newState()
	if err := w.log.Read(ctx, 1, func(e iam.LogEntry) error {
		if err := s.ApplyEntry(e, nil); err != nil {
			// The log holds a fact this code cannot apply: no state can be
			// decided against, so every write fails as internal.
			return iam.Errorf(iam.EInternal, "entry %d: %v", e.Seq, err)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("writer: load state: %w", err)
	}
	w.mu.Lock()
	w.state, w.dirty = s, false
	w.mu.Unlock()
	return nil
}

// Resync makes the writer rebuild its state from the log before it decides
// again: for a writer that becomes active after another process wrote (the
// stream's leader moved to this process).
func (w *Writer) Resync() {
	w.mu.Lock()
	w.dirty = true
	w.mu.Unlock()
}

// View calls fn with the latest state under a read lock; fn must not keep
// references into it. Management authorization and the token endpoint read
// here, so a role just revoked stops working at once.
func (w *Writer) View(fn func(*iam.State) error) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return fn(w.state)
}

// Position is the sequence of the last entry the writer's state holds.
func (w *Writer) Position() uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.state.Seq()
}

// Execute decides req and appends its events. Errors are the domain's
// (see iam.Decide), conflict for an idempotency key reused with another
// request, and unavailable when the log cannot be reached.
func (w *Writer) Execute(ctx context.Context, req iam.Request) (Result, error) {
	if req.At.IsZero() {
		req.At = w.cfg.Now().UTC()
	}
	p := &pending{req: req, done: make(chan struct{})}
	select {
	case w.queue <- p:
	case <-w.stopped:
		return Result{}, iam.Errorf(iam.EUnavailable, "writer stopped")
	case <-ctx.Done():
		return Result{}, iam.Errorf(iam.EUnavailable, "write not queued: %v", ctx.Err())
	}
	select {
	case <-p.done:
		return p.res, p.err
	case <-w.stopped:
		return Result{}, iam.Errorf(iam.EUnavailable, "writer stopped; the outcome of this write is unknown")
	case <-ctx.Done():
		// The command may still be appended; the client learns the outcome
		// by retrying with its idempotency key.
		return Result{}, iam.Errorf(iam.EUnavailable, "write outcome unknown: %v", ctx.Err())
	}
}

func (w *Writer) loop(ctx context.Context) {
	for {
		var first *pending
		select {
		case first = <-w.queue:
		case <-ctx.Done():
			w.drain()
			return
		}
		group := []*pending{first}
	more:
		for len(group) < w.cfg.MaxGroup {
			select {
			case p := <-w.queue:
				group = append(group, p)
			default:
				break more
			}
		}
		// One message per realm, realms in order of first appearance.
		byRealm := map[string][]*pending{}
		var order []string
		for _, p := range group {
			if _, ok := byRealm[p.req.Realm]; !ok {
				order = append(order, p.req.Realm)
			}
			byRealm[p.req.Realm] = append(byRealm[p.req.Realm], p)
		}
		for _, realm := range order {
			w.commitRealm(ctx, realm, byRealm[realm])
		}
	}
}

func (w *Writer) drain() {
	for {
		select {
		case p := <-w.queue:
			p.err = iam.Errorf(iam.EUnavailable, "writer stopped")
			close(p.done)
		default:
			return
		}
	}
}

// commitRealm decides and appends the commands of one realm, re-deciding
// after conflicts with backoff.
func (w *Writer) commitRealm(ctx context.Context, realm string, ps []*pending) {
	op := func() error {
		err := w.tryCommit(ctx, realm, ps)
		if iam.ErrorCode(err) == iam.EConflict {
			return err // another writer went first: rebuild and decide again
		}
		if err != nil {
			return backoff.Permanent(err)
		}
		return nil
	}
	notify := func(err error, d time.Duration) {
		// The state is dirty: the next attempt rebuilds it after the
		// backoff sleep, so it decides on what the other writer did meanwhile.
		if w.cfg.OnRetry != nil {
			w.cfg.OnRetry("conflict")
		}
	}
	err := backoff.RetryNotify(op, backoff.WithContext(w.cfg.Backoff(), ctx), notify)
	for _, p := range ps {
		if err != nil && p.err == nil {
			p.err = err
		}
		close(p.done)
	}
}

// tryCommit decides every pending command on the live state (applying each
// one's events so the next sees them), appends them as one message and
// settles the commands. Commands refused by Decide are settled at once.
func (w *Writer) tryCommit(ctx context.Context, realm string, ps []*pending) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dirty {
		w.mu.Unlock()
		err := w.rebuild(ctx)
		w.mu.Lock()
		if err != nil {
			return err
		}
	}
	s := w.state
	base := s.Seq()
	var expect uint64
	if r := s.Realm(realm); r != nil {
		expect = r.LastSeq
	}
	var commits []iam.Commit
	var included []*pending
	unchecked := false // some command was refused or changed nothing
	seen := map[string]*pending{}
	for _, p := range ps {
		p.res, p.err = Result{}, nil
		if k := p.req.IdempotencyKey; k != "" {
			if rec, ok := s.Idempotency(realm, k); ok {
				p.res, p.err = replayed(rec, p.req)
				continue
			}
			if first, ok := seen[k]; ok {
				// Same key twice in one group: the second answers as the first.
				if first.req.RequestHash != p.req.RequestHash {
					p.err = iam.Errorf(iam.EConflict, "Idempotency-Key was used with a different request")
				} else if first.err != nil {
					p.err = first.err
				} else {
					p.res.Seq = base // the group's entry, if any, below
					included = append(included, p)
				}
				continue
			}
			seen[k] = p
		}
		evs, err := iam.Decide(s, p.req)
		if err != nil {
			p.err = err
			unchecked = true
			continue
		}
		p.res.Events = evs
		if len(evs) == 0 {
			unchecked = true
			// Already in place, maybe by an earlier command of this group:
			// answer with the group's entry if there is one, which holds it.
			p.res.Seq = base
			if len(commits) > 0 {
				included = append(included, p)
			}
			continue
		}
		// Apply speculatively so that the next command of the group is
		// decided on this one's effect; the sequence is fixed after append.
		// ApplyEvents refuses (changing nothing) only an event type the
		// domain does not know: a bug in Decide, so internal.
		if err := s.ApplyEvents(evs, nil); err != nil {
			p.err = iam.Errorf(iam.EInternal, "apply decided events: %v", err)
			p.res = Result{}
			unchecked = true
			continue
		}
		w.dirty = true
		c := iam.Commit{Actor: p.req.Actor, IdempotencyKey: p.req.IdempotencyKey, RequestHash: p.req.RequestHash, At: p.req.At, Events: evs}
		commits = append(commits, c)
		included = append(included, p)
	}
	// An append is judged by its expectation, but a refusal or a no-op is
	// not appended at all: before answering one, make sure no other writer
	// process changed the realm behind this one's back (e.g. after the
	// stream's leader moved), or the answer could come from a stale state.
	if unchecked {
		last, err := w.log.LastForRealm(ctx, realm)
		if err != nil {
			return err
		}
		if last != expect {
			w.dirty = true
			return iam.Errorf(iam.EConflict, "realm %s moved on to %d in another writer (this one had %d)", realm, last, expect)
		}
	}
	if len(commits) == 0 {
		return nil
	}
	subject, err := eventlog.Subject(realm, "commit")
	if err != nil {
		return err
	}
	msgID := nuid.Next()
	seq, err := w.log.Append(ctx, eventlog.AppendRequest{Subject: subject, Commits: commits, MsgID: msgID, ExpectRealm: realm, ExpectSeq: expect})
	if err != nil {
		if iam.ErrorCode(err) != iam.EConflict {
			for _, p := range included {
				p.err = err
			}
		}
		return err
	}
	s.Settle(iam.LogEntry{Seq: seq, MsgID: msgID, Commits: commits})
	w.dirty = false
	for _, p := range included {
		p.res.Seq = seq
	}
	return nil
}

func replayed(rec iam.IdempotencyRecord, req iam.Request) (Result, error) {
	if rec.RequestHash != req.RequestHash {
		return Result{}, iam.Errorf(iam.EConflict, "Idempotency-Key was used with a different request")
	}
	return Result{Seq: rec.Seq, Replayed: true}, nil
}
