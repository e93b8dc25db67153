package worklist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Config configures a Worklist. Zero fields take the documented defaults.
type Config struct {
	// Prefix is prepended to every key (default "radtriage:worklist:"). Keys:
	// Prefix+"queue" (zset of open and claimed studies scored by due time,
	// Unix ms), Prefix+"claims" (zset scored by lease expiry), Prefix+"done"
	// (zset scored by completion time), Prefix+"events" (stream),
	// Prefix+"item:"+studyUID (hash). The scripts address item keys they
	// derive from the prefix, so the worklist needs a single Redis (not a
	// cluster).
	Prefix string
	// Deadlines is the reading deadline of each tier; missing tiers take the
	// defaults critical 15m, urgent 1h, routine 8h.
	Deadlines map[Tier]time.Duration
	// Lease is how long a claim holds without renewal (default 10m).
	Lease time.Duration
	// DoneRetention is how long completed items are kept (default 24h);
	// ExpireLeases deletes older ones.
	DoneRetention time.Duration
	// StreamMaxLen bounds the event stream, approximately (default 10000).
	StreamMaxLen int64
	// Now is the clock (default time.Now). Times are stored in Unix ms.
	Now func() time.Time
	// Recorder, when set, is told of completions, overrides and findings
	// after Redis has accepted them, so that the SQL store (the source of
	// truth for Rebuild) never resurrects a completed study.
	Recorder Recorder
}

// Default values of Config.
const (
	DefaultPrefix        = "radtriage:worklist:"
	DefaultLease         = 10 * time.Minute
	DefaultDoneRetention = 24 * time.Hour
	DefaultStreamMaxLen  = 10000
)

// DefaultDeadlines are the reading deadlines used for tiers missing from
// Config.Deadlines.
var DefaultDeadlines = map[Tier]time.Duration{
	TierCritical: 15 * time.Minute,
	TierUrgent:   time.Hour,
	TierRoutine:  8 * time.Hour,
}

// Source lists the studies that should be on the worklist, with their
// findings and overrides; the SQL store implements it for Rebuild.
type Source interface {
	OpenStudies(ctx context.Context) ([]Entry, error)
}

// Entry is one study handed to Rebuild.
type Entry struct {
	Study    Study
	Findings []Finding
	Override *Override
	// AI is the study's AI status ("" means AIPending); AIError the reason
	// of a failure.
	AI      AIStatus
	AIError string
}

// Change is a worklist change that the source of truth should record.
type Change struct {
	Type     string // EventCompleted, EventOverridden, EventOverrideCleared or EventReprioritised
	StudyUID string
	By       string
	At       time.Time
	Findings []Finding // for EventReprioritised
	Override *Override // for EventOverridden
}

// Recorder records changes in the source of truth (the SQL store).
type Recorder interface {
	Record(ctx context.Context, c Change) error
}

// Prioritizer is what triage needs of the worklist: to report a study's
// findings, which may move it up (or down) the list.
type Prioritizer interface {
	SetFindings(ctx context.Context, studyUID string, findings []Finding, by string) (*Item, error)
}

var _ Prioritizer = (*Worklist)(nil)

// Worklist is the Redis-backed worklist. It is safe for concurrent use; all
// state is in Redis, so several processes may share one worklist.
type Worklist struct {
	c      redis.UniversalClient
	cfg    Config
	queue  string
	claims string
	done   string
	events string
	item   string // prefix of item keys
	// listBudget is the most members one List call examines.
	listBudget int
}

// New returns a Worklist on client under cfg.
func New(client redis.UniversalClient, cfg Config) (*Worklist, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalid)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	d := make(map[Tier]time.Duration, len(Tiers))
	for _, t := range Tiers {
		d[t] = DefaultDeadlines[t]
	}
	for t, v := range cfg.Deadlines {
		if !t.Valid() {
			return nil, fmt.Errorf("%w: deadline for unknown tier %q", ErrInvalid, t)
		}
		if v <= 0 {
			return nil, fmt.Errorf("%w: deadline of %s must be positive, got %v", ErrInvalid, t, v)
		}
		d[t] = v
	}
	cfg.Deadlines = d
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.DoneRetention == 0 {
		cfg.DoneRetention = DefaultDoneRetention
	}
	if cfg.StreamMaxLen == 0 {
		cfg.StreamMaxLen = DefaultStreamMaxLen
	}
	if cfg.Lease < time.Millisecond || cfg.DoneRetention < 0 || cfg.StreamMaxLen < 0 {
		return nil, fmt.Errorf("%w: lease %v, done retention %v and stream length %d must be positive", ErrInvalid, cfg.Lease, cfg.DoneRetention, cfg.StreamMaxLen)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Worklist{
		c:      client,
		cfg:    cfg,
		queue:  cfg.Prefix + "queue",
		claims: cfg.Prefix + "claims",
		done:   cfg.Prefix + "done",
		events: cfg.Prefix + "events",
		item:   cfg.Prefix + "item:",

		listBudget: defaultListBudget,
	}
	return w, nil
}

