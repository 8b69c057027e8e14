package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes of the API's problem details (the `code` field).
const (
	CodeInvalidArgument  = "invalid_argument"
	CodeUnauthenticated  = "unauthenticated"
	CodePermissionDenied = "permission_denied"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeLimitExceeded    = "limit_exceeded"
	CodeRateLimited      = "rate_limited"
	CodeReplicaBehind    = "replica_behind"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// Sentinel errors for errors.Is: an *Error matches the sentinel of its code.
var (
	ErrInvalidArgument  = &Error{Code: CodeInvalidArgument}
	ErrUnauthenticated  = &Error{Code: CodeUnauthenticated}
	ErrPermissionDenied = &Error{Code: CodePermissionDenied}
	ErrNotFound         = &Error{Code: CodeNotFound}
	ErrConflict         = &Error{Code: CodeConflict}
	ErrRateLimited      = &Error{Code: CodeRateLimited}
	ErrReplicaBehind    = &Error{Code: CodeReplicaBehind}
	ErrUnavailable      = &Error{Code: CodeUnavailable}
)

// ErrNoEndpoints is returned by New when it is given no endpoint.
var ErrNoEndpoints = errors.New("client: no endpoints")

// Error is an error answer of the API: an RFC 9457 problem details body.
type Error struct {
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Code is the stable machine-readable word (CodeReplicaBehind, ...).
	Code          string `json:"code"`
	Type          string `json:"type,omitempty"`
	Title         string `json:"title,omitempty"`
	Detail        string `json:"detail,omitempty"`
	Field         string `json:"field,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	// RetryAfter is the answer's Retry-After (0 when absent).
	RetryAfter time.Duration `json:"-"`
	// Endpoint is the endpoint that answered.
	Endpoint string `json:"-"`
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Status != 0 {
		fmt.Fprintf(&b, "%d ", e.Status)
	}
	b.WriteString(e.Code)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.CorrelationID != "" {
		b.WriteString(" (correlation id " + e.CorrelationID + ")")
	}
	return b.String()
}

// Is reports whether target is a sentinel (an *Error with only a Code) of
// the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == 0 && t.Detail == "" && t.Code != "" && t.Code == e.Code
}

// Code returns the API error code of err, or "" when err is not an API
// error answer.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// parseError reads an error answer: problem details, an OAuth 2.0 error, or
// anything else (its status then decides the code).
func parseError(resp *http.Response, body []byte, endpoint string, now time.Time) *Error {
	e := &Error{}
	_ = json.Unmarshal(body, e)
	if e.Code == "" {
		var oauth struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &oauth) == nil && oauth.Error != "" {
			e.Code, e.Detail = oauth.Error, oauth.Description
		}
	}
	e.Status = resp.StatusCode
	e.Endpoint = endpoint
	if e.Code == "" {
		e.Code = codeOfStatus(resp.StatusCode)
		if e.Detail == "" {
			e.Detail = strings.TrimSpace(string(body))
			if len(e.Detail) > 200 {
				e.Detail = e.Detail[:200]
			}
		}
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	return e
}

func codeOfStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeInvalidArgument
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodePermissionDenied
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	return CodeInternal
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date
// (RFC 9110 §10.2.3); anything else is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, 24*time.Hour)
		}
	}
	return 0
}
