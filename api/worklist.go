package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/worklist"
)

// The worklist API (issue 4), under /api/v1/worklist:
//
//	GET    /api/v1/worklist                    ordered items: {"items": [...], "next_cursor": "...", "event_id": "..."}
//	GET    /api/v1/worklist?format=ndjson      every item in one streamed answer (worklistStream)
//	GET    /api/v1/worklist/events             Server-Sent Events (worklist_sse.go)
//	GET    /api/v1/worklist/{study}            one item
//	POST   /api/v1/worklist/{study}/claim      claim (or renew one's own claim)
//	POST   /api/v1/worklist/{study}/release    give one's claim back
//	POST   /api/v1/worklist/{study}/complete   mark read and done
//	PUT    /api/v1/worklist/{study}/priority   manual override {"tier", "due", "reason"}
//	DELETE /api/v1/worklist/{study}/priority   clear the override
//
// Changes (POST, PUT, DELETE) need the acting user in the X-Radtriage-User
// header: printable, at most 64 characters, surrounding spaces trimmed
// (400 naming the header otherwise). Because it is a custom header,
// browsers preflight every cross-origin change. Every change answers the
// item as it stands after the change. JSON field names are snake_case;
// times are RFC 3339 in UTC.
//
// Statuses: 400 bad input (study UID, query parameter, body, user
// header); 404 a study the worklist does not hold (never added, or
// completed longer ago than the retention); 409 a claim held by another
// user whose lease has not lapsed (the message names the holder and the
// lease end: this also answers release or complete by someone else), a
// study already completed, or a release of a study nobody claims; 413 a
// priority body over 64 KiB; 415 a priority body that is not
// application/json; 503 when the server has no worklist configured. A
// change that Redis applied but the store could not record answers the
// store's error (the store is the source of truth).

// userHeader carries the acting user until the security issue brings
// authentication.
const userHeader = "X-Radtriage-User"

// maxUserLen bounds the user header, in characters.
const maxUserLen = 64

// maxPriorityBody bounds the JSON body of PUT .../priority (413 above).
const maxPriorityBody = 64 << 10

// maxReasonLen bounds an override's reason, in characters.
const maxReasonLen = 1024

// needWorklist answers 503 on the worklist routes of a server built
// without a worklist.
func (s *server) needWorklist(c *gin.Context) {
	if s.cfg.Worklist == nil {
		s.abortWithError(c, errorf(http.StatusServiceUnavailable, "the worklist is not configured on this server (api.Config.Worklist is nil)"))
		return
	}
	c.Next()
}

// worklistItem is the JSON form of worklist.Item.
type worklistItem struct {
	StudyUID        string            `json:"study_uid"`
	PatientID       string            `json:"patient_id,omitempty"`
	PatientName     string            `json:"patient_name,omitempty"`
	AccessionNumber string            `json:"accession_number,omitempty"`
	Modality        string            `json:"modality,omitempty"`
	BodyPart        string            `json:"body_part,omitempty"`
	Description     string            `json:"description,omitempty"`
	OrderPriority   string            `json:"order_priority,omitempty"`
	Received        time.Time         `json:"received"`
	Tier            worklist.Tier     `json:"tier"`
	Due             time.Time         `json:"due"`
	Status          worklist.Status   `json:"status"`
	ClaimedBy       string            `json:"claimed_by,omitempty"`
	LeaseUntil      time.Time         `json:"lease_until,omitzero"`
	Finding         *worklistFinding  `json:"finding,omitempty"`
	Override        *worklistOverride `json:"override,omitempty"`
	Reason          string            `json:"reason"`
	AI              worklist.AIStatus `json:"ai"`                 // AI triage: pending, done or failed
	AIError         string            `json:"ai_error,omitempty"` // why it failed
	UpdatedBy       string            `json:"updated_by,omitempty"`
	UpdatedAt       time.Time         `json:"updated_at,omitzero"`
	CompletedAt     time.Time         `json:"completed_at,omitzero"`
}

// worklistFinding is the JSON form of worklist.Finding.
type worklistFinding struct {
	Code        string        `json:"code"`
	Name        string        `json:"name,omitempty"`
	Probability float64       `json:"probability"`
	Tier        worklist.Tier `json:"tier"`
	VolumeML    float64       `json:"volume_ml,omitempty"`
	Model       string        `json:"model,omitempty"`
}