// Config returns the configuration in effect, defaults filled in.
func (w *Worklist) Config() Config { return w.cfg }

// Deadline returns the reading deadline of tier t.
func (w *Worklist) Deadline(t Tier) time.Duration { return w.cfg.Deadlines[t] }

func (w *Worklist) now() time.Time { return w.cfg.Now() }

func toMS(t time.Time) int64 { return t.UnixMilli() }

func fromMS(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return time.Time{}
		}
		n = int64(f)
	}
	return time.UnixMilli(n).UTC()
}

// Ping checks that Redis answers (for readiness probes); an error wraps
// ErrUnavailable.
func (w *Worklist) Ping(ctx context.Context) error {
	if err := w.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("worklist: ping: %w", redisErr(err))
	}
	return nil
}

// redisErr marks an error that says Redis cannot be reached (a network
// error, a closed or exhausted connection pool) with ErrUnavailable, so
// that callers can answer "try again later"; a reply from Redis (a script
// error) is returned as it is.
func redisErr(err error) error {
	var ne net.Error
	var re redis.Error
	switch {
	case err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &re) && !strings.HasPrefix(re.Error(), "LOADING"):
		return err
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case errors.As(err, &re): // LOADING: Redis is starting
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// run executes a mutation script on study uid as user by, with extra ARGV
// after the common ones.
func (w *Worklist) run(ctx context.Context, s *redis.Script, uid, by string, quiet bool, extra ...any) (*Item, string, error) {
	args := w.args(by, quiet, extra...)
	res, err := s.Run(ctx, w.c, w.keys(uid), args...).Result()
	if err != nil {
		return nil, "", fmt.Errorf("worklist: study %s: %w", uid, redisErr(err))
	}
	return w.decodeReply(uid, res)
}

func (w *Worklist) keys(uid string) []string {
	return []string{w.item + uid, w.queue, w.claims, w.done, w.events}
}

func (w *Worklist) args(by string, quiet bool, extra ...any) []any {
	q := ""
	if quiet {
		q = "1"
	}
	args := make([]any, 0, 7+len(extra))
	args = append(args, toMS(w.now()), by, w.cfg.StreamMaxLen,
		w.cfg.Deadlines[TierCritical].Milliseconds(), w.cfg.Deadlines[TierUrgent].Milliseconds(),
		w.cfg.Deadlines[TierRoutine].Milliseconds(), q)
	return append(args, extra...)
}

// decodeReply turns a mutation script's reply into an item or an error.
func (w *Worklist) decodeReply(uid string, res any) (*Item, string, error) {
	arr, ok := res.([]any)
	if !ok || len(arr) == 0 {
		return nil, "", fmt.Errorf("worklist: study %s: unexpected script reply %T", uid, res)
	}
	code, _ := arr[0].(string)
	switch code {
	case "OK":
		if len(arr) != 3 {
			return nil, "", fmt.Errorf("worklist: study %s: unexpected script reply of %d elements", uid, len(arr))
		}
		id, _ := arr[1].(string)
		it, err := w.itemFromFlat(arr[2])
		if err != nil {
			return nil, "", fmt.Errorf("worklist: study %s: %w", uid, redisErr(err))
		}
		return it, id, nil
	case "NOTFOUND":
		return nil, "", fmt.Errorf("%w: %s", ErrNotFound, uid)
	case "COMPLETED":
		return nil, "", fmt.Errorf("%w: %s", ErrCompleted, uid)
	case "NOTCLAIMED":
		return nil, "", fmt.Errorf("%w: %s", ErrNotClaimed, uid)
	case "CONFLICT":
		e := &ClaimConflictError{StudyUID: uid}
		if len(arr) == 3 {
			e.Holder, _ = arr[1].(string)
			s, _ := arr[2].(string)
			e.Until = fromMS(s)
		}
		return nil, "", e
	}
	return nil, "", fmt.Errorf("worklist: study %s: unexpected script reply %q", uid, code)
}

// flatToMap converts a HGETALL-style reply (field, value, ...) into a map.
func flatToMap(v any) (map[string]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected hash reply %T", v)
	}
	m := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		k, _ := arr[i].(string)
		s, _ := arr[i+1].(string)
		m[k] = s
	}
	return m, nil
}

