package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/radtriage/radtriage/worklist"
)

// GET /api/v1/worklist/events streams worklist changes as Server-Sent
// Events (text/event-stream). Each event is
//
//	id: <stream entry ID, e.g. 1763857505123-0>
//	event: <type: added, updated, reprioritised, claimed, released, completed, expired, overridden, override-cleared, rebuilt>
//	data: <JSON: {"id", "type", "study_uid", "by", "at", "item": {...}}>
//
// with item as GET /api/v1/worklist/{study} answers it, just after the
// change ("rebuilt" has no item: reload the whole list).
//
// A client resumes with the Last-Event-ID header (EventSource sends it on
// reconnection) or, for a first connection, ?last_event_id=: it then gets
// every event after that ID, in order, and the live ones after them.
// last_event_id=0 replays every event the bounded stream still holds.
// Without either it gets only the events that happen after it connected.
// When the events after its ID have been trimmed from the bounded stream,
// it first gets an event "reset" (no id) saying so: reload the list.
//
// A comment line is sent every 15 s, to keep proxies and the client's
// idle timers happy. The stream ends when the client goes away, when a
// client reads too slowly to keep up, and when the http.Server starts
// shutting down (RegisterOnShutdown); the client reconnects and resumes.
//
// One goroutine per server reads the Redis stream (XREAD BLOCK, one Redis
// connection) while anyone listens, and fans the events out to every open
// stream; a stream that resumes first catches up from the stream with
// XRANGE. So N browsers cost one Redis connection, not N.

// sseBlock is how long one read of the event stream waits; sseHeartbeat
// the interval of heartbeat comments. Tests shorten them.
var (
	sseBlock     = 15 * time.Second
	sseHeartbeat = 15 * time.Second
)

// sseRetryMS is the reconnection delay suggested to clients.
const sseRetryMS = 2000

// sseBacklog is how many batches of events a stream may fall behind the
// hub before it is dropped.
const sseBacklog = 64

// worklistEvents returns the handler of GET /api/v1/worklist/events, with
// its hub.
func (s *server) worklistEvents() gin.HandlerFunc {
	hub := &eventHub{wl: s.cfg.Worklist, log: s.log}
	return func(c *gin.Context) { s.streamEvents(c, hub) }
}

func (s *server) streamEvents(c *gin.Context, hub *eventHub) {
	wl := s.cfg.Worklist
	ctx := c.Request.Context()

	from := c.GetHeader("Last-Event-ID")
	if from == "" {
		from = c.Query("last_event_id")
	}
	from = strings.TrimSpace(from)
	if from != "" && !worklist.ValidEventID(from) {
		s.abortWithError(c, errorf(http.StatusBadRequest, "Last-Event-ID %q: want an event id this stream sent (<ms>-<seq>), or 0 for every event kept", from))
		return
	}
	// Subscribe before reading the stream: the hub then delivers every
	// event after the last one this stream reads itself.
	sub, err := hub.subscribe(ctx)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	defer hub.unsubscribe(sub)
	var reset string
	if from == "" {
		if from, err = wl.LastEventID(ctx); err != nil {
			s.abortWithError(c, err)
			return
		}
	} else if from != "0" && from != "0-0" {
		first, err := wl.FirstEventID(ctx)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		if first != "" && compareEventIDs(from, first) < 0 {
			reset = fmt.Sprintf("events after %s were trimmed from the stream (oldest kept: %s); reload the worklist", from, first)
		}
	}

	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	w := c.Writer
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", sseRetryMS); err != nil {
		return
	}
	if reset != "" {
		data, _ := json.Marshal(map[string]string{"type": "reset", "reason": reset})
		if _, err := fmt.Fprintf(w, "event: reset\ndata: %s\n\n", data); err != nil {
			return
		}
	}
	w.Flush()

	// Catch up from the stream itself.
	for {
		evs, err := wl.Events(ctx, from, 100, 0)
		if err != nil {
			s.endStream(ctx, w, from, err)
			return
		}
		if len(evs) == 0 {
			break
		}
		for i := range evs {
			if err := writeSSEEvent(w, &evs[i]); err != nil {
				return
			}
			from = evs[i].ID
		}
		w.Flush()
	}

	// Then live, from the hub.
	tick := time.NewTicker(sseHeartbeat)
	defer tick.Stop()
	shutdown := hub.shutdownOf(c.Request)
	for {
		select {
		case <-ctx.Done():
			return
		case <-shutdown:
			writeSSEComment(w, "server shutting down; reconnect with Last-Event-ID")
			return
		case <-tick.C:
			if err := writeSSEComment(w, "heartbeat"); err != nil {
				return
			}
		case evs, ok := <-sub.ch:
			if !ok {
				s.endStream(ctx, w, from, sub.err)
				return
			}
			sent := false
			for i := range evs {
				if compareEventIDs(evs[i].ID, from) <= 0 {
					continue // read while catching up
				}
				if err := writeSSEEvent(w, &evs[i]); err != nil {
					return
				}
				from, sent = evs[i].ID, true
			}
			if sent {
				w.Flush()
			}
		}
	}
}

