package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/iam-project/iam"
	"github.com/iam-project/iam/eventlog/logsign"
)

// Subjects of the stream. Every event message goes to
// iam.evt.<realm>.<aggregate>; heartbeats to HeartbeatSubject.
const (
	SubjectPrefix    = "iam.evt"
	StreamSubjects   = SubjectPrefix + ".>"
	SysRealm         = "_sys"
	HeartbeatSubject = SubjectPrefix + "." + SysRealm + ".heartbeat"
)

// Message headers of the envelope.
const (
	// EnvelopeHeader carries the envelope version; a reader refuses any
	// version other than EnvelopeVersion rather than guess.
	EnvelopeHeader  = "Iam-Envelope"
	EnvelopeVersion = "1"
)

// Defaults of Config.
const (
	DefaultStream         = "IAM"
	DefaultDuplicates     = 2 * time.Minute
	DefaultPublishTimeout = 2 * time.Second
	DefaultMaxRetries     = 5
)

// Config configures a Log. The zero value is usable.
type Config struct {
	// Stream name. Defaults to "IAM".
	Stream string
	// Replicas of the stream. Defaults to 1.
	Replicas int
	// Domain is the JetStream domain to talk to, empty for the local one.
	Domain string
	// Duplicates is the de-duplication window for message ids. Defaults to
	// 2m: a MsgID repeated later than this is stored again.
	Duplicates time.Duration
	// PublishTimeout bounds one publish attempt. Defaults to 2s.
	PublishTimeout time.Duration
	// MaxRetries bounds the re-publishes of an append whose outcome is
	// unknown (timeout, no response). Defaults to 5; -1 disables retries.
	MaxRetries int
	// Backoff returns the schedule between those re-publishes. Defaults to
	// exponential from 20ms to 500ms. The Log adds WithContext and
	// WithMaxRetries.
	Backoff func() backoff.BackOff
	// OnRetry, if set, is called before each re-publish with a short cause
	// ("timeout", "no_responders", ...). It must be safe for concurrent use.
	OnRetry func(cause string)
	// Signer, if set, signs every appended message (heartbeats too): the
	// hub's. See package logsign.
	Signer Signer
	// Verifier, if set, verifies every message read (Get, Follow, Read)
	// from its SignedFrom on:
	// an unsigned one fails with an error wrapping ErrUnsigned, a forged one
	// with ErrForged. Regions and the all-in-one set it.
	Verifier Verifier
}

// Signer signs log messages (*logsign.Signer).
type Signer interface {
	Sign(m logsign.Message) string
}

// Verifier verifies log messages (*logsign.Verifier): errors wrap
// logsign.ErrUnsigned or logsign.ErrForged.
type Verifier interface {
	Verify(sig string, m logsign.Message) error
	// SignedFrom is the first sequence that must be signed: entries
	// before it predate signing (an upgraded log) and are read unsigned.
	SignedFrom() uint64
}

var (
	_ Signer   = (*logsign.Signer)(nil)
	_ Verifier = (*logsign.Verifier)(nil)
)

// Errors of a message that fails verification. Retrying cannot help: the
// log holds an entry its writer did not sign.
var (
	ErrUnsigned = logsign.ErrUnsigned
	ErrForged   = logsign.ErrForged
)

