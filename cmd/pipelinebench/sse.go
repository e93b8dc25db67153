package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// sseEvent is one Server-Sent Event as received.
type sseEvent struct {
	ID   string
	Type string // "message" when the event had no event: field
	Data []byte
	At   time.Time // when the blank line that ended it arrived
}

// sseReader reads the events of a text/event-stream body (the WHATWG
// event stream format: lines ending in LF, CRLF or CR; "field: value";
// comments start with ":"; a blank line dispatches an event with data).
type sseReader struct {
	r   *bufio.Reader
	now func() time.Time
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReader(r), now: time.Now}
}

// line returns the next line without its end of line; io.EOF at the end
// of the stream (a last line without an end counts as ended).
func (s *sseReader) line() (string, error) {
	var b []byte
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				return string(b), nil
			}
			return "", err
		}
		switch c {
		case '\n':
			return string(b), nil
		case '\r':
			if next, err := s.r.Peek(1); err == nil && next[0] == '\n' {
				s.r.ReadByte()
			}
			return string(b), nil
		}
		b = append(b, c)
	}
}

// Next returns the next event. Events without data lines are dropped, as
// a browser drops them; retry: lines and comments are ignored.
func (s *sseReader) Next() (sseEvent, error) {
	var (
		ev      sseEvent
		data    bytes.Buffer
		hasData bool
	)
	for {
		l, err := s.line()
		if err != nil {
			return sseEvent{}, err
		}
		if l == "" {
			if !hasData {
				ev = sseEvent{}
				continue
			}
			ev.Data = bytes.TrimSuffix(data.Bytes(), []byte("\n"))
			if ev.Type == "" {
				ev.Type = "message"
			}
			ev.At = s.now()
			return ev, nil
		}
		if strings.HasPrefix(l, ":") {
			continue
		}
		field, value, _ := strings.Cut(l, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Type = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			ev.ID = value
		}
	}
}

// worklistEvent is the part of an event's JSON data the benchmark reads
// (api.worklistEvent).
type worklistEvent struct {
	Type     string        `json:"type"`
	StudyUID string        `json:"study_uid"`
	Item     *worklistItem `json:"item"`
}

// worklistItem is the part of a worklist item the benchmark reads.
type worklistItem struct {
	Tier    string `json:"tier"`
	Finding *struct {
		Code        string  `json:"code"`
		Probability float64 `json:"probability"`
		VolumeML    float64 `json:"volume_ml"`
	} `json:"finding"`
}

// topFinding renders an item's finding as "ICH 72% 2.9 mL", or "none".
func (it *worklistItem) topFinding() string {
	if it == nil || it.Finding == nil {
		return "none"
	}
	s := fmt.Sprintf("%s %.0f%%", it.Finding.Code, 100*it.Finding.Probability)
	if it.Finding.VolumeML > 0 {
		s += fmt.Sprintf(" %.1f mL", it.Finding.VolumeML)
	}
	return s
}

// arrival is one worklist event with its arrival time.
type arrival struct {
	worklistEvent
	At time.Time
}

// subscribe connects to the worklist event stream at baseURL and returns
// the channel of its events, closed when the stream ends (ctx done, or
// the server went away: the error, if any, is then in *streamErr). It
// returns once the server has answered the request: the server
// subscribes before it answers, so every later change arrives.
func subscribe(ctx context.Context, baseURL string, streamErr *error) (<-chan arrival, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/api/v1/worklist/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("worklist events: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		resp.Body.Close()
		return nil, fmt.Errorf("worklist events: HTTP %s: %s", resp.Status, b)
	}
	ch := make(chan arrival, 4096)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		r := newSSEReader(resp.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				if ctx.Err() == nil {
					*streamErr = fmt.Errorf("worklist events: stream ended: %w", err)
				}
				return
			}
			var we worklistEvent
			if err := json.Unmarshal(ev.Data, &we); err != nil {
				continue // "reset" and the like
			}
			if we.Type == "" {
				we.Type = ev.Type
			}
			select {
			case ch <- arrival{worklistEvent: we, At: ev.At}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