func (w *Worklist) itemFromFlat(v any) (*Item, error) {
	m, err := flatToMap(v)
	if err != nil {
		return nil, err
	}
	return w.itemFromMap(m)
}

// itemFromMap decodes an item hash and computes its reason.
func (w *Worklist) itemFromMap(m map[string]string) (*Item, error) {
	if m["uid"] == "" {
		return nil, errors.New("item hash without uid")
	}
	it := &Item{
		Study: Study{
			StudyUID:        m["uid"],
			PatientID:       m["pid"],
			PatientName:     m["pname"],
			AccessionNumber: m["acc"],
			Modality:        m["mod"],
			BodyPart:        m["body"],
			Description:     m["desc"],
			OrderPriority:   m["prio"],
			Received:        fromMS(m["recv"]),
		},
		Tier:        Tier(m["tier"]),
		Due:         fromMS(m["due"]),
		Status:      Status(m["st"]),
		ClaimedBy:   m["holder"],
		LeaseUntil:  fromMS(m["lease"]),
		UpdatedBy:   m["ub"],
		UpdatedAt:   fromMS(m["ua"]),
		CompletedAt: fromMS(m["done"]),
		AI:          AIStatus(m["ai"]),
		AIError:     m["ai_err"],
	}
	if it.AI == "" {
		it.AI = AIPending // written before the AI status existed
	}
	if t := m["ftier"]; t != "" {
		it.Finding = &Finding{Code: m["f_code"], Name: m["f_name"], Tier: Tier(t), Model: m["f_model"]}
		var err error
		if it.Finding.Probability, err = strconv.ParseFloat(m["f_prob"], 64); err != nil {
			return nil, fmt.Errorf("item %s: finding probability: %w", it.StudyUID, err)
		}
		if v := m["f_vol"]; v != "" {
			if it.Finding.VolumeML, err = strconv.ParseFloat(v, 64); err != nil {
				return nil, fmt.Errorf("item %s: finding volume: %w", it.StudyUID, err)
			}
		}
	}
	if m["o_tier"] != "" || m["o_due"] != "" {
		it.Override = &Override{
			Tier:   Tier(m["o_tier"]),
			Due:    fromMS(m["o_due"]),
			Reason: m["o_reason"],
			By:     m["o_by"],
			At:     fromMS(m["o_at"]),
		}
	}
	it.Reason = reason(it, w.now())
	return it, nil
}

func checkUID(uid string) error {
	if uid == "" {
		return fmt.Errorf("%w: empty study UID", ErrInvalid)
	}
	if len(uid) > 128 || strings.ContainsAny(uid, " \t\r\n\x00") {
		return fmt.Errorf("%w: study UID %q", ErrInvalid, uid)
	}
	return nil
}

func checkUser(by string) error {
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("%w: empty user", ErrInvalid)
	}
	return nil
}

// Upsert adds a study to the queue (open, event "added") or updates its
// header fields (event "updated"; none when nothing changed), keeping its
// first received time, claim, findings and override. A study completed
// within Config.DoneRetention is refused with ErrCompleted: the worklist
// never resurrects it (past the retention, the source of truth must refuse).
func (w *Worklist) Upsert(ctx context.Context, s Study, by string) (*Item, error) {
	it, _, err := w.upsert(ctx, s, by, false)
	return it, err
}

func (w *Worklist) upsertArgs(s Study) []any {
	recv := s.Received
	if recv.IsZero() {
		recv = w.now()
	}
	return []any{s.StudyUID, s.PatientID, s.PatientName, s.AccessionNumber,
		strings.ToUpper(strings.TrimSpace(s.Modality)), strings.ToUpper(strings.TrimSpace(s.BodyPart)),
		s.Description, s.OrderPriority, toMS(recv), string(PriorityTier(s.OrderPriority))}
}