// Log is the event log: one JetStream stream. It is safe for concurrent use.
type Log struct {
	cfg    Config
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Open creates the stream, or updates its configuration, and returns a Log
// over it. The stream holds subjects iam.evt.>, on file, with limits
// retention and no age limit: the log is the source of truth.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Log, error) {
	cfg = withDefaults(cfg)
	js, err := newJetStream(nc, cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "iam event log (source of truth)",
		Subjects:    []string{StreamSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardOld,
		MaxAge:      0,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Duplicates:  cfg.Duplicates,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open log: stream %s: %w", cfg.Stream, err)
	}
	return &Log{cfg: cfg, js: js, stream: stream}, nil
}

// JetStream returns the JetStream context the Log uses: the key vault and
// the snapshot bucket live in the same domain as the stream.
func (l *Log) JetStream() jetstream.JetStream { return l.js }

// Replicas returns the stream's replica count, for buckets kept beside it.
func (l *Log) Replicas() int { return l.cfg.Replicas }

// StreamName returns the name of the stream.
func (l *Log) StreamName() string { return l.cfg.Stream }

// Subject returns the subject of one aggregate of a realm,
// iam.evt.<realm>.<aggregate>. Tokens must be non-empty and hold no '.', '*',
// '>' or white space; otherwise the error is invalid_argument.
func Subject(realm, aggregate string) (string, error) {
	if err := validToken("realm", realm); err != nil {
		return "", err
	}
	if err := validToken("aggregate", aggregate); err != nil {
		return "", err
	}
	return SubjectPrefix + "." + realm + "." + aggregate, nil
}

// RealmSubjects returns the wildcard subject of all aggregates of a realm,
// iam.evt.<realm>.>. The realm is not validated (see Subject).
func RealmSubjects(realm string) string {
	return SubjectPrefix + "." + realm + ".>"
}

func validToken(field, tok string) error {
	if tok == "" {
		return iam.FieldErrorf(field, "must not be empty")
	}
	for _, r := range tok {
		if r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return iam.FieldErrorf(field, "%q must not contain '.', '*', '>' or white space", tok)
		}
	}
	return nil
}

// validSubject accepts exactly iam.evt.<realm>.<aggregate>.
func validSubject(subject string) error {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix+".")
	if !ok {
		return iam.FieldErrorf("subject", "%q is not under %s", subject, StreamSubjects)
	}
	realm, agg, ok := strings.Cut(rest, ".")
	if !ok {
		return iam.FieldErrorf("subject", "%q lacks an aggregate", subject)
	}
	if err := validToken("realm", realm); err != nil {
		return err
	}
	return validToken("aggregate", agg)
}

// AppendRequest is one message to append.
type AppendRequest struct {
	// Subject of the aggregate (see Subject). Required.
	Subject string
	// Commits form the message body. At least one.
	Commits []iam.Commit
	// MsgID de-duplicates the append within the Duplicates window. When
	// empty a unique id is generated, so that re-publishing after an
	// ambiguous failure cannot store the message twice.
	MsgID string
	// ExpectRealm, when set, makes the append conditional: it is stored only
	// if the last message on any subject of that realm has sequence
	// ExpectSeq (0: the realm has no message yet).
	ExpectRealm string
	ExpectSeq   uint64
}