// worklistOverride is the JSON form of worklist.Override.
type worklistOverride struct {
	Tier   worklist.Tier `json:"tier,omitempty"`
	Due    time.Time     `json:"due,omitzero"`
	Reason string        `json:"reason"`
	By     string        `json:"by"`
	At     time.Time     `json:"at,omitzero"`
}

// worklistPage is the answer of GET /api/v1/worklist. EventID is the
// newest event of the worklist's stream ("0" when it has none) read
// before the page's items: a client that lists and then opens
// /api/v1/worklist/events?last_event_id=<EventID> misses no change, and
// need not wait for the stream to open before listing.
type worklistPage struct {
	Items      []worklistItem `json:"items"`
	NextCursor string         `json:"next_cursor"`
	EventID    string         `json:"event_id"`
}

// worklistEvent is the JSON data of one Server-Sent Event.
type worklistEvent struct {
	ID       string        `json:"id"`
	Type     string        `json:"type"`
	StudyUID string        `json:"study_uid,omitempty"`
	By       string        `json:"by,omitempty"`
	At       time.Time     `json:"at,omitzero"`
	Item     *worklistItem `json:"item,omitempty"`
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func toWorklistItem(it *worklist.Item) worklistItem {
	out := worklistItem{
		StudyUID:        it.StudyUID,
		PatientID:       it.PatientID,
		PatientName:     it.PatientName,
		AccessionNumber: it.AccessionNumber,
		Modality:        it.Modality,
		BodyPart:        it.BodyPart,
		Description:     it.Description,
		OrderPriority:   it.OrderPriority,
		Received:        utc(it.Received),
		Tier:            it.Tier,
		Due:             utc(it.Due),
		Status:          it.Status,
		ClaimedBy:       it.ClaimedBy,
		LeaseUntil:      utc(it.LeaseUntil),
		Reason:          it.Reason,
		AI:              it.AI,
		AIError:         it.AIError,
		UpdatedBy:       it.UpdatedBy,
		UpdatedAt:       utc(it.UpdatedAt),
		CompletedAt:     utc(it.CompletedAt),
	}
	if f := it.Finding; f != nil {
		out.Finding = &worklistFinding{Code: f.Code, Name: f.Name, Probability: f.Probability, Tier: f.Tier, VolumeML: f.VolumeML, Model: f.Model}
	}
	if o := it.Override; o != nil {
		out.Override = &worklistOverride{Tier: o.Tier, Due: utc(o.Due), Reason: o.Reason, By: o.By, At: utc(o.At)}
	}
	return out
}

func toWorklistEvent(ev *worklist.Event) worklistEvent {
	out := worklistEvent{ID: ev.ID, Type: ev.Type, StudyUID: ev.StudyUID, By: ev.By, At: utc(ev.At)}
	if ev.Item != nil {
		it := toWorklistItem(ev.Item)
		out.Item = &it
	}
	return out
}

// worklistStudy validates the study UID of the path.
func worklistStudy(c *gin.Context) (string, error) {
	uid := c.Param("study")
	if err := dicomio.ValidateUID(uid); err != nil {
		return "", errorf(http.StatusBadRequest, "invalid Study Instance UID in path: %v", err)
	}
	return uid, nil
}

// actingUser returns the validated X-Radtriage-User header.
func actingUser(c *gin.Context) (string, error) {
	vals := c.Request.Header.Values(userHeader)
	if len(vals) > 1 {
		return "", errorf(http.StatusBadRequest, "header %s given %d times; give it once", userHeader, len(vals))
	}
	user := ""
	if len(vals) == 1 {
		user = strings.TrimSpace(vals[0])
	}
	if err := checkUser(user); err != nil {
		return "", errorf(http.StatusBadRequest, "header %s: %v", userHeader, err)
	}
	return user, nil
}

// checkUser accepts a non-empty, valid UTF-8, printable name of at most
// maxUserLen characters.
func checkUser(user string) error {
	switch {
	case user == "":
		return errors.New("missing or blank: changes to the worklist need the acting user")
	case !utf8.ValidString(user):
		return errors.New("not valid UTF-8")
	case utf8.RuneCountInString(user) > maxUserLen:
		return fmt.Errorf("%d characters, more than %d", utf8.RuneCountInString(user), maxUserLen)
	}
	for _, r := range user {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%q holds the unprintable character %U", user, r)
		}
	}
	return nil
}

