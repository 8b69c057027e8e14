package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// Forwarder carries one encoded request to the hub and returns the hub's
// encoded answer (eventlog.Bus.Request on bus.RPCSubject). It returns
// an unavailable error when the hub cannot be reached or did not answer in
// time.
type Forwarder func(ctx context.Context, data []byte) ([]byte, error)

// Defaults of region mode.
const (
	DefaultForwardTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = time.Second
	// peerStaleAfter: a region whose status has not arrived for this long
	// is reported from what was last heard, as unhealthy.
	peerStaleAfter = 3 * time.Second
)

// regionLink is the state of a regional server (Config.Forward set): it
// has no writer and no signing keys, and relays writes to the hub.
type regionLink struct {
	forward Forwarder
	// acked is the highest consistency token relayed to a client: the
	// floor of this region's management reads.
	acked atomic.Uint64
	// forwarded counts relayed requests by result (ok, unavailable, error).
	forwarded *prometheus.CounterVec
}

func newRegionLink(f Forwarder, m *Metrics) *regionLink {
	l := &regionLink{forward: f}
	if m != nil {
		l.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iam_forwarded_requests_total", Help: "Requests relayed from this region to the hub, by result.",
		}, []string{"result"})
		for _, r := range []string{"ok", "unavailable", "error"} {
			l.forwarded.WithLabelValues(r)
		}
		m.Registry.MustRegister(l.forwarded)
	}
	return l
}

func (l *regionLink) count(err error) {
	if l.forwarded == nil {
		return
	}
	switch {
	case err == nil:
		l.forwarded.WithLabelValues("ok").Inc()
	case iam.ErrorCode(err) == iam.EUnavailable:
		l.forwarded.WithLabelValues("unavailable").Inc()
	default:
		l.forwarded.WithLabelValues("error").Inc()
	}
}

// shouldForward says which requests a region relays to the hub: every
// write under /v1/ (a check, though a POST, is a read) and everything under
// /oauth2/ (tokens are signed, and sign-ins judged, on the latest state),
// and the hub's JWKS.
func shouldForward(r *http.Request) bool {
	switch {
	case strings.HasPrefix(r.URL.Path, "/oauth2/"):
		return true
	case r.URL.Path == "/.well-known/jwks.json":
		return true
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		switch r.Method {
		case http.MethodPost:
			return r.URL.Path != "/v1/check"
		case http.MethodPut, http.MethodPatch, http.MethodDelete:
			return true
		}
	}
	return false
}

// forwardedRequest is the wire form of a relayed request: this JSON, a
// newline, then the body's raw bytes.
type forwardedRequest struct {
	Method     string      `json:"method"`
	URL        string      `json:"url"` // path and query
	Host       string      `json:"host"`
	RemoteAddr string      `json:"remoteAddr,omitempty"`
	Region     string      `json:"region,omitempty"`
	Header     http.Header `json:"header,omitempty"`
}

// forwardedResponse is the wire form of the hub's answer, likewise
// followed by a newline and the body.
type forwardedResponse struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
}

func encodeWire(meta any, body []byte) ([]byte, error) {
	head, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(head)+1+len(body))
	out = append(append(head, '\n'), body...)
	return out, nil
}

func decodeWire(data []byte, meta any) ([]byte, error) {
	head, body, ok := bytes.Cut(data, []byte{'\n'})
	if !ok {
		return nil, errors.New("forwarded message: no header line")
	}
	if err := json.Unmarshal(head, meta); err != nil {
		return nil, fmt.Errorf("forwarded message: %w", err)
	}
	return body, nil
}

// hopHeaders are not relayed either way.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"}