func (w *Worklist) upsert(ctx context.Context, s Study, by string, quiet bool) (*Item, string, error) {
	if err := checkUID(s.StudyUID); err != nil {
		return nil, "", err
	}
	if err := checkUser(by); err != nil {
		return nil, "", err
	}
	return w.run(ctx, upsertScript, s.StudyUID, by, quiet, w.upsertArgs(s)...)
}

// TopFinding returns the finding that sets the tier: the most urgent, then
// the most probable (then the first); nil when there is none.
func TopFinding(fs []Finding) *Finding {
	var top *Finding
	for i := range fs {
		f := &fs[i]
		if top == nil || f.Tier.rank() < top.Tier.rank() ||
			(f.Tier == top.Tier && f.Probability > top.Probability) {
			top = f
		}
	}
	if top == nil {
		return nil
	}
	c := *top
	return &c
}

func checkFindings(fs []Finding) error {
	for i, f := range fs {
		if !f.Tier.Valid() {
			return fmt.Errorf("%w: finding %d (%s): unknown tier %q", ErrInvalid, i, f.Code, f.Tier)
		}
		if !(f.Probability >= 0 && f.Probability <= 1) {
			return fmt.Errorf("%w: finding %d (%s): probability %v outside [0, 1]", ErrInvalid, i, f.Code, f.Probability)
		}
	}
	return nil
}

func (w *Worklist) findingsArgs(uid string, fs []Finding) []any {
	top := TopFinding(fs)
	if top == nil {
		return []any{uid, "", "", "", "", "", ""}
	}
	vol := ""
	if top.VolumeML != 0 {
		vol = strconv.FormatFloat(top.VolumeML, 'g', -1, 64)
	}
	return []any{uid, string(top.Tier), top.Code, top.Name, strconv.FormatFloat(top.Probability, 'g', -1, 64), vol, top.Model}
}

// SetFindings records a study's AI findings, replacing earlier ones, and
// reprioritises it: its tier becomes the most urgent of its order priority
// and the findings' tiers (no findings: the order priority alone). Only open
// or claimed studies: ErrNotFound, ErrCompleted otherwise. Event
// "reprioritised".
func (w *Worklist) SetFindings(ctx context.Context, studyUID string, findings []Finding, by string) (*Item, error) {
	if err := checkUID(studyUID); err != nil {
		return nil, err
	}
	if err := checkUser(by); err != nil {
		return nil, err
	}
	if err := checkFindings(findings); err != nil {
		return nil, err
	}
	it, _, err := w.run(ctx, findingsScript, studyUID, by, false, w.findingsArgs(studyUID, findings)...)
	if err != nil {
		return nil, err
	}
	return it, w.record(ctx, Change{Type: EventReprioritised, StudyUID: studyUID, By: by, At: it.UpdatedAt, Findings: findings})
}

// Claim gives user an exclusive lease of Config.Lease on the study; the
// holder claiming again renews it, and a lapsed lease can be taken over.
// Another user's live claim gives a *ClaimConflictError naming the holder
// (errors.Is ErrConflict). Event "claimed".
func (w *Worklist) Claim(ctx context.Context, studyUID, user string) (*Item, error) {
	if err := checkUID(studyUID); err != nil {
		return nil, err
	}
	if err := checkUser(user); err != nil {
		return nil, err
	}
	it, _, err := w.run(ctx, claimScript, studyUID, user, false, studyUID, w.cfg.Lease.Milliseconds())
	return it, err
}

// Release gives a claimed study back to the queue. Only the holder may
// release a live claim (*ClaimConflictError otherwise); ErrNotClaimed when it
// is not claimed. Event "released".
func (w *Worklist) Release(ctx context.Context, studyUID, user string) (*Item, error) {
	if err := checkUID(studyUID); err != nil {
		return nil, err
	}
	if err := checkUser(user); err != nil {
		return nil, err
	}
	it, _, err := w.run(ctx, releaseScript, studyUID, user, false, studyUID)
	return it, err
}

