package load

import (
	"encoding/json"
	"net/http"
)

// checkRequest and checkResponse have the shape of POST /v1/check's JSON.
type checkRequest struct {
	Subject     string `json:"subject"`
	Action      string `json:"action"`
	Resource    string `json:"resource"`
	Scope       string `json:"scope"`
	Consistency *struct {
		Mode   string `json:"mode"`
		Token  string `json:"token"`
		WaitMs *int   `json:"waitMs"`
	} `json:"consistency"`
}

type checkResponse struct {
	Allowed          bool   `json:"allowed"`
	Reason           string `json:"reason"`
	Region           string `json:"region"`
	ConsistencyToken string `json:"consistencyToken"`
}

// BareCheckHandler is the floor iam is measured against: it decodes the
// check JSON as strictly as iam does (bounded, no unknown fields) and
// encodes a same-shaped answer, and does nothing else.
func BareCheckHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		var in checkRequest
		if err := dec.Decode(&in); err != nil || in.Action == "" || in.Resource == "" {
			http.Error(w, "bad check", http.StatusBadRequest)
			return
		}
		out := checkResponse{Allowed: len(in.Resource)%2 == 0, Reason: "bare: no evaluation", Region: "eu-west", ConsistencyToken: "ct1.1"}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Consistency-Token", out.ConsistencyToken)
		_ = json.NewEncoder(w).Encode(out)
	})
}
