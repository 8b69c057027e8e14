package relay_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/iam-project/iam/api/relay"
)

func TestClient_Do(t *testing.T) {
	hub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("X-In"))
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	})
	c := &relay.Client{Region: "eu", Forward: func(ctx context.Context, data []byte) ([]byte, error) {
		return relay.Serve(ctx, data, hub, func(w http.ResponseWriter, _ *http.Request, err error) {
			t.Errorf("bad request: %v", err)
		}), nil
	}}
	r := httptest.NewRequest(http.MethodPost, "/v1/users?x=1", nil)
	r.Header.Set("X-In", "yes")
	resp, err := c.Do(context.Background(), r, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusCreated || string(resp.Body) != "hello" || resp.Header.Get("X-Echo") != "POST /v1/users?x=1 yes" {
		t.Fatalf("got %d %q %v, want 201 hello with the echo", resp.Status, resp.Body, resp.Header)
	}
}

func TestServe_bad(t *testing.T) {
	out := relay.Serve(context.Background(), []byte("no header line"), http.NotFoundHandler(), func(w http.ResponseWriter, _ *http.Request, err error) {
		w.WriteHeader(http.StatusBadRequest)
	})
	if !strings.HasPrefix(string(out), `{"status":400`) {
		t.Fatalf("got %s, want status 400", out)
	}
}
