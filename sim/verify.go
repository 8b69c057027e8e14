package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/iam-project/iam"
)

// readChanges reads GET /v1/changes at base from the first entry until it
// has seen an entry at or past target and then nothing new for idle.
func readChanges(ctx context.Context, p *prober, base, bearer string, target uint64, idle, limit time.Duration) ([]logEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	resp, err := openChanges(ctx, p, base, bearer)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	type item struct {
		e   logEntry
		err error
	}
	items := make(chan item)
	go func() {
		defer close(items)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
		var event string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:") && event == "change":
				var c struct {
					Token   string    `json:"token"`
					Time    time.Time `json:"time"`
					Commits []struct {
						Events []logEvent `json:"events"`
					} `json:"commits"`
				}
				data := strings.TrimSpace(strings.TrimPrefix(line, "data:"))
				if err := json.Unmarshal([]byte(data), &c); err != nil {
					items <- item{err: fmt.Errorf("change feed: %w", err)}
					return
				}
				seq, ok := parseToken(c.Token)
				if !ok {
					items <- item{err: fmt.Errorf("change feed: bad token %q", c.Token)}
					return
				}
				e := logEntry{Seq: seq, Time: c.Time}
				for _, cm := range c.Commits {
					e.Events = append(e.Events, cm.Events...)
				}
				select {
				case items <- item{e: e}:
				case <-ctx.Done():
					return
				}
			case line == "":
				event = ""
			}
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil {
			items <- item{err: err}
		}
	}()
	var out []logEntry
	var last uint64
	for {
		var timeout <-chan time.Time
		if last >= target {
			timeout = time.After(idle)
		}
		select {
		case it, ok := <-items:
			if !ok {
				if last >= target {
					return out, nil
				}
				return out, fmt.Errorf("change feed ended at %d, before %d", last, target)
			}
			if it.err != nil {
				return out, it.err
			}
			out = append(out, it.e)
			last = max(last, it.e.Seq)
		case <-timeout:
			return out, nil
		case <-ctx.Done():
			if last >= target {
				return out, nil
			}
			return out, fmt.Errorf("change feed: at %d of %d after %s: %w", last, target, limit, ctx.Err())
		}
	}
}

// eventsCheck compares the writes acknowledged with the log: every
// acknowledged write must be its one event in the entry at its token
// (else lost), and every event of the workload's kinds about the
// workload's apps must belong to exactly one write (else duplicated). A
// write that failed on the client may have landed: it claims one matching
// event after it was sent, if there is one.
type eventsCheck struct {
	Lost          int      `json:"lost"`
	Duplicated    int      `json:"duplicated"`
	LandedUnacked int      `json:"landedUnacknowledged"`
	Failed        int      `json:"failed"`
	Details       []string `json:"details,omitempty"`
}

func checkEvents(entries []logEntry, writes []*writeRec, apps map[string]bool, setupSeq uint64) eventsCheck {
	var ec eventsCheck
	type occ struct {
		seq  uint64
		time time.Time
	}
	byKey := map[string][]occ{}
	bySeq := map[uint64]logEntry{}
	for _, e := range entries {
		bySeq[e.Seq] = e
		if e.Seq <= setupSeq {
			continue // the universe's setup, not the workload
		}
		for _, ev := range e.Events {
			if k := eventKey(ev); k != "" && apps[subjectOf(ev)] {
				byKey[k] = append(byKey[k], occ{e.Seq, e.Time})
			}
		}
	}
	claimed := map[string]map[uint64]bool{}
	claim := func(k string, seq uint64) bool {
		if claimed[k] == nil {
			claimed[k] = map[uint64]bool{}
		}
		if claimed[k][seq] {
			return false
		}
		claimed[k][seq] = true
		return true
	}
	detail := func(format string, args ...any) {
		if len(ec.Details) < 20 {
			ec.Details = append(ec.Details, fmt.Sprintf(format, args...))
		}
	}
	var failed []*writeRec
	for _, w := range writes {
		if w.Acked.IsZero() {
			failed = append(failed, w)
			continue
		}
		found := false
		for _, o := range byKey[w.Key] {
			if o.seq == w.Seq {
				found = true
			}
		}
		if !found || !claim(w.Key, w.Seq) {
			ec.Lost++
			_, present := bySeq[w.Seq]
			detail("write %d (%s) acknowledged at %d: its event is not in that entry (entry present: %t)", w.ID, w.Key, w.Seq, present)
		}
	}
	ec.Failed = len(failed)
	sort.Slice(failed, func(i, j int) bool { return failed[i].Sent.Before(failed[j].Sent) })
	for _, w := range failed {
		for _, o := range byKey[w.Key] {
			if !claimed[w.Key][o.seq] && !o.time.Before(w.Sent.Add(-time.Second)) && claim(w.Key, o.seq) {
				ec.LandedUnacked++
				break
			}
		}
	}
	for k, os := range byKey {
		for _, o := range os {
			if !claimed[k][o.seq] {
				ec.Duplicated++
				detail("event %s at %d belongs to no write", k, o.seq)
			}
		}
	}
	return ec
}

