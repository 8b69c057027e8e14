package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// checkpointEvery is how often an idle change feed says where the log's
// head is, so a client can tell an idle log from a lagging feed.
var checkpointEvery = 5 * time.Second

type changeEvent struct {
	Type string    `json:"type"`
	Data iam.Event `json:"data"`
}

type changeCommit struct {
	// Actor is who made the change: an identity id, or "system" for what
	// the server does itself (the bootstrap, sign-in bookkeeping).
	Actor  string        `json:"actor"`
	At     time.Time     `json:"at"`
	Events []changeEvent `json:"events"`
}

type change struct {
	Token   string         `json:"token"`
	Time    time.Time      `json:"time"`
	Commits []changeCommit `json:"commits"`
}

// feedSlots counts the open change feeds, per identity and in all.
type feedSlots struct {
	mu    sync.Mutex
	by    map[string]int
	total int
}

// feedRetryAfter is the Retry-After of a feed refused for the caps: a slot
// frees when another feed of the caller ends, which the server cannot
// foresee.
const feedRetryAfter = 5 * time.Second

// take reserves a feed for the identity key, within perIdentity and total;
// the caller calls release once the feed ends.
func (f *feedSlots) take(key string, perIdentity, total int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.total >= total || f.by[key] >= perIdentity {
		return false
	}
	if f.by == nil {
		f.by = map[string]int{}
	}
	f.by[key]++
	f.total++
	return true
}

func (f *feedSlots) release(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total--
	if f.by[key]--; f.by[key] <= 0 {
		delete(f.by, key)
	}
}

// changes serves GET /v1/changes: Server-Sent Events of the caller's realm's
// changes after a token (or from the first), resumable with Last-Event-ID.
func (s *Server) changes(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	if err := s.authorizeRead(r.Context(), p, iam.ActionList, iam.RealmHRN(p.Realm), ""); err != nil {
		return err
	}
	var after uint64
	if t := r.Header.Get("Last-Event-ID"); t != "" {
		seq, err := ParseToken("Last-Event-ID", t)
		if err != nil {
			return err
		}
		after = seq
	} else if t := r.URL.Query().Get("after"); t != "" {
		seq, err := ParseToken("after", t)
		if err != nil {
			return err
		}
		after = seq
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return iam.Errorf(iam.EInternal, "streaming unsupported")
	}
	// A stream outlives the server's ReadTimeout: lift the deadline, or
	// it would end the request's context (where the writer supports it).
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	rep, err := s.region(r)
	if err != nil {
		return err
	}
	slot := p.Realm + "/" + p.ID
	if !s.feeds.take(slot, s.cfg.MaxStreamsPerIdentity, s.cfg.MaxStreams) {
		retryAfter(w, feedRetryAfter)
		return iam.Errorf(iam.ERateLimited, "too many open change feeds (at most %d per identity, %d in all); close one or retry later", s.cfg.MaxStreamsPerIdentity, s.cfg.MaxStreams)
	}
	defer s.feeds.release(slot)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	// The feed lives no longer than the token that opened it.
	if !p.ExpiresAt.IsZero() {
		defer time.AfterFunc(p.ExpiresAt.Sub(s.cfg.Now()), cancel).Stop()
	}
	// stillAllowed re-checks the caller at seq on the region's replica: a
	// caller deactivated, revoked or stripped of its right to list the
	// realm sees nothing after that position.
	stillAllowed := func(seq uint64) bool {
		_, err := rep.Read(ctx, replica.Consistency{Mode: iam.AtLeastAsFresh, Token: seq}, func(st *iam.State) error {
			if err := p.stillValid(st); err != nil {
				return err
			}
			return iam.AuthorizeAction(st, p.Realm, p.ID, iam.ActionList, iam.RealmHRN(p.Realm))
		})
		return err == nil
	}
	f, err := s.evlog.Follow(ctx, after+1)
	if err != nil {
		return iam.Errorf(iam.EUnavailable, "the log cannot be followed: %v", err)
	}
	defer f.Stop()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	last := after
	lastCheckpoint := s.cfg.Now()
	for {
		wait, cancel := context.WithTimeout(ctx, checkpointEvery)
		entries, err := f.Next(wait, 256)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && wait.Err() == nil {
			// The follower failed for good: end the stream; the client
			// reconnects with Last-Event-ID and misses nothing.
			s.log.Warn("change feed ended", "err", err)
			return nil
		}
		for _, e := range entries {
			last = e.Seq
			c := change{Token: FormatToken(e.Seq), Time: e.Time}
			for _, cm := range e.Commits {
				if len(cm.Events) == 0 || iam.RealmOf(cm.Events[0]) != p.Realm {
					continue
				}
				cc := changeCommit{Actor: cmp.Or(cm.Actor, "system"), At: cm.At}
				for _, ev := range cm.Events {
					cc.Events = append(cc.Events, changeEvent{Type: ev.EventType(), Data: iam.Redact(ev)})
				}
				c.Commits = append(c.Commits, cc)
			}
			if len(c.Commits) == 0 {
				continue
			}
			if !stillAllowed(e.Seq) {
				flusher.Flush()
				return nil
			}
			data, err := json.Marshal(c)
			if err != nil {
				return nil
			}
			if _, err := fmt.Fprintf(w, "id: %s\nevent: change\ndata: %s\n\n", c.Token, data); err != nil {
				return nil
			}
		}
		if len(entries) > 0 {
			flusher.Flush()
		}
		if s.cfg.Now().Sub(lastCheckpoint) >= checkpointEvery {
			lastCheckpoint = s.cfg.Now()
			head := max(f.Head(), last)
			if _, err := fmt.Fprintf(w, "id: %s\nevent: checkpoint\ndata: {\"headToken\":%q,\"token\":%q}\n\n",
				FormatToken(last), FormatToken(head), FormatToken(last)); err != nil {
				return nil
			}
			flusher.Flush()
		}
	}
}
