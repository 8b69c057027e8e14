package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	iam "github.com/iam-project/iam"
)

// checkpointEvery is how often an idle change feed says where the log's
// head is, so a client can tell an idle log from a lagging feed.
var checkpointEvery = 5 * time.Second

type changeEvent struct {
	Type string    `json:"type"`
	Data iam.Event `json:"data"`
}

type changeCommit struct {
	Actor  string        `json:"actor,omitempty"`
	At     time.Time     `json:"at"`
	Events []changeEvent `json:"events"`
}

type change struct {
	Token   string         `json:"token"`
	Time    time.Time      `json:"time"`
	Commits []changeCommit `json:"commits"`
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
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
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
				cc := changeCommit{Actor: cm.Actor, At: cm.At}
				for _, ev := range cm.Events {
					cc.Events = append(cc.Events, changeEvent{Type: ev.EventType(), Data: iam.Redact(ev)})
				}
				c.Commits = append(c.Commits, cc)
			}
			if len(c.Commits) == 0 {
				continue
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