// Complete marks the study read: it leaves the queue for the done set (kept
// Config.DoneRetention) and can no longer be upserted, reprioritised or
// claimed. Refused with *ClaimConflictError while another user holds a live
// claim; a claim is not required. Event "completed".
func (w *Worklist) Complete(ctx context.Context, studyUID, user string) (*Item, error) {
	if err := checkUID(studyUID); err != nil {
		return nil, err
	}
	if err := checkUser(user); err != nil {
		return nil, err
	}
	it, _, err := w.run(ctx, completeScript, studyUID, user, false, studyUID)
	if err != nil {
		return nil, err
	}
	return it, w.record(ctx, Change{Type: EventCompleted, StudyUID: studyUID, By: user, At: it.UpdatedAt})
}

func checkOverride(o Override) error {
	if o.Tier == "" && o.Due.IsZero() {
		return fmt.Errorf("%w: override needs a tier or a due time", ErrInvalid)
	}
	if o.Tier != "" && !o.Tier.Valid() {
		return fmt.Errorf("%w: override: unknown tier %q", ErrInvalid, o.Tier)
	}
	return checkUser(o.By)
}

func (w *Worklist) overrideArgs(uid string, o Override) []any {
	due := ""
	if !o.Due.IsZero() {
		due = strconv.FormatInt(toMS(o.Due), 10)
	}
	at := o.At
	if at.IsZero() {
		at = w.now()
	}
	return []any{uid, string(o.Tier), due, o.Reason, toMS(at)}
}

// SetOverride sets a manual priority (see Override), replacing any earlier
// one; o.By is the acting user. Only open or claimed studies. Event
// "overridden".
func (w *Worklist) SetOverride(ctx context.Context, studyUID string, o Override) (*Item, error) {
	if err := checkUID(studyUID); err != nil {
		return nil, err
	}
	if err := checkOverride(o); err != nil {
		return nil, err
	}
	it, _, err := w.run(ctx, overrideScript, studyUID, o.By, false, w.overrideArgs(studyUID, o)...)
	if err != nil {
		return nil, err
	}
	return it, w.record(ctx, Change{Type: EventOverridden, StudyUID: studyUID, By: o.By, At: it.UpdatedAt, Override: it.Override})
}

// ClearOverride removes the manual priority, returning the study to its
// computed place (event "override-cleared"); without one it changes nothing
// in Redis and appends no event (the Recorder is still told).
func (w *Worklist) ClearOverride(ctx context.Context, studyUID, by string) (*Item, error) {
	if err := checkUID(studyUID); err != nil {
		return nil, err
	}
	if err := checkUser(by); err != nil {
		return nil, err
	}
	it, _, err := w.run(ctx, clearOverrideScript, studyUID, by, false, studyUID)
	if err != nil {
		return nil, err
	}
	// Recorded even when Redis had no override, in case the store still has one.
	return it, w.record(ctx, Change{Type: EventOverrideCleared, StudyUID: studyUID, By: by, At: w.now()})
}

func (w *Worklist) record(ctx context.Context, c Change) error {
	if w.cfg.Recorder == nil {
		return nil
	}
	if err := w.cfg.Recorder.Record(ctx, c); err != nil {
		return fmt.Errorf("worklist: study %s: %s applied but not recorded: %w", c.StudyUID, c.Type, err)
	}
	return nil
}

// Get returns one item (open, claimed, or done within the retention), or
// ErrNotFound.
func (w *Worklist) Get(ctx context.Context, studyUID string) (*Item, error) {
	if err := checkUID(studyUID); err != nil {
		return nil, err
	}
	m, err := w.c.HGetAll(ctx, w.item+studyUID).Result()
	if err != nil {
		return nil, fmt.Errorf("worklist: get %s: %w", studyUID, redisErr(err))
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, studyUID)
	}
	it, err := w.itemFromMap(m)
	if err != nil {
		return nil, fmt.Errorf("worklist: get %s: %w", studyUID, redisErr(err))
	}
	return it, nil
}

// List page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// defaultListBudget is the most members one List call examines, to bound
// the time the script holds Redis when filters are selective.
const defaultListBudget = 2000