func subjectOf(e logEvent) string {
	switch e.Type {
	case "PolicyAttached", "PolicyDetached":
		return e.Target
	case "MemberAdded", "MemberRemoved":
		return e.Identity
	}
	return e.ID
}

// verdict is how one answer compares with the log.
type verdict struct {
	Wrong bool // matches no state from its own token to the log's head when it arrived
	Stale bool // older than its mode allows
	// StaleRefusal: a 401 under at_least_as_fresh or fully_consistent
	// from a replica older than the mode allows (authentication reads the
	// replica at the access token's position, not at the check's).
	StaleRefusal bool
	// Behind (minimize_latency only): older than the latest write
	// acknowledged before the check was sent.
	Behind bool
}

// judge compares an answer with the model. Allowed answers and denials
// (200) are judged at positions: lo is what the mode promises (its own
// token at least; at_least_as_fresh also the token asked for;
// fully_consistent every write acknowledged before it was sent), hi the
// log's head when the answer arrived. A 401 (the app's token refused
// because the app is not active, or was deactivated since the token was
// issued) is a denial at an unknown position: it must match some position
// up to hi and, for the fresh modes, from lo.
func (m *model) judge(a answerRec, setupSeq uint64) verdict {
	hi := m.headAt(a.Recv)
	var lo uint64
	switch a.Mode {
	case iam.AtLeastAsFresh:
		lo = a.ReqSeq
	case iam.FullyConsistent:
		lo = a.AckedAtSend
	}
	if a.Status == 401 {
		hi = max(hi, lo)
		// A deactivation revokes the app's setup token for good: from
		// then on a 401 is the right answer, reactivated or not.
		inactiveSomewhere := func(from uint64) bool {
			return m.inactiveWithin(a.App, from, hi) || m.deactivatedBy(a.App, hi)
		}
		v := verdict{Wrong: !inactiveSomewhere(setupSeq)}
		if a.Mode != iam.MinimizeLatency {
			v.StaleRefusal = !inactiveSomewhere(max(lo, setupSeq))
		} else {
			v.Behind = !m.deactivatedBy(a.App, a.AckedAtSend) && m.at(a.App, a.Resource, a.AckedAtSend)
		}
		return v
	}
	hi = max(hi, a.Seq, lo)
	v := verdict{Wrong: !m.within(a.App, a.Resource, a.Seq, hi, a.Allowed)}
	switch a.Mode {
	case iam.AtLeastAsFresh, iam.FullyConsistent:
		v.Stale = a.Seq < lo || !m.within(a.App, a.Resource, max(lo, a.Seq), hi, a.Allowed)
	case iam.MinimizeLatency:
		v.Behind = m.at(a.App, a.Resource, a.AckedAtSend) != a.Allowed
	}
	return v
}

// openChanges opens the change feed, trying again while the region answers
// 503 or cannot be reached, as a client would: a region just healed from a
// partition answers 503 until its link to the log is back, which under the
// race detector in .ci/run took seconds. Other statuses are final.
func openChanges(ctx context.Context, p *prober, base, bearer string) (*http.Response, error) {
	var resp *http.Response
	var last error
	_, err := poll(ctx, 250*time.Millisecond, nil, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/changes", nil)
		if err != nil {
			return backoff.Permanent(err)
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Accept", "text/event-stream")
		r, err := p.hc.Do(req)
		switch {
		case err != nil:
			last = fmt.Errorf("GET /v1/changes: %w", err)
			return last
		case r.StatusCode == http.StatusOK:
			resp = r
			return nil
		}
		r.Body.Close()
		last = fmt.Errorf("GET /v1/changes: %s", r.Status)
		if r.StatusCode == http.StatusServiceUnavailable {
			return last
		}
		return backoff.Permanent(last)
	})
	switch {
	case err == nil:
		return resp, nil
	case last != nil && err != last:
		return nil, fmt.Errorf("%w (then %w)", last, err) // the limit came
	}
	return nil, err
}
