package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/iam-project/iam"
)

// DefaultHeartbeatInterval is how often the hub makes sure the log has a
// fresh entry.
const DefaultHeartbeatInterval = time.Second

// Heartbeater appends an iam.Heartbeat to HeartbeatSubject whenever the log
// has had no entry for Interval, so that the log's newest entry is never
// older than about Interval while the hub is up. Every region then measures
// lag in seconds even when the log is idle, and a region cut off from the
// hub knows a lower bound of its lag: now − (append time of its last applied
// entry) − Interval.
//
// Several hub processes may each run one: a heartbeat's MsgID names its
// interval ("hb.<unix time / Interval>"), so JetStream keeps only one per
// interval. Under write load no heartbeat is appended at all.
//
// Configure the exported fields before Start; Start and Stop are safe for
// concurrent use.
type Heartbeater struct {
	Log *Log
	// Interval between heartbeats on an idle log. Default
	// DefaultHeartbeatInterval.
	Interval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives failures (one line per change of state). Default
	// slog.Default().
	Logger *slog.Logger
	// OnBeat, if set, is called with the sequence of every heartbeat
	// appended.
	OnBeat func(seq uint64)

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start begins beating in the background. It fails if already started or
// without a Log.
func (h *Heartbeater) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		return errors.New("heartbeater: already started")
	}
	if h.Log == nil {
		return errors.New("heartbeater: Log is required")
	}
	if h.Interval <= 0 {
		h.Interval = DefaultHeartbeatInterval
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	ctx, h.cancel = context.WithCancel(ctx)
	h.wg.Add(1)
	go h.run(ctx)
	return nil
}

// Stop stops beating and waits for the goroutine to end.
func (h *Heartbeater) Stop() {
	h.mu.Lock()
	cancel := h.cancel
	h.cancel = nil
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		h.wg.Wait()
	}
}

func (h *Heartbeater) run(ctx context.Context) {
	defer h.wg.Done()
	// Check a few times per interval, so that an idle log gets its beat
	// soon after Interval, not up to 2×Interval, after its last entry.
	t := time.NewTicker(h.Interval / 4)
	defer t.Stop()
	failing := false
	for {
		err := h.Beat(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			h.Logger.Warn("heartbeat failing", "err", err)
		case err == nil && failing:
			failing = false
			h.Logger.Info("heartbeat recovered")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Beat appends a heartbeat if the log's last entry is older than Interval
// (or the log is empty). It is what the background loop calls; tests call
// it directly.
func (h *Heartbeater) Beat(ctx context.Context) error {
	interval := h.Interval
	if interval <= 0 {
		interval = DefaultHeartbeatInterval
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	ctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
	defer cancel()
	info, err := h.Log.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	t := now()
	if info.State.Msgs > 0 && t.Sub(info.State.LastTime) < interval {
		return nil
	}
	bucket := t.UnixNano() / int64(interval)
	seq, err := h.Log.Append(ctx, AppendRequest{
		Subject: HeartbeatSubject,
		Commits: []iam.Commit{{At: t.UTC(), Events: []iam.Event{iam.Heartbeat{At: t.UTC()}}}},
		MsgID:   "hb." + strconv.FormatInt(bucket, 10),
	})
	if err != nil {
		return err
	}
	if h.OnBeat != nil {
		h.OnBeat(seq)
	}
	return nil
}
