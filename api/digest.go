package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	iam "github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog"
	"github.com/iam-project/iam/eventlog/snapshots"
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
// write. Both need ActionManageReplicas on the caller's realm (OrgAdmin has
// it): a digest costs a pass over every row.

// ActionManageReplicas is the permission to take digests and snapshots of
// the read model (on the realm's HRN; OrgAdmin has it).
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

// concreteReplica and concreteLog: the snapshot and digest work needs the
// concrete replica and log until it moves into package replica.
func (s *Server) concreteReplica(region string) *replica.Replica {
	rep, _ := s.replicas[region].(*replica.Replica)
	return rep
}

func (s *Server) concreteLog() *eventlog.Log {
	log, _ := s.evlog.(*eventlog.Log)
	return log
}

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
func (s *Server) authorizeReplicas(r *http.Request, rep *replica.Replica) error {
	p := principal(r)
	check := func(st *iam.State) error {
		return iam.AuthorizeAction(st, p.Realm, p.ID, ActionManageReplicas, iam.RealmHRN(p.Realm))
	}
	if rep == nil {
		return s.latest(r.Context(), check)
	}
	_, err := rep.Read(r.Context(), replica.Consistency{Mode: iam.MinimizeLatency}, check)
	return err
}

func (s *Server) digest(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("region")
	rep := s.concreteReplica(name)
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
	d, err := replica.DigestAt(r.Context(), rep, at, wait)
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

func viewSnapshot(i snapshots.Info) snapshotView {
	return snapshotView{Name: i.Name, Token: FormatToken(i.Seq), Sequence: i.Seq, Digest: i.Digest, Rows: i.Rows, Bytes: i.Size, Created: i.Created}
}

// takeSnapshot serves POST /v1/replicas/snapshot: once the default
// region's replica has applied the log's head as of the request, its read
// model is stored as the newest snapshot. 201 with the snapshot.
func (s *Server) takeSnapshot(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeReplicas(r, nil); err != nil {
		return err
	}
	rep, log := s.concreteReplica(s.cfg.DefaultRegion), s.concreteLog()
	if rep == nil || log == nil {
		return iam.Errorf(iam.EUnavailable, "no replica to snapshot here")
	}
	if err := rep.Ensure(r.Context(), replica.Consistency{Mode: iam.FullyConsistent, Wait: snapshotCurrentWait}); err != nil {
		return err
	}
	info, err := PublishSnapshot(r.Context(), log, rep, 0)
	if err != nil {
		return err
	}
	s.log.Info("snapshot taken on request", "region", rep.Region(), "seq", info.Seq, "rows", info.Rows, "bytes", info.Size,
		"correlation", correlationID(r))
	writeJSON(w, http.StatusCreated, viewSnapshot(info))
	return nil
}

// listSnapshots serves GET /v1/replicas/snapshots, newest first.
func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizeReplicas(r, s.concreteReplica(s.cfg.DefaultRegion)); err != nil {
		return err
	}
	out := []snapshotView{}
	log := s.concreteLog()
	if log == nil {
		return iam.Errorf(iam.EUnavailable, "no log to list snapshots from here")
	}
	store, err := snapshots.Open(r.Context(), log, false)
	if iam.ErrorCode(err) == iam.ENotFound {
		writeJSON(w, http.StatusOK, map[string]any{"snapshots": out})
		return nil
	} else if err != nil {
		return err
	}
	all, err := store.List(r.Context())
	if err != nil {
		return err
	}
	for _, i := range all {
		out = append(out, viewSnapshot(i))
	}
	writeJSON(w, http.StatusOK, map[string]any{"snapshots": out})
	return nil
}

// publishMu makes the snapshots of one process go one at a time: two at
// the same position would store the same object twice.
var publishMu sync.Mutex

