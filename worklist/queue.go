package worklist

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Queue is the triage job stream: Redis stream {prefix}jobs, consumer group
// "triage". It is only the transport: the SQL store decides which job
// version runs and who holds it, so a message delivered twice (after a
// reclaim, or added again by the reconciler) is harmless. Safe for
// concurrent use.
type Queue struct {
	c      redis.UniversalClient
	key    string
	group  string
	maxLen int64
}

// QueueConfig configures a Queue. Zero fields take the documented defaults.
type QueueConfig struct {
	Prefix string // key prefix (default DefaultPrefix); the stream is Prefix+"jobs"
	Group  string // consumer group (default DefaultQueueGroup)
	MaxLen int64  // approximate bound of the stream (default DefaultQueueMaxLen)
}

// Defaults of QueueConfig.
const (
	DefaultQueueGroup  = "triage"
	DefaultQueueMaxLen = 100000
)

// JobMessage is what a stream entry carries: the study to triage and the
// job version (the study's instance count when it became stable).
type JobMessage struct {
	StudyUID string
	Version  int64
}

// Delivery is a message handed to a consumer. Ack it once the job is done
// (or found not to be this consumer's to run).
type Delivery struct {
	ID string // stream entry ID, for Ack
	JobMessage
	Deliveries int64 // times delivered, 1 the first time
}

// QueueStats describes the stream.
type QueueStats struct {
	Length    int64         // entries in the stream (XLEN): waiting or delivered and not acked
	Pending   int64         // delivered and not acked
	OldestAge time.Duration // age of the oldest entry by its ID time; 0 when empty
}

// ErrBadMessage marks a stream entry that is not a valid JobMessage. Read
// and Reclaim ack and delete such entries and report them with an error
// wrapping ErrBadMessage, alongside whatever good delivery they return.
var ErrBadMessage = errors.New("worklist: malformed job message")

// Stream entry fields.
const (
	fieldStudy   = "study"
	fieldVersion = "version"
)

// maxBadPerCall bounds how many malformed entries one Read skips before it
// returns.
const maxBadPerCall = 100

// NewQueue returns the job queue on client under cfg. It does not touch
// Redis: call Ensure before the first Read (Read and Reclaim call it
// themselves when the group is missing).
func NewQueue(client redis.UniversalClient, cfg QueueConfig) (*Queue, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalid)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Group == "" {
		cfg.Group = DefaultQueueGroup
	}
	if cfg.MaxLen == 0 {
		cfg.MaxLen = DefaultQueueMaxLen
	}
	if cfg.MaxLen < 0 {
		return nil, fmt.Errorf("%w: queue length %d must be positive", ErrInvalid, cfg.MaxLen)
	}
	if strings.ContainsAny(cfg.Group, " \t\r\n\x00") {
		return nil, fmt.Errorf("%w: consumer group %q", ErrInvalid, cfg.Group)
	}
	return &Queue{c: client, key: cfg.Prefix + "jobs", group: cfg.Group, maxLen: cfg.MaxLen}, nil
}

// Key returns the stream's Redis key.
func (q *Queue) Key() string { return q.key }

// Ensure creates the stream and the consumer group if missing. The group is
// created at the start of the stream ("0", not "$"), so that entries added
// after a Redis loss but before the group was recreated are still delivered;
// an existing group is left as it is.
func (q *Queue) Ensure(ctx context.Context) error {
	err := q.c.XGroupCreateMkStream(ctx, q.key, q.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("worklist: queue: creating group %s on %s: %w", q.group, q.key, redisErr(err))
	}
	return nil
}

