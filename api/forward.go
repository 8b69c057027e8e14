package api

import (
	"context"
	"io"
	"net/http"
	"strings"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/relay"
)

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

// forwarding relays the requests shouldForward picks to the hub, and
// serves the rest itself.
func (s *Server) forwarding(m *regionMode, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !shouldForward(r) {
			next.ServeHTTP(w, r)
			return
		}
		if err := s.forward(m, w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// forward relays r to the hub and writes its answer, remembering the
// consistency token it carries.
func (s *Server) forward(m *regionMode, w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return jsonError(err)
	}
	out := r.Clone(r.Context())
	for _, k := range relay.HopHeaders {
		out.Header.Del(k)
	}
	// The hub serves its own replicas; the caller's region is this one.
	out.Header.Del("Iam-Region")
	if q := out.URL.Query(); q.Has("region") {
		q.Del("region")
		out.URL.RawQuery = q.Encode()
	}
	ctx, cancel := context.WithTimeout(r.Context(), m.Timeout)
	defer cancel()
	resp, err := m.client.Do(ctx, out, body)
	m.count(err)
	if err != nil {
		if iam.ErrorCode(err) == "" {
			err = iam.Errorf(iam.EUnavailable, "the hub could not be reached: %v", err)
		}
		return err
	}
	if t := resp.Header.Get("Consistency-Token"); t != "" {
		if seq, err := ParseToken("Consistency-Token", t); err == nil {
			m.ack(seq)
		}
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	for _, k := range relay.HopHeaders {
		w.Header().Del(k)
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
	return nil
}

// ServeForwarded answers one request relayed by a region (the hub side of
// relay.Forwarder): it runs the request through this server's handler
// exactly as if it had arrived over HTTP and returns the encoded answer.
// Serve it with eventlog/bus Serve on bus.RPCSubject. It is safe for
// concurrent use.
func (s *Server) ServeForwarded(ctx context.Context, data []byte) []byte {
	h := s.Handler()
	return relay.Serve(ctx, data, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Iam-Region")
		h.ServeHTTP(w, r)
	}), func(w http.ResponseWriter, r *http.Request, err error) {
		s.log.Warn("bad forwarded request", "err", err)
		s.writeError(w, r, iam.Errorf(iam.EInvalid, "malformed forwarded request"))
	})
}
