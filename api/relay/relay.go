// Package relay carries HTTP requests between processes over a
// request/reply transport (eventlog/bus on NATS): a region relays a request
// it must not answer itself (a write, a token request) to the hub with
// Client, and the hub answers it with Serve, through its own handler,
// exactly as if it had arrived over HTTP. The wire form is a JSON header
// line, a newline, then the body's raw bytes.
package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Forwarder carries one encoded request to the hub and returns the hub's
// encoded answer (eventlog/bus Request on bus.RPCSubject). It returns an
// error when the hub cannot be reached or did not answer in time.
type Forwarder func(ctx context.Context, data []byte) ([]byte, error)

// HopHeaders are not relayed either way.
var HopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"}

// request is the wire form of a relayed request.
type request struct {
	Method     string      `json:"method"`
	URL        string      `json:"url"` // path and query
	Host       string      `json:"host"`
	RemoteAddr string      `json:"remoteAddr,omitempty"`
	Region     string      `json:"region,omitempty"`
	Header     http.Header `json:"header,omitempty"`
}

// response is the wire form of the hub's answer.
type response struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
}

func encode(meta any, body []byte) ([]byte, error) {
	head, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(head)+1+len(body))
	out = append(append(out, head...), '\n')
	return append(out, body...), nil
}

func decode(data []byte, meta any) ([]byte, error) {
	head, body, ok := bytes.Cut(data, []byte{'\n'})
	if !ok {
		return nil, errors.New("forwarded message: no header line")
	}
	if err := json.Unmarshal(head, meta); err != nil {
		return nil, fmt.Errorf("forwarded message: %w", err)
	}
	return body, nil
}

// Response is the hub's answer to a relayed request.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Client relays requests to the hub. It is safe for concurrent use.
type Client struct {
	// Forward carries the encoded request. Required.
	Forward Forwarder
	// Region names the relaying region to the hub.
	Region string
}

// Do relays r, whose body has been read into body, and returns the hub's
// answer. The caller strips what the hub must not see (hop headers, the
// caller's region). Errors are the Forwarder's, or a malformed answer.
func (c *Client) Do(ctx context.Context, r *http.Request, body []byte) (Response, error) {
	return c.do(ctx, request{Method: r.Method, URL: r.URL.RequestURI(), Host: r.Host, RemoteAddr: r.RemoteAddr,
		Region: c.Region, Header: r.Header}, body)
}

// Get relays a GET of path (with host "hub") and returns the body of a 200
// answer; any other status is an error.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	resp, err := c.do(ctx, request{Method: http.MethodGet, URL: path, Host: "hub", Region: c.Region}, nil)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, fmt.Errorf("get %s: hub answered %d", path, resp.Status)
	}
	return resp.Body, nil
}

func (c *Client) do(ctx context.Context, req request, body []byte) (Response, error) {
	data, err := encode(req, body)
	if err != nil {
		return Response{}, err
	}
	answer, err := c.Forward(ctx, data)
	if err != nil {
		return Response{}, err
	}
	var resp response
	rbody, err := decode(answer, &resp)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.Status, Header: resp.Header, Body: rbody}, nil
}

// Serve answers one relayed request (the hub side of Forwarder): it runs
// it through h with ctx and returns the encoded answer. A request that
// cannot be decoded is answered by bad instead, given a placeholder GET /
// request. It is safe for concurrent use if h is.
func Serve(ctx context.Context, data []byte, h http.Handler, bad func(http.ResponseWriter, *http.Request, error)) []byte {
	w := &responseWriter{header: http.Header{}}
	var in request
	body, err := decode(data, &in)
	var req *http.Request
	if err == nil {
		req, err = http.NewRequestWithContext(ctx, in.Method, "http://"+in.Host+in.URL, bytes.NewReader(body))
	}
	if err != nil {
		placeholder, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		placeholder.RemoteAddr = "relay"
		bad(w, placeholder, err)
	} else {
		req.Header = in.Header
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Host, req.RemoteAddr = in.Host, in.RemoteAddr
		req.ContentLength = int64(len(body))
		h.ServeHTTP(w, req)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	out, err := encode(response{Status: w.status, Header: w.header}, w.body.Bytes())
	if err != nil {
		out, _ = encode(response{Status: http.StatusInternalServerError}, nil)
	}
	return out
}

// responseWriter collects a relayed request's answer.
type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

// Write without WriteHeader sniffs a missing Content-Type, as net/http does.
func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		_, hasType := w.header["Content-Type"]
		if !hasType && w.header.Get("Transfer-Encoding") == "" {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
