// Package openapitest holds HTTP traffic to the contract of record,
// api.OpenAPI: a RoundTripper that validates every request and response
// passing through it with pb33f/libopenapi-validator and reports each
// mismatch as a test error naming the operation. The end-to-end harness
// (cmd/iamd/daemon/daemontest) and the api/client tests send through it,
// so the document cannot drift from the code.
//
// The rules, in short: a response must match the document (status,
// content type, body schema), whatever the request was; a request the
// document calls invalid must have been refused (4xx) by the server; a
// path or method the document does not know must have been refused (404,
// 405 or another 4xx), so a new endpoint fails the tests that use it until
// it is documented in api/openapi.json (see docs/openapi.md).
package openapitest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"

	"github.com/iam-project/iam/api"
)

// shared is the document's validator, built once: building it parses the
// whole document. Its methods are not documented as safe for concurrent
// use, hence the lock.
var shared struct {
	once sync.Once
	mu   sync.Mutex
	v    validator.Validator
	err  error
}

// Validator returns the validator of api.OpenAPI, or why it could not be
// built.
func Validator() (validator.Validator, error) {
	shared.once.Do(func() {
		doc, err := libopenapi.NewDocument(api.OpenAPI)
		if err != nil {
			shared.err = fmt.Errorf("parse api/openapi.json: %w", err)
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			shared.err = fmt.Errorf("build validator of api/openapi.json: %v", errs)
			return
		}
		shared.v = v
	})
	return shared.v, shared.err
}

// Client returns an http.Client whose every exchange (each redirect hop
// too) is validated and reported to tb.
func Client(tb testing.TB) *http.Client {
	return &http.Client{Transport: Transport(tb, nil)}
}

// Transport wraps next (http.DefaultTransport when nil) so that every
// request and response through it is validated against api.OpenAPI and
// every mismatch is reported with tb.Errorf. Bodies are buffered for
// validation and handed on unchanged; a Server-Sent Events stream is not
// read: only its status and content type are checked.
func Transport(tb testing.TB, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{tb: tb, next: next}
}

type transport struct {
	tb   testing.TB
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if problems := t.check(req, reqBody, resp); len(problems) > 0 {
		t.tb.Errorf("OpenAPI: %s %s → %d: %s", req.Method, req.URL.Path, resp.StatusCode, strings.Join(problems, "; "))
	}
	return resp, nil
}

// check validates one exchange, leaving resp readable, and returns what
// does not match the document.
func (t *transport) check(req *http.Request, reqBody []byte, resp *http.Response) []string {
	if req.Method == http.MethodHead {
		// net/http serves HEAD wherever it serves GET; the document
		// describes the GET.
		return nil
	}
	v, err := Validator()
	if err != nil {
		return []string{err.Error()}
	}
	// The validator reads bodies; it gets copies.
	vreq := req.Clone(req.Context())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	vresp := *resp
	vresp.Body = http.NoBody
	if !isStream(resp) {
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return nil // the test reading the body sees the same failure
		}
		vresp.Body = io.NopCloser(bytes.NewReader(body))
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != "" && !canonical(req.URL.Path) {
		// net/http's ServeMux redirects a path with empty or dot segments
		// to its clean form; the document describes clean paths.
		return nil
	}
	_, reqErrs := v.ValidateHttpRequestSync(vreq)
	var out []string
	for _, e := range reqErrs {
		switch {
		case e.IsPathMissingError() || e.IsOperationMissingError():
			// Undocumented: fine only if the server refused it (404,
			// 405, or a 4xx of a route that a templated path of the
			// document covers, such as GET /v1/invitations/resend).
			if resp.StatusCode >= 400 && resp.StatusCode < 500 {
				return nil
			}
			return []string{"the server serves an undocumented operation (add it to api/openapi.json): " + describe(e)}
		case e.ValidationSubType == helpers.RequestBodyContentType:
			// The server reads every body as JSON whatever its declared
			// type (strict about the JSON itself); the document says what
			// a client sends.
		case resp.StatusCode < 400:
			// The document refuses what the server accepted.
			out = append(out, "request accepted by the server but invalid by the document: "+describe(e))
		}
	}
	if _, respErrs := v.ValidateHttpResponse(vreq, &vresp); len(respErrs) > 0 {
		for _, e := range respErrs {
			out = append(out, "response: "+describe(e))
		}
	}
	return out
}

// canonical reports whether p has no empty, "." or ".." segments.
func canonical(p string) bool {
	return path.Clean(p) == p || path.Clean(p)+"/" == p
}

func isStream(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
}

// describe renders a validation error with its schema failures, which say
// which field is wrong.
func describe(e *verrors.ValidationError) string {
	s := e.Message
	if e.Reason != "" && e.Reason != e.Message {
		s += " (" + e.Reason + ")"
	}
	for _, f := range e.SchemaValidationErrors {
		s += " [" + f.Error() + "]"
	}
	return s
}