// PublishSnapshot stores a snapshot of rep's read model as it is now in
// log's snapshot bucket (made if missing), keeping the newest keep (0: the
// default), unless the bucket already holds one at or past rep's
// position, which it then returns. The replica goes on applying meanwhile:
// the snapshot reads a pinned Pebble state.
//
// Errors: conflict when rep has applied nothing; others from the bucket.
func PublishSnapshot(ctx context.Context, log *eventlog.Log, rep *replica.Replica, keep int) (snapshots.Info, error) {
	publishMu.Lock()
	defer publishMu.Unlock()
	store, err := snapshots.Open(ctx, log, true)
	if err != nil {
		return snapshots.Info{}, err
	}
	store.Keep = keep
	snap, err := rep.Store().Snapshot()
	if err != nil {
		return snapshots.Info{}, err
	}
	defer snap.Close()
	d := snap.Digest()
	if d.Seq == 0 {
		return snapshots.Info{}, iam.Errorf(iam.EConflict, "region %s has applied nothing to snapshot", rep.Region())
	}
	if latest, err := store.Latest(ctx); err == nil && latest.Seq >= d.Seq {
		return latest, nil
	}
	now := time.Now()
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		_, _, err := snap.Write(pw, replica.SnapshotOptions{Now: func() time.Time { return now }})
		pw.CloseWithError(err)
		written <- err
	}()
	info, err := store.Put(ctx, snapshots.Info{Seq: d.Seq, MsgID: d.MsgID, Rows: d.Rows, Digest: d.SHA256, Created: now}, pr)
	pr.CloseWithError(errors.New("snapshot upload ended")) // unblocks the writer if Put gave up
	if werr := <-written; err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return snapshots.Info{}, fmt.Errorf("publish snapshot of %s at %d: %w", rep.Region(), d.Seq, err)
	}
	return info, nil
}

// Defaults of Snapshotter.
const (
	DefaultSnapshotEvery    = 100_000
	DefaultSnapshotInterval = time.Hour
	defaultSnapshotCheck    = 10 * time.Second
)

// Snapshotter publishes a snapshot of Replica now and then: once Every
// entries were applied since the newest stored snapshot, or Interval after
// it when anything was. Only while Leader says so (one process of a hub:
// the stream leader's). Configure the fields, then Start; Stop ends it.
type Snapshotter struct {
	Log     *eventlog.Log
	Replica *replica.Replica
	// Every is the number of applied entries that calls for a snapshot.
	// Default DefaultSnapshotEvery.
	Every uint64
	// Interval is the longest time between snapshots while the log moves.
	// Default DefaultSnapshotInterval.
	Interval time.Duration
	// Check is how often the conditions are looked at. Default 10s (or
	// Interval, if shorter).
	Check time.Duration
	// Keep is how many snapshots the bucket keeps. Default
	// snapshots.DefaultKeep.
	Keep int
	// Leader reports whether this process should publish. nil: always.
	Leader func() bool
	Logger *slog.Logger
	Now    func() time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start starts the background loop.
func (sn *Snapshotter) Start(ctx context.Context) error {
	if sn.Log == nil || sn.Replica == nil {
		return errors.New("snapshotter: Log and Replica are required")
	}
	if sn.Every == 0 {
		sn.Every = DefaultSnapshotEvery
	}
	if sn.Interval <= 0 {
		sn.Interval = DefaultSnapshotInterval
	}
	if sn.Check <= 0 {
		sn.Check = min(defaultSnapshotCheck, sn.Interval)
	}
	if sn.Logger == nil {
		sn.Logger = slog.Default()
	}
	if sn.Now == nil {
		sn.Now = time.Now
	}
	ctx, sn.cancel = context.WithCancel(ctx)
	sn.wg.Add(1)
	go sn.run(ctx)
	return nil
}

// Stop stops the loop and waits for a snapshot in progress.
func (sn *Snapshotter) Stop() {
	if sn.cancel != nil {
		sn.cancel()
		sn.wg.Wait()
	}
}

func (sn *Snapshotter) run(ctx context.Context) {
	defer sn.wg.Done()
	log := sn.Logger.With("region", sn.Replica.Region())
	t := time.NewTicker(sn.Check)
	defer t.Stop()
	var lastSeq uint64
	var lastAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if sn.Leader != nil && !sn.Leader() {
			continue
		}
		if lastAt.IsZero() {
			// Learn where the bucket stands (another process may have led).
			lastAt = sn.Now()
			if store, err := snapshots.Open(ctx, sn.Log, false); err == nil {
				if latest, err := store.Latest(ctx); err == nil {
					lastSeq, lastAt = latest.Seq, latest.Created
				}
			}
		}
		applied := sn.Replica.Applied()
		if applied <= lastSeq || (applied-lastSeq < sn.Every && sn.Now().Sub(lastAt) < sn.Interval) {
			continue
		}
		start := time.Now()
		info, err := PublishSnapshot(ctx, sn.Log, sn.Replica, sn.Keep)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("periodic snapshot", "err", err)
			}
			continue
		}
		lastSeq, lastAt = info.Seq, sn.Now()
		log.Info("snapshot published", "seq", info.Seq, "rows", info.Rows, "bytes", info.Size, "took", time.Since(start).Round(time.Millisecond))
	}
}