// Append stores one message and returns its stream sequence, the consistency
// token. If the message's MsgID was already stored within the window, it
// returns the original sequence and stores nothing.
//
// Errors: invalid_argument for a bad subject or an empty request; conflict
// when the realm expectation is stale; unavailable when the outcome is still
// unknown after the bounded re-publishes (the caller may retry with the same
// MsgID); other errors are internal.
func (l *Log) Append(ctx context.Context, req AppendRequest) (uint64, error) {
	if err := validSubject(req.Subject); err != nil {
		return 0, fmt.Errorf("append %s: %w", req.Subject, err)
	}
	if req.ExpectRealm != "" {
		if err := validToken("realm", req.ExpectRealm); err != nil {
			return 0, fmt.Errorf("append %s: %w", req.Subject, err)
		}
	}
	if len(req.Commits) == 0 {
		return 0, fmt.Errorf("append %s: %w", req.Subject, iam.FieldErrorf("commits", "at least one commit is required"))
	}
	data, err := iam.MarshalCommits(req.Commits)
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", req.Subject, err)
	}
	msgID := req.MsgID
	if msgID == "" {
		msgID = nuid.Next()
	}
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(msgID), jetstream.WithExpectStream(l.cfg.Stream)}
	if req.ExpectRealm != "" {
		opts = append(opts, jetstream.WithExpectLastSequenceForSubject(req.ExpectSeq, RealmSubjects(req.ExpectRealm)))
	}

	expect := ""
	if req.ExpectRealm != "" {
		expect = logsign.Expect(req.ExpectRealm, req.ExpectSeq)
	}
	sig := ""
	if l.cfg.Signer != nil {
		sig = l.cfg.Signer.Sign(logsign.Entry(req.Subject, msgID, expect, data))
	}

	var seq uint64
	attempt := 0
	op := func() error {
		attempt++
		// The headers are rebuilt on every attempt: PublishMsg fills them in.
		m := nats.NewMsg(req.Subject)
		m.Data = data
		m.Header.Set(EnvelopeHeader, EnvelopeVersion)
		if expect != "" {
			m.Header.Set(logsign.ExpectHeader, expect)
		}
		if sig != "" {
			m.Header.Set(logsign.SigHeader, sig)
		}
		pctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
		ack, err := l.js.PublishMsg(pctx, m, opts...)
		cancel()
		if err == nil {
			seq = ack.Sequence
			return nil
		}
		if isWrongLastSequence(err) {
			// On R1 the server checks the expectation before
			// de-duplication: a re-publish of a message stored by an
			// earlier attempt (ours, or an earlier call with the same
			// MsgID) is refused as a conflict. If the realm's last
			// message carries our MsgID, answer as for a duplicate.
			if s, ok := l.ownLastWrite(ctx, req.ExpectRealm, msgID); ok {
				seq = s
				return nil
			}
			return backoff.Permanent(fmt.Errorf("%w: %w",
				iam.Errorf(iam.EConflict, "realm %s changed since sequence %d", req.ExpectRealm, req.ExpectSeq), err))
		}
		if ctx.Err() != nil {
			return backoff.Permanent(err)
		}
		if cause, ok := Transient(err); ok {
			return &retryable{cause: cause, err: err}
		}
		return backoff.Permanent(err)
	}
	notify := func(err error, _ time.Duration) {
		var r *retryable
		if l.cfg.OnRetry != nil && errors.As(err, &r) {
			l.cfg.OnRetry(r.cause)
		}
	}
	b := backoff.WithContext(backoff.WithMaxRetries(l.cfg.Backoff(), uint64(l.cfg.MaxRetries)), ctx)
	if err := backoff.RetryNotify(op, b, notify); err != nil {
		var r *retryable
		if errors.As(err, &r) {
			err = fmt.Errorf("%w: %w", iam.Errorf(iam.EUnavailable, "event log did not answer after %d attempts", attempt), r.err)
		}
		return 0, fmt.Errorf("append %s: %w", req.Subject, err)
	}
	return seq, nil
}

// ownLastWrite reports whether the last message of realm carries msgID, and
// its sequence.
func (l *Log) ownLastWrite(ctx context.Context, realm, msgID string) (uint64, bool) {
	gctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
	defer cancel()
	m, err := l.stream.GetLastMsgForSubject(gctx, RealmSubjects(realm))
	if err != nil || m.Header.Get(jetstream.MsgIDHeader) != msgID {
		return 0, false
	}
	return m.Sequence, true
}

// retryable marks a publish whose outcome is unknown.
type retryable struct {
	cause string
	err   error
}

func (r *retryable) Error() string { return r.cause + ": " + r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// Transient reports whether err from a JetStream call is the server out
// of reach for now (a timeout, no responders, a lost connection, a 503
// while a stream elects its leader), worth trying again, and names the
// cause. For a publish it also means the outcome is unknown, so that it
// must be re-published with the same MsgID.
func Transient(err error) (string, bool) {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return "timeout", true
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return "no_responders", true
	case errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected):
		return "disconnected", true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 503 {
		return "unavailable", true
	}
	return "", false
}

// isWrongLastSequence reports a stale expectation: 10071 on R1 streams,
// 10164 on replicated ones.
func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ErrStreamGone is wrapped by Head when the stream no longer exists: a
// reader that had applied entries from it must not go on.
var ErrStreamGone = errors.New("event log stream is gone")

// Head returns the stream's last sequence (0 when empty), in one request:
// readers on the data path (a region's at_least_as_fresh wait, the lag
// monitor) call it often and retry on their own terms. Errors: one
// wrapping ErrStreamGone when the stream does not exist.
func (l *Log) Head(ctx context.Context) (uint64, error) {
	info, err := l.stream.Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, fmt.Errorf("head %s: %w: %w", l.cfg.Stream, ErrStreamGone, err)
	} else if err != nil {
		return 0, fmt.Errorf("head %s: %w", l.cfg.Stream, err)
	}
	return info.State.LastSeq, nil
}