// endStream ends a stream that cannot go on; the client reconnects
// (retry) and resumes after its last event.
func (s *server) endStream(ctx context.Context, w gin.ResponseWriter, from string, err error) {
	if ctx.Err() != nil {
		return
	}
	s.log.WarnContext(ctx, "worklist events: ending the stream", "after", from, "err", err)
	writeSSEComment(w, "stream ended: "+err.Error()+"; reconnect with Last-Event-ID")
}

// eventHub reads the worklist's event stream on one goroutine while
// anyone listens, and hands each batch to every subscriber.
type eventHub struct {
	wl  *worklist.Worklist
	log *slog.Logger

	mu       sync.Mutex
	run      *hubRun                        // the reader now running; nil when none
	shutdown map[*http.Server]chan struct{} // closed when that server starts shutting down
}

// shutdownOf returns a channel closed when the http.Server serving r
// starts its Shutdown (nil, never ready, when r carries no server), so
// that open streams end instead of holding the shutdown for its whole
// grace period: the clients reconnect elsewhere or later and resume.
func (h *eventHub) shutdownOf(r *http.Request) <-chan struct{} {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.shutdown[srv]; ok {
		return ch
	}
	if h.shutdown == nil {
		h.shutdown = make(map[*http.Server]chan struct{})
	}
	ch := make(chan struct{})
	h.shutdown[srv] = ch
	srv.RegisterOnShutdown(func() { close(ch) })
	return ch
}

// hubRun is one reader goroutine and its subscribers.
type hubRun struct {
	subs   map[*hubSub]struct{} // guarded by eventHub.mu
	cancel context.CancelFunc
}

// hubSub is one stream's subscription.
type hubSub struct {
	run *hubRun
	ch  chan []worklist.Event // closed when the hub drops the subscriber
	err error                 // why, set before ch is closed
}

// subscribe registers a subscriber, starting a reader when none runs.
// The subscriber gets every event after the newest one in the stream at
// the time of the call (at least).
func (h *eventHub) subscribe(ctx context.Context) (*hubSub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.run == nil {
		last, err := h.wl.LastEventID(ctx)
		if err != nil {
			return nil, err
		}
		rctx, cancel := context.WithCancel(context.Background())
		h.run = &hubRun{subs: make(map[*hubSub]struct{}), cancel: cancel}
		go h.read(rctx, h.run, last)
	}
	sub := &hubSub{run: h.run, ch: make(chan []worklist.Event, sseBacklog)}
	h.run.subs[sub] = struct{}{}
	return sub, nil
}

// unsubscribe removes sub; the last one out stops the reader.
func (h *eventHub) unsubscribe(sub *hubSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := sub.run
	delete(r.subs, sub)
	if len(r.subs) == 0 && h.run == r {
		h.stop(r)
	}
}

// stop ends run r; h.mu is held.
func (h *eventHub) stop(r *hubRun) {
	r.cancel()
	if h.run == r {
		h.run = nil
	}
}

// read is the reader of run r, from the event after last.
func (h *eventHub) read(ctx context.Context, r *hubRun, last string) {
	for {
		evs, err := h.wl.Events(ctx, last, 100, sseBlock)
		h.mu.Lock()
		if h.run != r {
			h.mu.Unlock()
			return // stopped: nobody listens
		}
		if err != nil {
			h.log.WarnContext(ctx, "worklist events: reading the stream failed; dropping listeners", "after", last, "err", err)
			for sub := range r.subs {
				sub.err = err
				close(sub.ch)
				delete(r.subs, sub)
			}
			h.stop(r)
			h.mu.Unlock()
			return
		}
		if len(evs) > 0 {
			for sub := range r.subs {
				select {
				case sub.ch <- evs:
				default:
					sub.err = fmt.Errorf("the client fell more than %d batches behind", sseBacklog)
					close(sub.ch)
					delete(r.subs, sub)
				}
			}
			last = evs[len(evs)-1].ID
		}
		if len(r.subs) == 0 {
			h.stop(r)
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}

// writeSSEEvent writes one event; json.Marshal escapes newlines, so data
// is one line.
func writeSSEEvent(w io.Writer, ev *worklist.Event) error {
	data, err := json.Marshal(toWorklistEvent(ev))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, data)
	return err
}

// writeSSEComment writes a comment line (ignored by EventSource) and
// flushes it.
func writeSSEComment(w gin.ResponseWriter, text string) error {
	text = strings.NewReplacer("\r", " ", "\n", " ").Replace(text)
	if _, err := fmt.Fprintf(w, ": %s\n\n", text); err != nil {
		return err
	}
	w.Flush()
	return nil
}

// compareEventIDs orders two valid stream IDs ("<ms>-<seq>", seq 0 when
// absent).
func compareEventIDs(a, b string) int {
	am, as := splitEventID(a)
	bm, bs := splitEventID(b)
	switch {
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

func splitEventID(id string) (ms, seq uint64) {
	m, sq, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(sq, 10, 64)
	return ms, seq
}