// List returns items in order (the queue by due time, earliest first, ties
// by study UID; or the done set by completion time) matching f, and the
// cursor of the next page, "" when there is none. Two Redis round trips:
// a script picks the page's study UIDs, a pipeline reads their hashes (an
// item changed in between is shown as it is after the change; one completed
// in between is left out of a queue page).
// Pages are exact (a full page is followed by a next cursor only when more
// items match) except that one call examines at most 2,000 items: with a
// very selective filter a page may then hold fewer than f.Limit items (even
// none) while next is not "". Keep paging until next is "".
func (w *Worklist) List(ctx context.Context, f Filter) ([]Item, string, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return nil, "", fmt.Errorf("%w: limit %d outside 1..%d", ErrInvalid, limit, MaxLimit)
	}
	if f.Tier != "" && !f.Tier.Valid() {
		return nil, "", fmt.Errorf("%w: unknown tier %q", ErrInvalid, f.Tier)
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, "", fmt.Errorf("%w: unknown status %q (want open, claimed or done)", ErrInvalid, f.Status)
	}
	set, status := w.queue, string(f.Status)
	if f.Status == StatusDone {
		set, status = w.done, ""
	}
	cs, cm := "", ""
	if f.Cursor != "" {
		c, err := DecodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		cs, cm = strconv.FormatInt(c.Score, 10), c.Member
	}
	res, err := listScript.Run(ctx, w.c, []string{w.item, set}, cs, cm, limit,
		strings.ToUpper(strings.TrimSpace(f.Modality)), strings.ToUpper(strings.TrimSpace(f.BodyPart)),
		string(f.Tier), status, w.listBudget).Result()
	if err != nil {
		return nil, "", fmt.Errorf("worklist: list: %w", redisErr(err))
	}
	arr, ok := res.([]any)
	if !ok || len(arr) != 3 {
		return nil, "", fmt.Errorf("worklist: list: unexpected script reply %T", res)
	}
	members, _ := arr[2].([]any)
	items := make([]Item, 0, len(members))
	if len(members) > 0 {
		pipe := w.c.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(members))
		for i, m := range members {
			s, _ := m.(string)
			cmds[i] = pipe.HGetAll(ctx, w.item+s)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, "", fmt.Errorf("worklist: list: %w", redisErr(err))
		}
		for _, c := range cmds {
			m := c.Val()
			if len(m) == 0 {
				continue // removed (past retention) between the two round trips
			}
			it, err := w.itemFromMap(m)
			if err != nil {
				return nil, "", fmt.Errorf("worklist: list: %w", redisErr(err))
			}
			if f.Status == StatusDone && it.Status != StatusDone || f.Status != StatusDone && it.Status == StatusDone {
				continue // completed between the two round trips
			}
			items = append(items, *it)
		}
	}
	next := ""
	if s, _ := arr[0].(string); s != "" {
		score, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, "", fmt.Errorf("worklist: list: bad score %q: %w", s, err)
		}
		m, _ := arr[1].(string)
		next = Cursor{Score: int64(score), Member: m}.Encode()
	}
	return items, next, nil
}

// firstScanBatch is the size of Scan's first batch: a screenful and more.
const firstScanBatch = 64