// HeadRetry is Head for a process starting up: each request has its own
// timeout (PublishTimeout) and is retried with backoff up to MaxRetries
// times, "not found" included, because while a replicated stream elects
// its leader, or was created a moment ago on another node, an info request
// can go unanswered or be answered "not found"; one such request must not
// cost a start its whole deadline. Still missing after the retries, the
// stream is gone (ErrStreamGone).
func (l *Log) HeadRetry(ctx context.Context) (uint64, error) {
	var head uint64
	op := func() error {
		actx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
		defer cancel()
		var err error
		head, err = l.Head(actx)
		return err
	}
	b := backoff.WithContext(backoff.WithMaxRetries(l.cfg.Backoff(), uint64(l.cfg.MaxRetries)), ctx)
	if err := backoff.Retry(op, b); err != nil {
		return 0, err
	}
	return head, nil
}

// LastForRealm returns the sequence of the last message on any subject of
// realm, 0 when it has none: the value to pass as ExpectSeq. It asks the
// stream's leader (STREAM.MSG.GET), never a direct get, which any replica
// may answer from behind: a writer judges with it that its state is current
// before it answers a refusal, and a lagging replica would make a stale
// state look current.
func (l *Log) LastForRealm(ctx context.Context, realm string) (uint64, error) {
	if err := validToken("realm", realm); err != nil {
		return 0, fmt.Errorf("last for realm: %w", err)
	}
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{RealmSubjects(realm)})
	if err != nil {
		return 0, err
	}
	api := "$JS.API."
	if l.cfg.Domain != "" {
		api = "$JS." + l.cfg.Domain + ".API."
	}
	rctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
	defer cancel()
	msg, err := l.js.Conn().RequestWithContext(rctx, api+"STREAM.MSG.GET."+l.cfg.Stream, req)
	if err != nil {
		return 0, fmt.Errorf("last for realm %s: %w", realm, err)
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("last for realm %s: %w", realm, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("last for realm %s: %w", realm, resp.Error)
	case resp.Message == nil:
		return 0, fmt.Errorf("last for realm %s: an answer without a message", realm)
	}
	return resp.Message.Seq, nil
}

// Get returns the entry stored at seq. Errors: not_found when there is no
// message at seq; internal when it cannot be decoded (see ErrEnvelope).
func (l *Log) Get(ctx context.Context, seq uint64) (iam.LogEntry, error) {
	m, err := l.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return iam.LogEntry{}, fmt.Errorf("get %d: %w", seq, iam.Errorf(iam.ENotFound, "no log entry at sequence %d", seq))
	} else if err != nil {
		return iam.LogEntry{}, fmt.Errorf("get %d: %w", seq, err)
	}
	e, err := decode(l.cfg.Verifier, m.Sequence, m.Subject, m.Time, m.Header, m.Data)
	if err != nil {
		return iam.LogEntry{}, fmt.Errorf("get %d: %w", seq, err)
	}
	return e, nil
}

// ErrEnvelope is wrapped by every error decoding a stored message: an
// unknown envelope version or an undecodable body. Retrying cannot help.
var ErrEnvelope = errors.New("bad log envelope")

