package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	iam "github.com/iam-project/iam"
)

// statusOf maps domain error codes to HTTP statuses.
var statusOf = map[string]int{
	iam.EInvalid:          http.StatusBadRequest,
	iam.EUnauthenticated:  http.StatusUnauthorized,
	iam.EPermissionDenied: http.StatusForbidden,
	iam.ENotFound:         http.StatusNotFound,
	iam.EConflict:         http.StatusConflict,
	iam.ELimitExceeded:    http.StatusConflict,
	iam.ERateLimited:      http.StatusTooManyRequests,
	iam.EReplicaBehind:    http.StatusServiceUnavailable,
	iam.EUnavailable:      http.StatusServiceUnavailable,
	iam.EInternal:         http.StatusInternalServerError,
}

var titleOf = map[string]string{
	iam.EInvalid:          "Invalid argument",
	iam.EUnauthenticated:  "Unauthenticated",
	iam.EPermissionDenied: "Permission denied",
	iam.ENotFound:         "Not found",
	iam.EConflict:         "Conflict",
	iam.ELimitExceeded:    "Limit exceeded",
	iam.ERateLimited:      "Rate limited",
	iam.EReplicaBehind:    "Replica behind",
	iam.EUnavailable:      "Unavailable",
	iam.EInternal:         "Internal error",
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type          string `json:"type"`
	Title         string `json:"title"`
	Status        int    `json:"status"`
	Detail        string `json:"detail"`
	Code          string `json:"code"`
	Field         string `json:"field,omitempty"`
	CorrelationID string `json:"correlationId"`
}

// retryAfterSeconds is what 429 and 503 answers advise.
const retryAfterSeconds = 1

// writeError answers err as problem details. Internal errors are logged with
// the correlation id and never shown to the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := iam.ErrorCode(err)
	status := statusOf[code]
	if status == 0 {
		status, code = http.StatusInternalServerError, iam.EInternal
	}
	p := Problem{
		Type:          "https://iam.dev/problems/" + code,
		Title:         titleOf[code],
		Status:        status,
		Detail:        iam.ErrorMessage(err),
		Code:          code,
		Field:         iam.ErrorField(err),
		CorrelationID: correlationID(r),
	}
	if p.Field != "" {
		p.Detail = p.Field + ": " + p.Detail
	}
	if code == iam.EReplicaBehind && s.metrics != nil {
		// Counted here, whichever step found the replica behind (the
		// caller's token, or the read itself).
		if rep, err := s.region(r); err == nil {
			s.metrics.replicaBehind.WithLabelValues(rep.Region()).Inc()
		}
	}
	if code == iam.EInternal {
		s.log.Error("internal error", "correlationId", p.CorrelationID, "method", r.Method, "path", r.URL.Path, "err", err)
		p.Detail = "internal error; quote the correlation id when reporting it"
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="iam", error="invalid_token"`)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a JSON body strictly: bounded size, no unknown fields, no
// trailing data; errors are invalid_argument naming the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return jsonError(err)
	}
	return decodeStrict(body, v)
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields, a null or non-object top level, a null where the contract has
// none, and anything after the value.
func decodeStrict(body []byte, v any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return iam.FieldErrorf("body", "a JSON body is required")
	}
	if trimmed[0] != '{' {
		return iam.FieldErrorf("body", "must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return iam.FieldErrorf("body", "unexpected data after the JSON object")
	}
	return refuseNulls(trimmed, v)
}

const maxBodyBytes = 1 << 20

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return iam.FieldErrorf("body", "larger than %d bytes", maxBodyBytes)
	case errors.As(err, &syn):
		return iam.FieldErrorf("body", "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return iam.FieldErrorf(field, "must be a JSON %s, not %s", typ.Type.Kind(), typ.Value)
	case err.Error() == "EOF":
		return iam.FieldErrorf("body", "a JSON body is required")
	}
	msg := err.Error()
	const unknown = "json: unknown field "
	if len(msg) > len(unknown) && msg[:len(unknown)] == unknown {
		f, _ := strconv.Unquote(msg[len(unknown):])
		return iam.FieldErrorf(f, "unknown field")
	}
	return iam.FieldErrorf("body", "malformed JSON: %s", msg)
}

func notFoundPath(path string) error {
	return &iam.Error{Code: iam.ENotFound, Field: "path", Message: "no such endpoint: " + path}
}