// Scan reads every item matching f, in List's order, and calls fn with
// them a batch (at most MaxLimit items; the first, at most 64) at a time as they are read: for a
// client that wants the whole list at once (the worklist page's first
// load), where following List's cursors costs one round trip per page,
// each waiting for the last. One ZRANGE reads the set's members; their
// hashes are then read in pipelines of MaxLimit, the next batch while fn
// handles the current one, and the filters applied to the items as read.
// f.Limit and f.Cursor must be unset. An item changed during the scan is
// seen as it is after the change (possibly out of order: the event
// stream, read from an event ID taken before the scan, puts it right);
// one completed during it is left out of a queue scan. An error from fn
// stops the scan and is returned.
func (w *Worklist) Scan(ctx context.Context, f Filter, fn func([]Item) error) error {
	// The first batch is small, so the top of the list (what a screen
	// shows) goes out at once; the rest in batches of MaxLimit.
	if f.Limit != 0 || f.Cursor != "" {
		return fmt.Errorf("%w: scan takes no limit or cursor", ErrInvalid)
	}
	if f.Tier != "" && !f.Tier.Valid() {
		return fmt.Errorf("%w: unknown tier %q", ErrInvalid, f.Tier)
	}
	if f.Status != "" && !f.Status.Valid() {
		return fmt.Errorf("%w: unknown status %q (want open, claimed or done)", ErrInvalid, f.Status)
	}
	set := w.queue
	if f.Status == StatusDone {
		set = w.done
	}
	members, err := w.c.ZRange(ctx, set, 0, -1).Result()
	if err != nil {
		return fmt.Errorf("worklist: scan: %w", redisErr(err))
	}
	mod := strings.ToUpper(strings.TrimSpace(f.Modality))
	body := strings.ToUpper(strings.TrimSpace(f.BodyPart))
	keep := func(it *Item) bool {
		switch {
		case (f.Status == StatusDone) != (it.Status == StatusDone):
			return false // completed (or reopened) during the scan
		case f.Status != "" && it.Status != f.Status,
			f.Tier != "" && it.Tier != f.Tier,
			mod != "" && it.Modality != mod,
			body != "" && it.BodyPart != body:
			return false
		}
		return true
	}
	type batch struct {
		items []Item
		err   error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan batch, 1)
	go func() {
		defer close(batches)
		size := firstScanBatch
		for len(members) > 0 {
			n := min(len(members), size)
			size = MaxLimit
			pipe := w.c.Pipeline()
			cmds := make([]*redis.MapStringStringCmd, n)
			for i, m := range members[:n] {
				cmds[i] = pipe.HGetAll(ctx, w.item+m)
			}
			members = members[n:]
			var b batch
			if _, err := pipe.Exec(ctx); err != nil {
				b.err = fmt.Errorf("worklist: scan: %w", redisErr(err))
			} else {
				b.items = make([]Item, 0, n)
				for _, c := range cmds {
					m := c.Val()
					if len(m) == 0 {
						continue // removed (past retention) during the scan
					}
					it, err := w.itemFromMap(m)
					if err != nil {
						b.err = fmt.Errorf("worklist: scan: %w", redisErr(err))
						break
					}
					if keep(it) {
						b.items = append(b.items, *it)
					}
				}
			}
			select {
			case batches <- b:
			case <-ctx.Done():
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	for b := range batches {
		if b.err != nil {
			return b.err
		}
		if len(b.items) == 0 {
			continue
		}
		if err := fn(b.items); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// ExpireLeases returns every claim whose lease has lapsed (at Config.Now) to
// open, one "expired" event each, and deletes completed items older than
// Config.DoneRetention. It returns how many claims it expired. Run it
// periodically (every few seconds); it is cheap when nothing is due.
func (w *Worklist) ExpireLeases(ctx context.Context) (int, error) {
	const batch = 1000
	total := 0
	for {
		res, err := expireScript.Run(ctx, w.c, []string{w.item, w.queue, w.claims, w.done, w.events},
			w.args("system", false, w.cfg.DoneRetention.Milliseconds(), batch)...).Int64Slice()
		if err != nil {
			return total, fmt.Errorf("worklist: expire leases: %w", redisErr(err))
		}
		if len(res) != 3 {
			return total, fmt.Errorf("worklist: expire leases: unexpected reply %v", res)
		}
		total += int(res[2])
		if res[0] < batch && res[1] < batch {
			return total, nil
		}
	}
}

// Empty reports whether the queue holds no study (the cue for an automatic
// Rebuild at start).
func (w *Worklist) Empty(ctx context.Context) (bool, error) {
	n, err := w.c.Exists(ctx, w.queue).Result()
	if err != nil {
		return false, fmt.Errorf("worklist: empty: %w", redisErr(err))
	}
	return n == 0, nil
}

// Rebuild replaces this prefix's items, queue, claims and done set with the
// studies src lists (claims are lost), then appends one "rebuilt" event.
// Entries that fail validation are skipped with an error joined to the
// result; the count is of studies added. Concurrent changes during a rebuild
// may be lost: run it at start, before serving.
func (w *Worklist) Rebuild(ctx context.Context, src Source) (int, error) {
	entries, err := src.OpenStudies(ctx)
	if err != nil {
		return 0, fmt.Errorf("worklist: rebuild: reading source: %w", err)
	}
	var bad []error
	valid := entries[:0:0]
	for _, e := range entries {
		if err := w.checkEntry(e); err != nil {
			bad = append(bad, err)
			continue
		}
		valid = append(valid, e)
	}
	if err := clearScript.Run(ctx, w.c, []string{w.item, w.queue, w.claims, w.done}).Err(); err != nil {
		return 0, fmt.Errorf("worklist: rebuild: clearing: %w", err)
	}
	for _, s := range []*redis.Script{upsertScript, findingsScript, overrideScript, aiScript} {
		if err := s.Load(ctx, w.c).Err(); err != nil {
			return 0, fmt.Errorf("worklist: rebuild: loading scripts: %w", err)
		}
	}
	const batch = 500
	n := 0
	for start := 0; start < len(valid); start += batch {
		end := min(start+batch, len(valid))
		pipe := w.c.Pipeline()
		var cmdUIDs []string // the study of each command
		for _, e := range valid[start:end] {
			uid := e.Study.StudyUID
			cmdUIDs = append(cmdUIDs, uid)
			upsertScript.EvalSha(ctx, pipe, w.keys(uid), w.args("rebuild", true, w.upsertArgs(e.Study)...)...)
			if len(e.Findings) > 0 {
				cmdUIDs = append(cmdUIDs, uid)
				findingsScript.EvalSha(ctx, pipe, w.keys(uid), w.args("rebuild", true, w.findingsArgs(uid, e.Findings)...)...)
			}
			if e.Override != nil {
				by := e.Override.By
				if by == "" {
					by = "rebuild"
				}
				cmdUIDs = append(cmdUIDs, uid)
				overrideScript.EvalSha(ctx, pipe, w.keys(uid), w.args(by, true, w.overrideArgs(uid, *e.Override)...)...)
			}
			ai := e.AI
			if ai == "" {
				ai = AIPending
			}
			cmdUIDs = append(cmdUIDs, uid)
			aiScript.EvalSha(ctx, pipe, w.keys(uid), w.args("rebuild", true, aiArgs(uid, ai, e.AIError)...)...)
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			return n, fmt.Errorf("worklist: rebuild: %w", err)
		}
		for i, c := range cmds {
			if _, _, err := w.decodeReply(cmdUIDs[i], c.(*redis.Cmd).Val()); err != nil {
				bad = append(bad, fmt.Errorf("worklist: rebuild: %w", err))
			}
		}
		n += end - start
	}
	err = w.c.XAdd(ctx, &redis.XAddArgs{
		Stream: w.events, MaxLen: w.cfg.StreamMaxLen, Approx: true,
		Values: []any{"ev", EventRebuilt, "evby", "rebuild", "evat", toMS(w.now())},
	}).Err()
	if err != nil {
		bad = append(bad, fmt.Errorf("worklist: rebuild: event: %w", err))
	}
	return n, errors.Join(bad...)
}

func (w *Worklist) checkEntry(e Entry) error {
	if err := checkUID(e.Study.StudyUID); err != nil {
		return fmt.Errorf("worklist: rebuild: %w", err)
	}
	if err := checkFindings(e.Findings); err != nil {
		return fmt.Errorf("worklist: rebuild: study %s: %w", e.Study.StudyUID, err)
	}
	if e.AI != "" && !e.AI.Valid() {
		return fmt.Errorf("worklist: rebuild: study %s: %w: unknown AI status %q", e.Study.StudyUID, ErrInvalid, e.AI)
	}
	if e.Override != nil {
		o := *e.Override
		if o.By == "" {
			o.By = "rebuild"
		}
		if err := checkOverride(o); err != nil {
			return fmt.Errorf("worklist: rebuild: study %s: %w", e.Study.StudyUID, err)
		}
	}
	return nil
}

// maxAIError bounds Item.AIError, in bytes.
const maxAIError = 1000

// SetAIStatus sets the study's AI status without moving it: AIFailed when
// triage gave up (reason says why, kept as Item.AIError, truncated to 1,000
// bytes), AIPending when it is to run again, AIDone (SetFindings sets it
// too). The reason is cleared for any status but AIFailed. Only open or
// claimed studies: ErrNotFound, ErrCompleted otherwise. Event "ai", appended
// even when nothing changed.
func (w *Worklist) SetAIStatus(ctx context.Context, studyUID string, s AIStatus, reason, by string) (*Item, error) {
	if err := checkUID(studyUID); err != nil {
		return nil, err
	}
	if err := checkUser(by); err != nil {
		return nil, err
	}
	if !s.Valid() {
		return nil, fmt.Errorf("%w: unknown AI status %q (want pending, done or failed)", ErrInvalid, s)
	}
	it, _, err := w.run(ctx, aiScript, studyUID, by, false, aiArgs(studyUID, s, reason)...)
	return it, err
}

func aiArgs(uid string, s AIStatus, reason string) []any {
	if s != AIFailed {
		reason = ""
	}
	return []any{uid, string(s), truncateUTF8(reason, maxAIError)}
}

// truncateUTF8 cuts s to at most n bytes, not inside a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
