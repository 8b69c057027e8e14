package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Change is one log entry of the change feed: its token, and each commit
// of the caller's realm in it (redacted of secrets and personal data).
type Change struct {
	Token   string         `json:"token"`
	Time    time.Time      `json:"time"`
	Commits []ChangeCommit `json:"commits"`
}

// ChangeCommit is one command's events, who made it and when.
type ChangeCommit struct {
	Actor  string    `json:"actor"`
	At     time.Time `json:"at"`
	Events []struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"events"`
}

// FeedEvent is what Watch hands on: a Change, or, while the log is idle, a
// Checkpoint saying where its head is (a feed behind the head is lagging;
// one at the head is idle).
type FeedEvent struct {
	Change     *Change     `json:"change,omitempty"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// Checkpoint is the feed's periodic note of its position and the head's.
type Checkpoint struct {
	Token     string `json:"token"`
	HeadToken string `json:"headToken"`
}

// Watch follows GET /v1/changes from after ("": from the first entry),
// calling fn for each change and checkpoint in order, until ctx ends (it
// then returns ctx's error) or fn returns an error (returned as is). A
// dropped stream is reopened — on the next endpoint, after a backoff —
// with Last-Event-ID, so fn misses nothing and sees nothing twice. Answers
// that retrying cannot mend (unauthenticated, permission_denied,
// invalid_argument) end the watch.
func (c *Client) Watch(ctx context.Context, after string, fn func(FeedEvent) error) error {
	last := after
	ep := 0
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.opts.initialInterval),
		backoff.WithMaxInterval(c.opts.maxInterval),
		backoff.WithMaxElapsedTime(0), // a watch lasts until its context ends
		backoff.WithClockProvider(c.opts.clock),
	)
	var fnErr error
	op := func() error {
		progressed, err := c.watchOnce(ctx, ep, &last, func(e FeedEvent) error {
			if err := fn(e); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
		if fnErr != nil {
			return backoff.Permanent(fnErr)
		}
		if progressed {
			b.Reset()
		}
		var apiErr *Error
		var tokErr *tokenError
		if errors.As(err, &tokErr) {
			return backoff.Permanent(err) // the credentials, not the feed, are wrong
		}
		if errors.As(err, &apiErr) {
			switch apiErr.Code {
			case CodeUnauthenticated, CodePermissionDenied, CodeInvalidArgument, CodeNotFound:
				return backoff.Permanent(err)
			}
		}
		ep = (ep + 1) % len(c.endpoints)
		if err == nil {
			err = errors.New("change feed ended")
		}
		return err
	}
	err := backoff.RetryNotify(op, backoff.WithContext(b, ctx), func(err error, d time.Duration) {
		if c.opts.onRetry != nil {
			c.opts.onRetry(RetryEvent{Op: "GET /v1/changes", Err: err, Next: c.endpoints[ep].String(), Delay: d})
		}
	})
	if ctx.Err() != nil && fnErr == nil {
		return ctx.Err()
	}
	return err
}

// watchOnce reads one connection of the feed on endpoint ep, advancing
// *last past each event handed to fn; progressed says whether any was.
func (c *Client) watchOnce(ctx context.Context, ep int, last *string, fn func(FeedEvent) error) (progressed bool, err error) {
	u := *c.endpoints[ep]
	u.Path += "/v1/changes"
	q := u.Query()
	if *last != "" {
		q.Set("after", *last)
	}
	u.RawQuery = q.Encode()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, backoff.Permanent(err)
	}
	hr.Header.Set("Accept", "text/event-stream")
	if *last != "" {
		hr.Header.Set("Last-Event-ID", *last)
	}
	if err := c.authorize(ctx, hr); err != nil {
		return false, err
	}
	resp, err := c.opts.httpClient.Do(hr)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return false, parseError(resp, data, c.endpoints[ep].String(), c.opts.clock.Now())
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, event, data string
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				event = value
			case "data":
				data += value
			}
			continue
		}
		// A blank line ends an event (the SSE format).
		var fe FeedEvent
		switch event {
		case "change":
			fe.Change = &Change{}
			err = json.Unmarshal([]byte(data), fe.Change)
		case "checkpoint":
			fe.Checkpoint = &Checkpoint{}
			err = json.Unmarshal([]byte(data), fe.Checkpoint)
		}
		if err != nil {
			return progressed, backoff.Permanent(fmt.Errorf("change feed: event %s: %w", id, err))
		}
		if fe.Change != nil || fe.Checkpoint != nil {
			if err := fn(fe); err != nil {
				return progressed, err
			}
			if id != "" {
				*last, progressed = id, true
			}
		}
		id, event, data = "", "", ""
	}
	return progressed, sc.Err()
}