// worklistQuery lists the query parameters GET /api/v1/worklist accepts.
var worklistQuery = []string{"modality", "body_part", "tier", "status", "limit", "cursor", "format"}

// parseWorklistFilter reads the query of GET /api/v1/worklist. Unknown
// parameters and repeated ones are refused, so that a misspelt filter
// does not silently list everything.
func parseWorklistFilter(c *gin.Context) (worklist.Filter, error) {
	var f worklist.Filter
	q := c.Request.URL.Query()
	for k, v := range q {
		if k == "format" {
			continue // wantNDJSON
		}
		known := false
		for _, n := range worklistQuery {
			known = known || k == n
		}
		if !known {
			return f, errorf(http.StatusBadRequest, "unknown query parameter %q (want %s)", k, strings.Join(worklistQuery, ", "))
		}
		if len(v) > 1 {
			return f, errorf(http.StatusBadRequest, "query parameter %q given %d times; give it once", k, len(v))
		}
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"modality", &f.Modality}, {"body_part", &f.BodyPart}} {
		v := strings.TrimSpace(q.Get(p.name))
		if err := checkCodeString(v); err != nil {
			return f, errorf(http.StatusBadRequest, "query parameter %s=%q: %v", p.name, q.Get(p.name), err)
		}
		*p.dst = strings.ToUpper(v)
	}
	if v := q.Get("tier"); v != "" {
		t, err := worklist.ParseTier(v)
		if err != nil {
			return f, errorf(http.StatusBadRequest, "query parameter tier=%q: want critical, urgent or routine", v)
		}
		f.Tier = t
	}
	if v := q.Get("status"); v != "" {
		st := worklist.Status(strings.ToLower(strings.TrimSpace(v)))
		if !st.Valid() {
			return f, errorf(http.StatusBadRequest, "query parameter status=%q: want open, claimed or done", v)
		}
		f.Status = st
	}
	if q.Has("limit") {
		v := q.Get("limit")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > worklist.MaxLimit {
			return f, errorf(http.StatusBadRequest, "query parameter limit=%q: want an integer from 1 to %d (default %d)", v, worklist.MaxLimit, worklist.DefaultLimit)
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		if _, err := worklist.DecodeCursor(v); err != nil {
			return f, errorf(http.StatusBadRequest, "query parameter cursor: not a next_cursor this server gave out: %v", err)
		}
		f.Cursor = v
	}
	return f, nil
}

// checkCodeString accepts what a DICOM CS value (Modality, Body Part
// Examined) may hold: at most 16 letters, digits, spaces and underscores.
func checkCodeString(v string) error {
	if len(v) > 16 {
		return fmt.Errorf("%d characters, more than 16", len(v))
	}
	for i := 0; i < len(v); i++ {
		b := v[i]
		if !(b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == ' ' || b == '_') {
			return fmt.Errorf("character %q at offset %d: a DICOM code string holds letters, digits, spaces and underscores", b, i)
		}
	}
	return nil
}