// forwarding relays the requests shouldForward picks to the hub when this
// is a regional server, and serves the rest itself.
func (s *Server) forwarding(next http.Handler) http.Handler {
	if s.hub == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !shouldForward(r) {
			next.ServeHTTP(w, r)
			return
		}
		if err := s.forward(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// forward relays r to the hub and writes its answer, remembering the
// consistency token it carries.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return jsonError(err)
	}
	h := r.Header.Clone()
	for _, k := range hopHeaders {
		h.Del(k)
	}
	// The hub serves its own replicas; the caller's region is this one.
	h.Del("Iam-Region")
	u := *r.URL
	if q := u.Query(); q.Has("region") {
		q.Del("region")
		u.RawQuery = q.Encode()
	}
	req := forwardedRequest{Method: r.Method, URL: u.RequestURI(), Host: r.Host, RemoteAddr: r.RemoteAddr,
		Region: s.cfg.DefaultRegion, Header: h}
	data, err := encodeWire(req, body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ForwardTimeout)
	defer cancel()
	answer, err := s.hub.forward(ctx, data)
	s.hub.count(err)
	if err != nil {
		if iam.ErrorCode(err) == "" {
			err = iam.Errorf(iam.EUnavailable, "the hub could not be reached: %v", err)
		}
		return err
	}
	var resp forwardedResponse
	rbody, err := decodeWire(answer, &resp)
	if err != nil {
		return err
	}
	if t := resp.Header.Get("Consistency-Token"); t != "" {
		if seq, err := ParseToken("Consistency-Token", t); err == nil {
			for {
				old := s.hub.acked.Load()
				if seq <= old || s.hub.acked.CompareAndSwap(old, seq) {
					break
				}
			}
		}
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	for _, k := range hopHeaders {
		w.Header().Del(k)
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(rbody)
	return nil
}

// ServeForwarded answers one request relayed by a region (the hub side of
// Forwarder): it runs the request through this server's handler exactly as
// if it had arrived over HTTP and returns the encoded answer. Serve it with
// eventlog.Bus.Serve on bus.RPCSubject. It is safe for concurrent use.
func (s *Server) ServeForwarded(ctx context.Context, data []byte) []byte {
	rec := httptest.NewRecorder()
	var in forwardedRequest
	body, err := decodeWire(data, &in)
	var req *http.Request
	if err == nil {
		req, err = http.NewRequestWithContext(ctx, in.Method, "http://"+in.Host+in.URL, bytes.NewReader(body))
	}
	if err != nil {
		s.log.Warn("bad forwarded request", "err", err)
		s.writeError(rec, httptest.NewRequest(http.MethodGet, "/", nil), iam.Errorf(iam.EInvalid, "malformed forwarded request"))
	} else {
		req.Header = in.Header
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header.Del("Iam-Region")
		req.Host, req.RemoteAddr = in.Host, in.RemoteAddr
		req.ContentLength = int64(len(body))
		s.Handler().ServeHTTP(rec, req)
	}
	out, err := encodeWire(forwardedResponse{Status: rec.Code, Header: rec.Header()}, rec.Body.Bytes())
	if err != nil {
		s.log.Error("encode forwarded answer", "err", err)
		out, _ = encodeWire(forwardedResponse{Status: http.StatusInternalServerError}, nil)
	}
	return out
}

// fetchJWKS fetches the hub's JWK Set over the forwarding path.
func (s *Server) fetchJWKS(ctx context.Context) ([]byte, error) {
	req, err := encodeWire(forwardedRequest{Method: http.MethodGet, URL: "/.well-known/jwks.json", Host: "hub", Region: s.cfg.DefaultRegion}, nil)
	if err != nil {
		return nil, err
	}
	answer, err := s.hub.forward(ctx, req)
	if err != nil {
		return nil, err
	}
	var resp forwardedResponse
	body, err := decodeWire(answer, &resp)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: hub answered %d", resp.Status)
	}
	return body, nil
}

// Lag of a region that cannot reach the log, and of other regions.

// judgeLag completes a local region's status. When the log (the hub) is
// unreachable the region cannot learn the head; the hub appends an entry
// at least every HeartbeatInterval while it is up, so the region is at
// least now − (append time of its last applied entry) − HeartbeatInterval
// behind, and that lower bound is what it reports. A region whose lag
// passes MaxLag is unhealthy (its /readyz says not ready).
func (s *Server) judgeLag(st *ReplicaStatus, rep *replica.Replica, now time.Time, headErr error) {
	if headErr != nil {
		_, lastTime, _ := rep.LastApplied()
		st.HeadSeq, st.HeadToken = st.AppliedSeq, st.AppliedToken
		if !lastTime.IsZero() {
			st.LagSeconds = max(0, now.Sub(lastTime).Seconds()-s.cfg.HeartbeatInterval.Seconds())
		}
		// Serving reads from its own replica is what a cut-off region is
		// for: it stays healthy until the lag threshold says otherwise.
		st.Healthy, st.Error = true, "log unreachable (lag is a lower bound): "+headErr.Error()
	}
	if s.cfg.MaxLag > 0 && st.LagSeconds > s.cfg.MaxLag.Seconds() {
		st.Healthy = false
		msg := fmt.Sprintf("lag %.1fs is over the %s threshold", st.LagSeconds, s.cfg.MaxLag)
		if st.Error != "" {
			msg += "; " + st.Error
		}
		st.Error = msg
	}
}

// peerStatus is what a process publishes about each of its regions.
type peerStatus struct {
	ReplicaStatus
	// AppliedTime is the append time of the region's last applied entry.
	AppliedTime time.Time `json:"appliedTime"`
	SentAt      time.Time `json:"sentAt"`
}

type peerEntry struct {
	st       peerStatus
	received time.Time
}

// peerBoard holds the last status heard from every other region.
type peerBoard struct {
	mu    sync.Mutex
	peers map[string]peerEntry
}

// publishStatus sends the local regions' statuses to the other processes.
func (s *Server) publishStatus(sts []ReplicaStatus) {
	if s.cfg.PublishStatus == nil {
		return
	}
	now := s.cfg.Now()
	for _, st := range sts {
		rep := s.replicas[st.Region]
		if rep == nil {
			continue
		}
		_, lastTime, _ := rep.LastApplied()
		data, err := json.Marshal(peerStatus{ReplicaStatus: st, AppliedTime: lastTime, SentAt: now})
		if err == nil {
			s.cfg.PublishStatus(st.Region, data)
		}
	}
}

// ReceiveStatus takes a status published by another process (wire it to
// eventlog.Bus.Subscribe on bus.StatusSubjectPrefix + ".*"). Statuses
// of regions this process serves itself are ignored.
func (s *Server) ReceiveStatus(data []byte) {
	var st peerStatus
	if err := json.Unmarshal(data, &st); err != nil || st.Region == "" {
		return
	}
	if _, local := s.replicas[st.Region]; local {
		return
	}
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	if s.peers.peers == nil {
		s.peers.peers = map[string]peerEntry{}
	}
	s.peers.peers[st.Region] = peerEntry{st: st, received: s.cfg.Now()}
}

// peerStatuses returns the other regions' statuses, sorted by region. A
// region not heard from for peerStaleAfter is shown unhealthy with the lag
// it must have by now: it cannot have applied more than it last reported
// (its status and its log share the one link that has gone quiet).
func (s *Server) peerStatuses(ctx context.Context, now time.Time) []ReplicaStatus {
	s.peers.mu.Lock()
	entries := make([]peerEntry, 0, len(s.peers.peers))
	for _, e := range s.peers.peers {
		entries = append(entries, e)
	}
	s.peers.mu.Unlock()
	if len(entries) == 0 {
		return nil
	}
	var head uint64
	var headErr error = errors.New("no log")
	if s.evlog != nil {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		head, headErr = s.evlog.Head(hctx)
		cancel()
	}
	out := make([]ReplicaStatus, 0, len(entries))
	for _, e := range entries {
		st := e.st.ReplicaStatus
		age := now.Sub(e.received)
		if age > peerStaleAfter {
			st.Healthy = false
			st.Error = fmt.Sprintf("no status from region for %.0fs", age.Seconds())
			if headErr == nil && head > st.AppliedSeq {
				st.HeadSeq, st.HeadToken = head, FormatToken(head)
				st.LagEvents = head - st.AppliedSeq
				lctx, cancel := context.WithTimeout(ctx, time.Second)
				if next, err := s.evlog.Get(lctx, st.AppliedSeq+1); err == nil {
					st.LagSeconds = max(0, now.Sub(next.Time).Seconds())
				}
				cancel()
			} else if !e.st.AppliedTime.IsZero() {
				st.LagSeconds = max(st.LagSeconds, now.Sub(e.st.AppliedTime).Seconds()-s.cfg.HeartbeatInterval.Seconds())
			}
		}
		out = append(out, st)
	}
	sortStatuses(out)
	return out
}

func sortStatuses(sts []ReplicaStatus) {
	for i := 1; i < len(sts); i++ {
		for j := i; j > 0 && sts[j].Region < sts[j-1].Region; j-- {
			sts[j], sts[j-1] = sts[j-1], sts[j]
		}
	}
}
