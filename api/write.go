package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"io"
	"net/http"
	"strings"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/api/auth"
	"github.com/iam-project/iam/eventlog/writer"
)

// writeCall is one management write in progress.
type writeCall struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	p       Principal
	body    []byte
	idemKey string
}

const maxIdempotencyKey = 255

// beginWrite authenticates has happened; it authorizes the command skeleton
// (built from the path alone) before the body is judged, then reads the body.
func (s *Server) beginWrite(w http.ResponseWriter, r *http.Request, skeleton iam.Command) (*writeCall, error) {
	p := principal(r)
	// A nil skeleton: the permission depends on the body (self-service),
	// and Decide judges it.
	if skeleton != nil {
		if err := s.latest(r.Context(), func(st *iam.State) error { return iam.Authorize(st, p.Realm, p.ID, skeleton) }); err != nil {
			return nil, err
		}
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		return nil, iam.FieldErrorf("Idempotency-Key", "at most %d characters", maxIdempotencyKey)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, jsonError(err)
	}
	return &writeCall{s: s, w: w, r: r, p: p, body: body, idemKey: key}, nil
}

// decode reads the body as JSON into v (strictly); an empty body is allowed
// when optional.
func (c *writeCall) decode(v any, optional bool) error {
	if optional && len(bytes.TrimSpace(c.body)) == 0 {
		return nil
	}
	return decodeStrict(c.body, v)
}

// newID makes an entity id. With an Idempotency-Key it is derived from the
// key, so a retried create names the same entity and is recognised.
func (c *writeCall) newID(prefix string, n int, salt string) string {
	if c.idemKey == "" {
		return auth.NewID(prefix, n)
	}
	m := hmac.New(sha256.New, c.s.idemSecret)
	m.Write([]byte(c.p.Realm + "\x00" + c.idemKey + "\x00" + salt))
	enc := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(m.Sum(nil)))
	if prefix == "" {
		return enc[:n]
	}
	return prefix + "-" + enc[:n]
}

// execute runs cmd through the writer.
func (c *writeCall) execute(cmd iam.Command) (writer.Result, error) {
	req := iam.Request{Realm: c.p.Realm, Actor: c.p.ID, IdempotencyKey: c.idemKey, At: c.s.cfg.Now().UTC(), Command: cmd}
	if c.idemKey != "" {
		// Keyed so that the log holds no plain digest of a body that may
		// carry a password.
		m := hmac.New(sha256.New, c.s.idemSecret)
		m.Write([]byte(c.r.Method + " " + c.r.URL.Path + "\n"))
		m.Write(c.body)
		req.RequestHash = hex.EncodeToString(m.Sum(nil))
	}
	return c.s.execute(c.r.Context(), req)
}

// answer writes a successful write's body with its consistency token.
func (c *writeCall) answer(status int, res writer.Result, body map[string]any) error {
	if body == nil {
		body = map[string]any{}
	}
	tok := FormatToken(res.Seq)
	body["consistencyToken"] = tok
	if res.Replayed {
		c.w.Header().Set("Idempotent-Replayed", "true")
	}
	c.w.Header().Set("Consistency-Token", tok)
	writeJSON(c.w, status, body)
	return nil
}

// run is the common case: execute cmd and answer status with body.
func (c *writeCall) run(cmd iam.Command, status int, body map[string]any) error {
	res, err := c.execute(cmd)
	if err != nil {
		return err
	}
	return c.answer(status, res, body)
}