// Add appends a job to the stream, trimming it to about MaxLen entries, and
// returns the entry ID. The study UID is validated (ErrInvalid).
func (q *Queue) Add(ctx context.Context, m JobMessage) (string, error) {
	if err := checkUID(m.StudyUID); err != nil {
		return "", err
	}
	if m.Version < 0 {
		return "", fmt.Errorf("%w: job version %d", ErrInvalid, m.Version)
	}
	id, err := q.c.XAdd(ctx, &redis.XAddArgs{
		Stream: q.key, MaxLen: q.maxLen, Approx: true,
		Values: []any{fieldStudy, m.StudyUID, fieldVersion, strconv.FormatInt(m.Version, 10)},
	}).Result()
	if err != nil {
		return "", fmt.Errorf("worklist: queue: add %s v%d: %w", m.StudyUID, m.Version, redisErr(err))
	}
	return id, nil
}

// isNoGroup reports whether err says the stream or its group is gone: NOGROUP,
// or UNBLOCKED (Redis 7 ends a blocked XREADGROUP so when the key is deleted).
func isNoGroup(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.HasPrefix(s, "NOGROUP") || strings.HasPrefix(s, "UNBLOCKED")
}

// Read waits up to block for one new message for consumer (block <= 0: no
// wait) and returns it, or nil, nil when none came. When the stream or the
// group is gone (Redis flushed) it calls Ensure and tries once more.
// Malformed entries are acked, deleted and skipped: Read goes on to the
// next entry and returns it (or nil) together with an error wrapping
// ErrBadMessage that names what it dropped; log that error and still
// handle the delivery when it is not nil.
func (q *Queue) Read(ctx context.Context, consumer string, block time.Duration) (*Delivery, error) {
	if err := checkUser(consumer); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(block)
	var bad []error
	ensured := false
	for {
		b := time.Duration(-1) // go-redis: no BLOCK argument
		if left := time.Until(deadline); block > 0 && left > 0 {
			b = max(left, time.Millisecond)
		}
		res, err := q.c.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: q.group, Consumer: consumer, Streams: []string{q.key, ">"}, Count: 1, Block: b,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return nil, errors.Join(bad...)
		case isNoGroup(err) && !ensured:
			ensured = true
			if err := q.Ensure(ctx); err != nil {
				return nil, err
			}
			continue
		case err != nil:
			return nil, errors.Join(append(bad, fmt.Errorf("worklist: queue: read: %w", redisErr(err)))...)
		}
		var msgs []redis.XMessage
		for _, s := range res {
			msgs = append(msgs, s.Messages...)
		}
		if len(msgs) == 0 {
			return nil, errors.Join(bad...)
		}
		m := msgs[0]
		jm, perr := parseJob(m)
		if perr == nil {
			return &Delivery{ID: m.ID, JobMessage: jm, Deliveries: 1}, errors.Join(bad...)
		}
		bad = append(bad, perr)
		if err := q.Ack(ctx, m.ID); err != nil {
			return nil, errors.Join(append(bad, err)...)
		}
		if len(bad) >= maxBadPerCall {
			return nil, errors.Join(bad...)
		}
	}
}

// parseJob decodes a stream entry; the error wraps ErrBadMessage.
func parseJob(m redis.XMessage) (JobMessage, error) {
	uid, _ := m.Values[fieldStudy].(string)
	v, _ := m.Values[fieldVersion].(string)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || checkUID(uid) != nil {
		return JobMessage{}, fmt.Errorf("%w: entry %s of %d fields (study %.140q, version %.40q) dropped", ErrBadMessage, m.ID, len(m.Values), uid, v)
	}
	return JobMessage{StudyUID: uid, Version: n}, nil
}

