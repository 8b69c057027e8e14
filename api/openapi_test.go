package api_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/iam-project/iam/api"
	"github.com/iam-project/iam/cmd/iamd/daemon/daemontest"
)

// TestOpenAPI_Served: GET /openapi.json is public and answers the embedded
// document byte for byte (the harness holds the exchange to the document,
// as it holds every other).
func TestOpenAPI_Served(t *testing.T) {
	m := daemontest.Start(t, "")
	r := (&daemontest.Client{TB: t, Base: daemontest.URL(m)}).Must(http.StatusOK, "GET", "/openapi.json", nil)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	if !bytes.Equal(r.Raw, api.OpenAPI) {
		t.Errorf("got %d bytes, want the %d of api/openapi.json", len(r.Raw), len(api.OpenAPI))
	}
}
