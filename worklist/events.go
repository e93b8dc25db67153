package worklist

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ValidEventID reports whether id has the form of a stream entry ID
// ("<ms>-<seq>" or "<ms>"), as Events accepts after it.
func ValidEventID(id string) bool {
	ms, seq, found := strings.Cut(id, "-")
	if !isDigits(ms) {
		return false
	}
	return !found || isDigits(seq)
}

func isDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// Events returns up to count events (0 means 100) appended after the entry
// afterID, oldest first. afterID "" means only events appended from now on
// (use LastEventID first to avoid a gap between calls); "0" means from the
// oldest kept. With block > 0 it waits up to block for at least one event and
// returns none (and no error) on timeout; block 0 returns at once. Malformed
// IDs give ErrInvalid. The stream is bounded (Config.StreamMaxLen): a client
// too far behind misses trimmed events, and should reload the list when the
// oldest kept event (FirstEventID) is newer than its last.
func (w *Worklist) Events(ctx context.Context, afterID string, count int, block time.Duration) ([]Event, error) {
	if count <= 0 {
		count = 100
	}
	id := afterID
	switch {
	case id == "":
		if block <= 0 {
			return nil, nil
		}
		id = "$"
	case !ValidEventID(id):
		return nil, fmt.Errorf("%w: event ID %q", ErrInvalid, afterID)
	}
	var msgs []redis.XMessage
	if block <= 0 {
		start := "(" + id
		if id == "0" || id == "0-0" {
			start = "-"
		}
		var err error
		msgs, err = w.c.XRangeN(ctx, w.events, start, "+", int64(count)).Result()
		if err != nil {
			return nil, fmt.Errorf("worklist: events after %q: %w", afterID, redisErr(err))
		}
	} else {
		if block < time.Millisecond {
			block = time.Millisecond
		}
		res, err := w.c.XRead(ctx, &redis.XReadArgs{Streams: []string{w.events, id}, Count: int64(count), Block: block}).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("worklist: events after %q: %w", afterID, redisErr(err))
		}
		for _, s := range res {
			msgs = append(msgs, s.Messages...)
		}
	}
	evs := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		ev, err := w.eventFromMessage(m)
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// LastEventID returns the ID of the newest event, or "0" when the stream is
// empty; Events(ctx, LastEventID(), ...) then starts without a gap.
func (w *Worklist) LastEventID(ctx context.Context) (string, error) {
	msgs, err := w.c.XRevRangeN(ctx, w.events, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("worklist: last event: %w", redisErr(err))
	}
	if len(msgs) == 0 {
		return "0", nil
	}
	return msgs[0].ID, nil
}

// FirstEventID returns the ID of the oldest event still kept, or "" when the
// stream is empty.
func (w *Worklist) FirstEventID(ctx context.Context) (string, error) {
	msgs, err := w.c.XRangeN(ctx, w.events, "-", "+", 1).Result()
	if err != nil {
		return "", fmt.Errorf("worklist: first event: %w", redisErr(err))
	}
	if len(msgs) == 0 {
		return "", nil
	}
	return msgs[0].ID, nil
}

func (w *Worklist) eventFromMessage(m redis.XMessage) (Event, error) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	ev := Event{ID: m.ID, Type: str("ev"), By: str("evby"), At: fromMS(str("evat"))}
	if str("uid") == "" {
		return ev, nil
	}
	h := make(map[string]string, len(m.Values))
	for k, v := range m.Values {
		if s, ok := v.(string); ok {
			h[k] = s
		}
	}
	it, err := w.itemFromMap(h)
	if err != nil {
		return ev, fmt.Errorf("worklist: event %s: %w", m.ID, err)
	}
	ev.StudyUID, ev.Item = it.StudyUID, it
	return ev, nil
}

// Cursor is a position in a List: the last item's score (due or completion
// time, Unix ms) and study UID. Clients see it encoded, as an opaque string.
type Cursor struct {
	Score  int64
	Member string
}

// Encode returns the opaque form of c (URL-safe base64).
func (c Cursor) Encode() string {
	return c.encodeRaw(strconv.FormatInt(c.Score, 10) + ":" + c.Member)
}

func (Cursor) encodeRaw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// DecodeCursor parses a cursor made by Encode; anything else gives an error
// wrapping ErrInvalid.
func DecodeCursor(s string) (Cursor, error) {
	bad := func(why string) (Cursor, error) {
		return Cursor{}, fmt.Errorf("%w: cursor %.40q: %s", ErrInvalid, s, why)
	}
	if len(s) > 512 {
		return bad("too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad("not base64url")
	}
	score, member, ok := strings.Cut(string(b), ":")
	if !ok {
		return bad("no separator")
	}
	n, err := strconv.ParseInt(score, 10, 64)
	if err != nil {
		return bad("bad score")
	}
	if checkUID(member) != nil {
		return bad("bad study UID")
	}
	return Cursor{Score: n, Member: member}, nil
}