func (s *server) worklistList(c *gin.Context) {
	stream, err := wantNDJSON(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	f, err := parseWorklistFilter(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if stream {
		s.worklistStream(c, f)
		return
	}
	ctx := c.Request.Context()
	// The event ID first: every change after it is in the stream, so a
	// change made while the page is read is not lost, only maybe seen twice.
	eventID, ok := s.worklistEventID(c)
	if !ok {
		return
	}
	items, next, err := s.cfg.Worklist.List(ctx, f)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	page := worklistPage{Items: make([]worklistItem, 0, len(items)), NextCursor: next, EventID: eventID}
	for i := range items {
		page.Items = append(page.Items, toWorklistItem(&items[i]))
	}
	c.JSON(http.StatusOK, page)
}

// worklistEventID reads the newest event ID of the worklist's stream for a
// list answer. LastEventID does not mark an unreachable Redis as
// worklist.ErrUnavailable (List does): when it fails, the answer is
// List's error (a 503 when Redis is down) if List fails too, else its
// own; ok is false once that answer is written.
func (s *server) worklistEventID(c *gin.Context) (id string, ok bool) {
	ctx := c.Request.Context()
	id, err := s.cfg.Worklist.LastEventID(ctx)
	if err != nil {
		if _, _, lerr := s.cfg.Worklist.List(ctx, worklist.Filter{Limit: 1}); lerr != nil {
			err = lerr
		}
		s.abortWithError(c, err)
		return "", false
	}
	return id, true
}

// ndjsonType is the media type of the streamed list (one JSON value per
// line, https://github.com/ndjson/ndjson-spec).
const ndjsonType = "application/x-ndjson"

// eventIDHeader carries, on the streamed list, what event_id carries on a
// page: the newest event of the stream before the list was read.
const eventIDHeader = "X-Radtriage-Event-Id"

// wantNDJSON tells whether GET /api/v1/worklist is asked for the whole
// list as one NDJSON stream: format=ndjson in the query (which a
// <link rel=preload> can ask for), or an Accept header naming
// application/x-ndjson and not application/json. Any other format is a 400.
func wantNDJSON(c *gin.Context) (bool, error) {
	q := c.Request.URL.Query()
	if q.Has("format") {
		v := q["format"]
		if len(v) > 1 {
			return false, errorf(http.StatusBadRequest, "query parameter \"format\" given %d times; give it once", len(v))
		}
		switch v[0] {
		case "ndjson":
			return true, nil
		case "json":
			return false, nil
		}
		return false, errorf(http.StatusBadRequest, "query parameter format=%q: want json (pages, the default) or ndjson (the whole list streamed)", v[0])
	}
	accept := c.GetHeader("Accept")
	return strings.Contains(accept, ndjsonType) && !strings.Contains(accept, "application/json"), nil
}

// worklistStreamEnd is the last line of a complete streamed list; a
// stream that ends without it was cut short.
type worklistStreamEnd struct {
	End struct {
		Count   int    `json:"count"`
		EventID string `json:"event_id"`
	} `json:"end"`
}

// worklistStream answers GET /api/v1/worklist?format=ndjson (or Accept:
// application/x-ndjson): every item matching the filters, in the list's
// order, one JSON object per line (the items of a page), then the line
// {"end": {"count": N, "event_id": "..."}}. The newest event ID, read
// before the items, is also in the X-Radtriage-Event-Id header, so a
// client can open the event stream from it before the body is read (as
// with a page's event_id, no change is missed). The items are read with
// worklist.Scan and written as they come, a flush per batch of 500: the
// worklist page reads 5,000 studies in one request, instead of ten pages
// each waiting for the last one's cursor. limit and cursor are refused. An
// error after the first line ends the stream with {"error": "..."}, never
// with the end line. Errors before it are the usual JSON answers.
func (s *server) worklistStream(c *gin.Context, f worklist.Filter) {
	if f.Limit != 0 || f.Cursor != "" {
		s.abortWithError(c, errorf(http.StatusBadRequest, "query parameters limit and cursor page the list; the streamed list (format=ndjson) is the whole of it: leave them out"))
		return
	}
	ctx := c.Request.Context()
	eventID, ok := s.worklistEventID(c)
	if !ok {
		return
	}
	w := c.Writer
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	count := 0
	started := false
	start := func() {
		started = true
		c.Header("Content-Type", ndjsonType)
		c.Header(eventIDHeader, eventID)
		c.Header("Cache-Control", "no-store")
		c.Status(http.StatusOK)
	}
	err := s.cfg.Worklist.Scan(ctx, f, func(items []worklist.Item) error {
		if !started {
			start()
		}
		for i := range items {
			if err := enc.Encode(toWorklistItem(&items[i])); err != nil {
				return err
			}
		}
		count += len(items)
		w.Flush()
		return nil
	})
	if err != nil && !started {
		s.abortWithError(c, err)
		return
	}
	if !started {
		start() // an empty list: just the end line
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "worklist stream failed", "items", count, "err", err)
			_ = enc.Encode(gin.H{"error": "the list could not be read to its end: " + err.Error()})
		}
		return
	}
	var end worklistStreamEnd
	end.End.Count, end.End.EventID = count, eventID
	_ = enc.Encode(end)
}