// Reclaim takes over, for consumer, at most count messages (count <= 0
// means 10) delivered to any consumer and not acked for at least minIdle
// (XAUTOCLAIM from the start of the pending list), with their delivery
// counts. When the stream or the group is gone it calls Ensure and returns
// none. Malformed entries are acked, deleted and reported as in Read.
func (q *Queue) Reclaim(ctx context.Context, consumer string, minIdle time.Duration, count int64) ([]Delivery, error) {
	if err := checkUser(consumer); err != nil {
		return nil, err
	}
	if count <= 0 {
		count = 10
	}
	msgs, _, err := q.c.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: q.key, Group: q.group, Consumer: consumer, MinIdle: minIdle, Start: "0-0", Count: count,
	}).Result()
	if isNoGroup(err) {
		return nil, q.Ensure(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("worklist: queue: reclaim: %w", redisErr(err))
	}
	var (
		out []Delivery
		bad []error
	)
	for _, m := range msgs {
		if m.ID == "" || m.Values == nil {
			continue // deleted (trimmed) while pending; Redis dropped it from the pending list
		}
		jm, perr := parseJob(m)
		if perr != nil {
			bad = append(bad, perr)
			if err := q.Ack(ctx, m.ID); err != nil {
				bad = append(bad, err)
			}
			continue
		}
		out = append(out, Delivery{ID: m.ID, JobMessage: jm, Deliveries: 1})
	}
	if len(out) == 0 {
		return nil, errors.Join(bad...)
	}
	// XAUTOCLAIM does not report delivery counts; XPENDING does, per ID.
	pipe := q.c.Pipeline()
	cmds := make([]*redis.XPendingExtCmd, len(out))
	for i, d := range out {
		cmds[i] = pipe.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: q.key, Group: q.group, Start: d.ID, End: d.ID, Count: 1})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return out, errors.Join(append(bad, fmt.Errorf("worklist: queue: reclaim: delivery counts: %w", redisErr(err)))...)
	}
	for i, c := range cmds {
		if p := c.Val(); len(p) == 1 && p[0].ID == out[i].ID && p[0].RetryCount > 0 {
			out[i].Deliveries = p[0].RetryCount
		}
	}
	return out, errors.Join(bad...)
}

// Ack acknowledges the message and deletes it from the stream (XACK and
// XDEL in one MULTI). Acking an unknown or already acked ID is not an
// error; a malformed ID is (ErrInvalid).
func (q *Queue) Ack(ctx context.Context, id string) error {
	if !ValidEventID(id) {
		return fmt.Errorf("%w: stream entry ID %q", ErrInvalid, id)
	}
	pipe := q.c.TxPipeline()
	pipe.XAck(ctx, q.key, q.group, id)
	pipe.XDel(ctx, q.key, id)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("worklist: queue: ack %s: %w", id, redisErr(err))
	}
	return nil
}

// Stats returns the stream's length, the count of pending (delivered, not
// acked) messages and the age of the oldest entry. A missing stream or
// group counts as empty.
func (q *Queue) Stats(ctx context.Context) (QueueStats, error) {
	pipe := q.c.Pipeline()
	xlen := pipe.XLen(ctx, q.key)
	pend := pipe.XPending(ctx, q.key, q.group)
	first := pipe.XRangeN(ctx, q.key, "-", "+", 1)
	_, _ = pipe.Exec(ctx) // errors are per command, checked below
	var st QueueStats
	var err error
	if st.Length, err = xlen.Result(); err != nil {
		return QueueStats{}, fmt.Errorf("worklist: queue: stats: %w", redisErr(err))
	}
	p, err := pend.Result()
	switch {
	case err == nil:
		st.Pending = p.Count
	case isNoGroup(err) || errors.Is(err, redis.Nil):
	default:
		return QueueStats{}, fmt.Errorf("worklist: queue: stats: %w", redisErr(err))
	}
	msgs, err := first.Result()
	if err != nil {
		return QueueStats{}, fmt.Errorf("worklist: queue: stats: %w", redisErr(err))
	}
	if len(msgs) > 0 {
		ms, _, _ := strings.Cut(msgs[0].ID, "-")
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			st.OldestAge = max(time.Since(time.UnixMilli(n)), 0)
		}
	}
	return st, nil
}

// Exists reports whether the stream exists (false after Redis lost its
// data, e.g. FLUSHALL: the cue to rebuild the worklist and re-add jobs).
func (q *Queue) Exists(ctx context.Context) (bool, error) {
	n, err := q.c.Exists(ctx, q.key).Result()
	if err != nil {
		return false, fmt.Errorf("worklist: queue: exists: %w", redisErr(err))
	}
	return n == 1, nil
}
