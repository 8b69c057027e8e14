package sim

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadChanges_RetriesUnavailable: a region that answers 503 (its link
// to the log not back yet after a heal) is asked again until it serves the
// feed; any other refusal ends the read at once.
func TestReadChanges_RetriesUnavailable(t *testing.T) {
	for _, tt := range []struct {
		name     string
		refusal  int
		refusals int32
		wantErr  string
		wantReqs int32
	}{
		{"503 then the feed", http.StatusServiceUnavailable, 2, "", 3},
		{"403 is final", http.StatusForbidden, 2, "403", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var reqs atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if reqs.Add(1) <= tt.refusals {
					http.Error(w, "not now", tt.refusal)
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				for seq := uint64(1); seq <= 3; seq++ {
					fmt.Fprintf(w, "event: change\ndata: {\"token\":%q,\"time\":\"2026-12-06T00:00:00Z\",\"commits\":[]}\n\n", formatToken(seq))
				}
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}))
			defer srv.Close()
			p := newProber()
			defer p.close()
			entries, err := readChanges(context.Background(), p, srv.URL, "token", 3, 100*time.Millisecond, 10*time.Second)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want the feed", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error with %q", err, tt.wantErr)
			case tt.wantErr == "" && len(entries) != 3:
				t.Fatalf("got %d entries, want 3", len(entries))
			}
			if got := reqs.Load(); got != tt.wantReqs {
				t.Errorf("server asked %d times, want %d", got, tt.wantReqs)
			}
		})
	}
}