func (s *server) worklistGet(c *gin.Context) {
	study, err := worklistStudy(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	it, err := s.cfg.Worklist.Get(c.Request.Context(), study)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, toWorklistItem(it))
}

// worklistChange runs one change by the acting user on the study of the
// path and answers the item after it. A change that reached Redis but
// could not be recorded in the store is answered as the error it is: the
// store is the source of truth.
func (s *server) worklistChange(op func(w *worklist.Worklist, c *gin.Context, study, user string) (*worklist.Item, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		study, err := worklistStudy(c)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		user, err := actingUser(c)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		it, err := op(s.cfg.Worklist, c, study, user)
		if err != nil {
			s.abortWithError(c, err)
			return
		}
		c.JSON(http.StatusOK, toWorklistItem(it))
	}
}

func claimStudy(w *worklist.Worklist, c *gin.Context, study, user string) (*worklist.Item, error) {
	return w.Claim(c.Request.Context(), study, user)
}

func releaseStudy(w *worklist.Worklist, c *gin.Context, study, user string) (*worklist.Item, error) {
	return w.Release(c.Request.Context(), study, user)
}

func completeStudy(w *worklist.Worklist, c *gin.Context, study, user string) (*worklist.Item, error) {
	return w.Complete(c.Request.Context(), study, user)
}

func clearPriority(w *worklist.Worklist, c *gin.Context, study, user string) (*worklist.Item, error) {
	return w.ClearOverride(c.Request.Context(), study, user)
}

// priorityRequest is the body of PUT .../priority: a tier, a due time, or
// both, and the reason (required).
type priorityRequest struct {
	Tier   string `json:"tier"`
	Due    string `json:"due"`
	Reason string `json:"reason"`
}

func setPriority(w *worklist.Worklist, c *gin.Context, study, user string) (*worklist.Item, error) {
	o, err := readOverride(c)
	if err != nil {
		return nil, err
	}
	o.By = user
	return w.SetOverride(c.Request.Context(), study, o)
}

// readOverride decodes and checks the body of PUT .../priority.
func readOverride(c *gin.Context) (worklist.Override, error) {
	const want = `want a JSON object {"tier": "critical"|"urgent"|"routine", "due": RFC 3339 time, "reason": "..."} with tier or due or both, and reason`
	var o worklist.Override
	if ct := c.ContentType(); ct != "" && ct != "application/json" {
		return o, errorf(http.StatusUnsupportedMediaType, "Content-Type %q: %s", ct, "want application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxPriorityBody))
	dec.DisallowUnknownFields()
	var req priorityRequest
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return o, fmt.Errorf("priority request body: %w", err)
		case errors.Is(err, io.EOF):
			return o, errorf(http.StatusBadRequest, "priority request body is empty: %s", want)
		}
		return o, errorf(http.StatusBadRequest, "priority request body: %v: %s", err, want)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return o, errorf(http.StatusBadRequest, "priority request body: more than one JSON value: %s", want)
	}
	if req.Tier != "" {
		t, err := worklist.ParseTier(req.Tier)
		if err != nil {
			return o, errorf(http.StatusBadRequest, "priority tier %q: want critical, urgent or routine", req.Tier)
		}
		o.Tier = t
	}
	if req.Due != "" {
		due, err := time.Parse(time.RFC3339, req.Due)
		if err != nil {
			return o, errorf(http.StatusBadRequest, "priority due %q: want an RFC 3339 time such as 2026-11-23T14:05:00Z", req.Due)
		}
		o.Due = due
	}
	if o.Tier == "" && o.Due.IsZero() {
		return o, errorf(http.StatusBadRequest, "priority request: neither tier nor due given: %s", want)
	}
	o.Reason = strings.TrimSpace(req.Reason)
	switch {
	case o.Reason == "":
		return o, errorf(http.StatusBadRequest, "priority request: reason is required (say why the study moves)")
	case utf8.RuneCountInString(o.Reason) > maxReasonLen:
		return o, errorf(http.StatusBadRequest, "priority reason: %d characters, more than %d", utf8.RuneCountInString(o.Reason), maxReasonLen)
	}
	for _, r := range o.Reason {
		if !unicode.IsPrint(r) {
			return o, errorf(http.StatusBadRequest, "priority reason holds the unprintable character %U", r)
		}
	}
	return o, nil
}
