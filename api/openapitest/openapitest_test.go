package openapitest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/api/openapitest"
)

// TestOpenAPI_Valid checks that api/openapi.json is a valid OpenAPI 3.1
// document (against the specification's own schema, as the validator
// embeds it) and that every operation names its responses.
func TestOpenAPI_Valid(t *testing.T) {
	v, err := openapitest.Validator()
	if err != nil {
		t.Fatal(err)
	}
	if ok, errs := v.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("api/openapi.json: %s: %s", e.Message, e.Reason)
			for _, f := range e.SchemaValidationErrors {
				t.Errorf("  %s", f.Error())
			}
		}
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi: got %q, want 3.1.x", doc.OpenAPI)
	}
	ids := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s %s: no operationId", method, path)
			}
			if prev, dup := ids[id]; dup {
				t.Errorf("%s %s: operationId %q also names %s", method, path, id, prev)
			}
			ids[id] = method + " " + path
			if _, ok := op["responses"].(map[string]any); !ok {
				t.Errorf("%s %s: no responses", method, path)
			}
		}
	}
}

// roundTripFunc answers from a function, standing in for a server that
// breaks the contract (which the real one must not do).
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recorder is a testing.TB that keeps the errors reported to it.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestTransport shows that the transport fails a test on each kind of
// drift: a served path the document does not know, a response that breaks
// its schema, a request the document refuses but the server accepted. The
// server here is a stub on purpose: the real one must never drift.
func TestTransport(t *testing.T) {
	answer := func(status int, ctype, body string) roundTripFunc {
		return func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {ctype}},
				Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
		}
	}
	redirect := func(to string) roundTripFunc {
		return func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 307, Header: http.Header{"Location": {to}}, Body: http.NoBody, Request: r}, nil
		}
	}
	problem := `{"type":"t","title":"Not found","status":404,"detail":"d","code":"not_found","correlationId":"c"}`
	tests := []struct {
		name, method, path, body string
		server                   roundTripFunc
		wantErr                  string // "" for none
	}{
		{"documented and matching", "GET", "/healthz", "", answer(200, "application/json", `{"status":"ok"}`), ""},
		{"response breaks its schema", "GET", "/healthz", "", answer(200, "application/json", `{"status":1}`), "response"},
		{"undocumented status", "GET", "/healthz", "", answer(418, "application/json", `{}`), "response"},
		{"undocumented content type", "GET", "/ui/lag", "", answer(200, "application/json", `{}`), "response"},
		{"served but undocumented path", "GET", "/v1/unheard", "", answer(200, "application/json", `{}`), "undocumented"},
		{"unserved undocumented path", "GET", "/v1/unheard", "", answer(404, "application/problem+json", problem), ""},
		{"invalid request accepted", "POST", "/v1/groups", `{"name":"g","extra":1}`,
			answer(201, "application/json", `{"id":"g","hrn":"h","name":"g","consistencyToken":"t"}`), "invalid by the document"},
		{"invalid request refused", "POST", "/v1/groups", `{"name":"g","extra":1}`,
			answer(400, "application/problem+json", `{"type":"t","title":"Invalid argument","status":400,"detail":"extra: unknown field","code":"invalid_argument","correlationId":"c"}`), ""},
		{"problem details missing a member", "POST", "/v1/groups", `{"name":"g"}`,
			answer(400, "application/problem+json", `{"title":"Invalid argument","status":400}`), "response"},
		{"event stream", "GET", "/v1/changes", "", answer(200, "text/event-stream", "id: 1\n\n"), ""},
		{"event stream refused", "GET", "/v1/changes", "", answer(200, "application/json", "{}"), "response"},
		{"unclean path redirected to its clean form", "DELETE", "/v1/groups/../members/x", "", redirect("/v1/members/x"), ""},
		{"clean path redirected", "DELETE", "/v1/groups/g/members/x", "", redirect("/elsewhere"), "response"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			hc := &http.Client{Transport: openapitest.Transport(rec, tc.server),
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, _ := http.NewRequest(tc.method, "http://127.0.0.1:1"+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer x")
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			got := strings.Join(rec.errs, "\n")
			switch {
			case tc.wantErr == "" && got != "":
				t.Errorf("got errors %s, want none", got)
			case tc.wantErr != "" && !strings.Contains(got, tc.wantErr):
				t.Errorf("got errors %q, want one saying %q", got, tc.wantErr)
			}
		})
	}
}
