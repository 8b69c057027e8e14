package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/replica"
)

// Joining a region: read-model snapshots and digests (docs/joining.md).
//
//	GET  /v1/replicas/{region}/digest?at=<token>&waitMs=<ms>
//	POST /v1/replicas/snapshot
//	GET  /v1/replicas/snapshots
//
// A digest is the SHA-256 of a region's read model (every row and the
// position) at exactly the token asked for: two regions with the same
// digest at the same token hold the same state. Without at, it is taken
// where the region stands. A process answers for the regions it serves.
//
// A snapshot is the read model of this process's default region, stored
// in the hub's snapshot bucket, from which a new region starts instead of
// replaying the log. In a region, POST is forwarded to the hub like every
// write. Both cover every realm, so both need an operator of the system
// realm (iam.State.SystemRealm, the bootstrap realm): ActionManageReplicas
// on it (its OrgAdmin has it). A digest costs a pass over every row.

// ActionManageReplicas is the permission to take digests and snapshots of
// the read model (on the system realm's HRN; its OrgAdmin has it).
const ActionManageReplicas = "manageReplicas"

// Defaults of the snapshot and digest endpoints.
const (
	// DefaultDigestWait is how long a digest request waits for its region
	// to reach the token when it names no waitMs.
	DefaultDigestWait = 5 * time.Second
	// snapshotCurrentWait bounds how long POST /v1/replicas/snapshot waits
	// for the replica to apply the log's head before it snapshots.
	snapshotCurrentWait = 10 * time.Second
)

// joinRoutes registers the digest and snapshot endpoints.
func (s *Server) joinRoutes(m *http.ServeMux, h handle) {
	h("GET /v1/replicas/{region}/digest", true, s.digest)
	h("POST /v1/replicas/snapshot", false, s.takeSnapshot)
	h("GET /v1/replicas/snapshots", true, s.listSnapshots)
}

// digestView is the answer of GET /v1/replicas/{region}/digest.
type digestView struct {
	Region   string `json:"region"`
	Token    string `json:"token"`
	Sequence uint64 `json:"sequence"`
	Digest   string `json:"digest"`
	Rows     uint64 `json:"rows"`
}

// authorizeReplicas checks ActionManageReplicas on rep, as it stands: a
// region cut off from the hub still answers for itself.
func (s *Server) authorizeReplicas(r *http.Request, rep Replica) error {
	p := principal(r)
	check := func(st *iam.State) error {
		if err := iam.AuthorizeAction(st, p.Realm, p.ID, ActionManageReplicas, iam.RealmHRN(p.Realm)); err != nil {
			return err
		}
		if !st.SystemRealm(p.Realm) {
			return iam.Errorf(iam.EPermissionDenied, "digests and snapshots cover every realm: only an operator of the system realm (the bootstrap realm) may take them")
		}
		return nil
	}
	if rep == nil {
		return s.latest(r.Context(), check)
	}
	_, err := rep.Read(r.Context(), replica.Consistency{Mode: iam.MinimizeLatency}, check)
	return err
}

func (s *Server) digest(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("region")
	rep := s.replicas[name]
	if rep == nil {
		return iam.Errorf(iam.ENotFound, "region %q is not served by this process (it serves %s); ask that region's endpoint", name, strings.Join(s.regions, ", "))
	}
	if err := s.authorizeReplicas(r, rep); err != nil {
		return err
	}
	q := r.URL.Query()
	var at uint64
	if v := q.Get("at"); v != "" {
		var err error
		if at, err = ParseToken("at", v); err != nil {
			return err
		}
	}
	wait := DefaultDigestWait
	if v := q.Get("waitMs"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 || ms > maxWaitMs {
			return iam.FieldErrorf("waitMs", "must be from 0 to %d", maxWaitMs)
		}
		wait = time.Duration(ms) * time.Millisecond
	}
	d, err := rep.DigestAt(r.Context(), at, wait)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, digestView{Region: name, Token: FormatToken(d.Seq), Sequence: d.Seq, Digest: d.SHA256, Rows: d.Rows})
	return nil
}

// snapshotView is a stored snapshot in the API.
type snapshotView struct {
	Name     string    `json:"name"`
	Token    string    `json:"token"`
	Sequence uint64    `json:"sequence"`
	Digest   string    `json:"digest"`
	Rows     uint64    `json:"rows"`
	Bytes    uint64    `json:"bytes"`
	Created  time.Time `json:"created"`
}

func viewSnapshot(i iam.SnapshotInfo) snapshotView {
	return snapshotView{Name: i.Name, Token: FormatToken(i.Seq), Sequence: i.Seq, Digest: i.Digest, Rows: i.Rows, Bytes: i.Size, Created: i.Created}
}

// takeSnapshot serves POST /v1/replicas/snapshot: once the replica of
// Config.Snapshots (the default region's) has applied the log's head as of
// the request, its read model is stored as the newest snapshot. 201 with
// the snapshot.
func (s *Server) takeSnapshot(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeReplicas(r, nil); err != nil {
		return err
	}
	if simulationFrom(r.Context()) != nil {
		return errNotSimulated("a snapshot")
	}
	pub := s.cfg.Snapshots
	if pub == nil {
		return iam.Errorf(iam.EUnavailable, "no replica to snapshot here")
	}
	info, err := pub.PublishCurrent(r.Context(), snapshotCurrentWait)
	if err != nil {
		return err
	}
	s.log.Info("snapshot taken on request", "region", pub.Region(), "seq", info.Seq, "rows", info.Rows, "bytes", info.Size,
		"correlation", correlationID(r))
	writeJSON(w, http.StatusCreated, viewSnapshot(info))
	return nil
}

// listSnapshots serves GET /v1/replicas/snapshots, newest first.
func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeReplicas(r, s.replicas[s.cfg.DefaultRegion]); err != nil {
		return err
	}
	if s.cfg.Snapshots == nil {
		return iam.Errorf(iam.EUnavailable, "no snapshot bucket to list here")
	}
	all, err := s.cfg.Snapshots.List(r.Context())
	if err != nil {
		return err
	}
	out := []snapshotView{}
	for _, i := range all {
		out = append(out, viewSnapshot(i))
	}
	writeJSON(w, http.StatusOK, map[string]any{"snapshots": out})
	return nil
}