// decode decodes a stored message, verifying it first when v is set.
func decode(v Verifier, seq uint64, subject string, t time.Time, h nats.Header, data []byte) (iam.LogEntry, error) {
	if v := h.Get(EnvelopeHeader); v != EnvelopeVersion {
		return iam.LogEntry{}, fmt.Errorf("%w: sequence %d: envelope version %q not supported", ErrEnvelope, seq, v)
	}
	msgID, expect := h.Get(jetstream.MsgIDHeader), h.Get(logsign.ExpectHeader)
	if v != nil && (seq >= v.SignedFrom() || h.Get(logsign.SigHeader) != "") {
		if err := v.Verify(h.Get(logsign.SigHeader), logsign.Entry(subject, msgID, expect, data)); err != nil {
			return iam.LogEntry{}, fmt.Errorf("sequence %d on %s: %w", seq, subject, err)
		}
		// A realm's entry must carry its signed expectation, which is
		// what makes a replayed copy detectable (see iam.LogEntry).
		if realm := subjectRealm(subject); realm != SysRealm && expect == "" {
			return iam.LogEntry{}, fmt.Errorf("sequence %d on %s: %w: no expectation", seq, subject, ErrUnsigned)
		}
	}
	var expRealm string
	var expSeq uint64
	if expect != "" {
		var err error
		if expRealm, expSeq, err = logsign.ParseExpect(expect); err != nil {
			return iam.LogEntry{}, fmt.Errorf("%w: sequence %d: %w", ErrEnvelope, seq, err)
		}
	}
	commits, err := iam.UnmarshalCommits(data)
	if err != nil {
		return iam.LogEntry{}, fmt.Errorf("%w: sequence %d: %w", ErrEnvelope, seq, err)
	}
	return iam.LogEntry{
		Seq:         seq,
		Subject:     subject,
		MsgID:       msgID,
		Time:        t,
		Commits:     commits,
		ExpectRealm: expRealm,
		ExpectSeq:   expSeq,
	}, nil
}

// subjectRealm returns the realm token of iam.evt.<realm>.<aggregate>.
func subjectRealm(subject string) string {
	rest, _ := strings.CutPrefix(subject, SubjectPrefix+".")
	realm, _, _ := strings.Cut(rest, ".")
	return realm
}

var _ error = (*retryable)(nil)

// WithSigning returns a Log over the same stream that signs with s and
// verifies with v (either may be nil): the hub opens its log, learns the
// head, and only then makes its first signing key, which signs from the
// entry after that head.
func (l *Log) WithSigning(s Signer, v Verifier) *Log {
	c := *l
	c.cfg.Signer, c.cfg.Verifier = s, v
	return &c
}

// Attach returns a Log over an existing stream without creating or
// changing it: a region reads (and, for forwarded tools, appends to) the
// hub's stream across its leaf connection with Config{Domain: natsnode.HubDomain},
// and must never touch the hub's stream configuration. It retries until
// the stream answers or ctx ends (a region may start before its hub link is
// up).
func Attach(ctx context.Context, nc *nats.Conn, cfg Config) (*Log, error) {
	cfg = withDefaults(cfg)
	js, err := newJetStream(nc, cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("attach log: %w", err)
	}
	var stream jetstream.Stream
	op := func() error {
		sctx, cancel := context.WithTimeout(ctx, cfg.PublishTimeout)
		defer cancel()
		stream, err = js.Stream(sctx, cfg.Stream)
		return err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 50*time.Millisecond, time.Second, 0
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return nil, fmt.Errorf("attach log: stream %s in domain %q: %w", cfg.Stream, cfg.Domain, err)
	}
	return &Log{cfg: cfg, js: js, stream: stream}, nil
}

// newJetStream is the JetStream API of the local domain, or of domain (the
// hub's, reached across a leaf connection).
func newJetStream(nc *nats.Conn, domain string) (jetstream.JetStream, error) {
	if domain != "" {
		return jetstream.NewWithDomain(nc, domain)
	}
	return jetstream.New(nc)
}

// withDefaults fills the zero fields of cfg as Open does.
func withDefaults(cfg Config) Config {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Duplicates <= 0 {
		cfg.Duplicates = DefaultDuplicates
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func() backoff.BackOff {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval = 20 * time.Millisecond
			b.MaxInterval = 500 * time.Millisecond
			b.MaxElapsedTime = 0
			return b
		}
	}
	return cfg
}

// OpenRetry is Open retried with backoff until it succeeds or ctx ends: a
// node of a clustered hub can create the stream only once its cluster has a
// JetStream meta leader, which takes a quorum of nodes.
func OpenRetry(ctx context.Context, nc *nats.Conn, cfg Config) (*Log, error) {
	var l *Log
	op := func() error {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		l, err = Open(octx, nc, cfg)
		return err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, time.Second, 0
	if err := backoff.Retry(op, backoff.WithContext(b, ctx)); err != nil {
		return nil, err
	}
	return l, nil
}
