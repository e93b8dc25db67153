package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/worklist"
)

// STOW-RS (PS3.18 §10.5), POST /dicomweb/studies[/{study}].
//
// The body is multipart/related; type="application/dicom" (a missing type
// parameter is accepted when the parts say application/dicom). Each part
// is streamed into a temp file as it arrives (archive.Receive) and then
// validated and committed while the next parts are read, in a window of
// stowWindowParts instances and stowWindowBytes bytes; nothing else is
// buffered, and nothing is acknowledged before its commit.
//
// Status (PS3.18 Table 10.5.3-2 semantics):
//   - 200: every instance stored (or already stored with identical bytes).
//   - 202: some stored, some refused, or any warning.
//   - 409: no instance stored, every part refused.
//   - 400: the body is not a readable multipart body (no boundary, broken
//     before any instance was stored), or {study} is not a valid UID.
//   - 415: the request is not multipart/related; type="application/dicom".
//   - 413: the body exceeds cfg.MaxRequestBytes before any instance was stored.
//   - 503 + Retry-After: the index database is unavailable (nothing from
//     this request is acknowledged; instances stored before it stay stored
//     and a re-send is harmless).
//
// A part over cfg.MaxInstanceBytes fails alone with 0xA700 (out of
// resources) and the request goes on with the next part. An endless part
// therefore runs into cfg.MaxRequestBytes: the request ends in 413, or in
// 202 when instances before it were stored, because instances that are
// durable are acknowledged (DESIGN: nothing acknowledged may be lost, and
// the client must learn what was kept). Likewise a body that breaks after
// some instances were stored gets 202 with those instances listed and a
// FailedSOPSequence item (0xC000) for the break: 400 in PS3.18 means the
// origin server "was unable to store any instances".
//
// A re-sent instance with different bytes under a stored SOP Instance UID
// is listed in ReferencedSOPSequence with WarningReason 0xB000 (Coercion
// of data elements): of the three warning codes PS3.18 Table I.2-3 and
// PS3.4 Table B.2-1 define, it is the one that says "what is stored is not
// exactly what you sent"; the first version is kept and served.
//
// Every item of FailedSOPSequence also carries the human reason in a
// private attribute (0009,1001) LT under private creator (0009,0010)
// "RADTRIAGE", and every refusal is logged with its SOP Instance UID.
//
// When the server has a worklist (Config.Worklist), every study of which
// instances were stored is put on it before the reply (worklist.Upsert,
// header fields as the store describes the study; a new item is AI
// pending), so that it is listed before it is stable. A failure there is
// logged and does not fail the request: the stability check upserts the
// study again. Config.Metrics records each request (metrics.go).

const (
	privateCreator    = "RADTRIAGE"
	tagPrivateCreator = "00090010"
	tagFailureText    = "00091001"
)

// The STOW-RS commit window of one request: parts committed concurrently
// while the following parts are read, bounded in number and in bytes (so a
// 1 GB request stays in bounded memory).
const (
	stowWindowParts = 4
	stowWindowBytes = 64 << 20
)

// stowUser is who the worklist records for studies arriving by STOW-RS.
const stowUser = "ingest"

// worklistUpsertTimeout bounds putting the studies of one STOW-RS request
// on the worklist.
const worklistUpsertTimeout = 3 * time.Second

// worklistDescriber describes a study as the worklist shows it (store.DB
// implements it); open is false for a completed study, which must stay off
// the worklist.
type worklistDescriber interface {
	WorklistStudy(ctx context.Context, studyUID string) (e worklist.Entry, open bool, err error)
}

var _ worklistDescriber = (*store.DB)(nil)

// stowResult accumulates the response dataset.
type stowResult struct {
	referenced []dataset
	failed     []dataset
	stored     int   // stored or already stored
	bytes      int64 // their size
	warnings   int
	studies    map[string]bool
}

func (s *server) stow(c *gin.Context) {
	ctx := c.Request.Context()
	start := time.Now()
	var acked int // instances acknowledged by the answer
	var ackedBytes int64
	defer func() {
		s.cfg.Metrics.ingestStatus(c.Writer.Status())
		s.cfg.Metrics.IngestObserved(acked, ackedBytes, time.Since(start))
	}()
	study := c.Param("study")
	if study != "" {
		if err := dicomio.ValidateUID(study); err != nil {
			s.abortWithError(c, errorf(http.StatusBadRequest, "invalid Study Instance UID in path: %v", err))
			return
		}
	}
	if max := s.cfg.MaxRequestBytes; max > 0 {
		if c.Request.ContentLength > max {
			s.abortWithError(c, errorf(http.StatusRequestEntityTooLarge,
				"request body of %d bytes exceeds the limit of %d bytes; send fewer instances per request", c.Request.ContentLength, max))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, max)
	}
	mr, err := dicomio.NewMultipartReader(c.Request.Body, c.GetHeader("Content-Type"))
	if err != nil {
		s.abortWithError(c, err)
		return
	}

	base := baseURL(c.Request)
	res := &stowResult{studies: map[string]bool{}}
	var broken error // the body broke: multipart error or size limit

	// Parts are read from the body one after another (Receive spools each
	// to a temp file), while the parts already read are validated and
	// committed concurrently: a window bounded in instances and in bytes.
	// Results are reported in part order.
	type slot struct {
		r    *store.StoreResult
		err  error
		done chan struct{}
	}
	var slots []*slot
	window := semaphore.NewWeighted(stowWindowBytes)
	inflight := make(chan struct{}, stowWindowParts)
	parts := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			broken = err
			break
		}
		parts++
		sl := &slot{done: make(chan struct{})}
		slots = append(slots, sl)
		if part.Refusal != "" {
			sl.err = &dicomio.RejectError{Code: dicomio.ReasonCannotUnderstand, Reason: part.Refusal}
			close(sl.done)
			continue
		}
		pending, err := s.archive.Receive(ctx, part, store.StoreOptions{Study: study, MaxBytes: s.cfg.MaxInstanceBytes})
		if err != nil {
			sl.err = err
			close(sl.done)
			if mr.Err() != nil {
				// The body broke inside this part: not the instance's fault.
				slots = slots[:len(slots)-1]
				broken = mr.Err()
				break
			}
			continue
		}
		weight := min(pending.Size(), stowWindowBytes)
		inflight <- struct{}{}
		if err := window.Acquire(ctx, weight); err != nil {
			<-inflight
			pending.Discard()
			sl.err = err
			close(sl.done)
			break
		}
		go func() {
			defer close(sl.done)
			defer func() { window.Release(weight); <-inflight }()
			sl.r, sl.err = pending.Commit(ctx)
		}()
	}
	for _, sl := range slots {
		<-sl.done
	}

	for i, sl := range slots {
		part := i + 1
		err := sl.err
		switch {
		case errors.Is(err, store.ErrUnavailable):
			s.abortWithError(c, fmt.Errorf("storing part %d: %w", part, err))
			return
		case err != nil && ctx.Err() != nil:
			s.abortWithError(c, ctx.Err())
			return
		case err != nil:
			if rej := dicomio.AsReject(err); rej != nil {
				s.refuse(c, res, rej.SOPClassUID, rej.SOPInstanceUID, part, rej.Code, rej.Reason)
			} else if errors.Is(err, store.ErrTooLarge) {
				s.refuse(c, res, "", "", part, dicomio.ReasonOutOfResources,
					fmt.Sprintf("instance exceeds the limit of %d bytes", s.cfg.MaxInstanceBytes))
			} else {
				s.log.ErrorContext(ctx, "STOW-RS: storing failed", "part", part, "err", err)
				s.refuse(c, res, "", "", part, dicomio.ReasonProcessingFailure, "processing failure: "+err.Error())
			}
		default:
			res.add(base, sl.r)
		}
	}

	status := http.StatusOK
	switch {
	case broken != nil:
		var mbe *http.MaxBytesError
		code, reason := dicomio.ReasonCannotUnderstand, "the multipart body is broken after part "+fmt.Sprint(parts)+": "+broken.Error()
		if errors.As(broken, &mbe) {
			code = dicomio.ReasonOutOfResources
			reason = fmt.Sprintf("the request body exceeds the limit of %d bytes (in part %d); the parts after that were not read", mbe.Limit, parts)
		}
		s.log.WarnContext(ctx, "STOW-RS: request body broken", "parts", parts, "err", broken)
		if res.stored == 0 {
			if parts == 0 || errors.As(broken, &mbe) {
				s.abortWithError(c, errorf(statusOf(broken), "%s", reason))
				return
			}
			status = http.StatusBadRequest
		} else {
			status = http.StatusAccepted
		}
		res.failed = append(res.failed, failedItem("", "", code, reason))
	case parts == 0:
		s.abortWithError(c, errorf(http.StatusBadRequest, "the multipart body holds no part"))
		return
	case res.stored == 0:
		status = http.StatusConflict
	case len(res.failed) > 0 || res.warnings > 0:
		status = http.StatusAccepted
	}

	s.putOnWorklist(ctx, res.studies)

	ds := dataset{}
	switch {
	case study != "":
		ds.str("00081190", "UR", base+"/studies/"+study)
	case len(res.studies) == 1:
		for st := range res.studies {
			ds.str("00081190", "UR", base+"/studies/"+st)
		}
	}
	if len(res.referenced) > 0 {
		ds.seq("00081199", res.referenced)
	}
	if len(res.failed) > 0 {
		ds.seq("00081198", res.failed)
	}
	body, err := json.Marshal(ds)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	c.Data(status, dicomio.MediaTypeDICOMJSON, body)
	acked, ackedBytes = res.stored, res.bytes
}

// putOnWorklist upserts the studies on the worklist (when the server has
// one), logging what fails.
func (s *server) putOnWorklist(ctx context.Context, studies map[string]bool) {
	if s.cfg.Worklist == nil || s.studies == nil || len(studies) == 0 {
		return
	}
	// The instances are stored whether or not the client still waits.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), worklistUpsertTimeout)
	defer cancel()
	for _, uid := range slices.Sorted(maps.Keys(studies)) {
		e, open, err := s.studies.WorklistStudy(ctx, uid)
		if err != nil {
			s.log.WarnContext(ctx, "STOW-RS: study not put on the worklist; the stability check will", "study", uid, "err", err)
			continue
		}
		if !open {
			continue // completed: it stays off the worklist
		}
		it, err := s.cfg.Worklist.Upsert(ctx, e.Study, stowUser)
		switch {
		case errors.Is(err, worklist.ErrCompleted):
		case err != nil:
			s.log.WarnContext(ctx, "STOW-RS: study not put on the worklist; the stability check will", "study", uid, "err", err)
		default:
			s.log.DebugContext(ctx, "worklist: study upserted", "study", uid, "tier", it.Tier, "ai", it.AI)
		}
	}
}

func (res *stowResult) add(base string, r *store.StoreResult) {
	in := r.Instance
	it := dataset{}
	it.str("00081150", "UI", in.SOPClassUID)
	it.str("00081155", "UI", in.SOPInstanceUID)
	it.str("00081190", "UR", instanceURL(base, in.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID))
	if r.Outcome == store.Conflict {
		it.num("00081196", "US", int(dicomio.WarnCoercion), true)
		res.warnings++
	}
	res.referenced = append(res.referenced, it)
	res.stored++
	res.bytes += r.Size
	res.studies[in.StudyInstanceUID] = true
}

// refuse records and logs the refusal of one part.
func (s *server) refuse(c *gin.Context, res *stowResult, class, sop string, part int, code dicomio.FailureReason, reason string) {
	s.log.WarnContext(c.Request.Context(), "STOW-RS: instance refused",
		"part", part, "sop_instance_uid", sop, "sop_class_uid", class,
		"failure_reason", fmt.Sprintf("0x%04X", uint16(code)), "reason", reason)
	reason = fmt.Sprintf("part %d: %s", part, reason)
	res.failed = append(res.failed, failedItem(class, sop, code, reason))
}

func failedItem(class, sop string, code dicomio.FailureReason, reason string) dataset {
	it := dataset{}
	if class != "" {
		it.str("00081150", "UI", class)
	}
	if sop != "" {
		it.str("00081155", "UI", sop)
	}
	it.num("00081197", "US", int(code), true)
	it.str(tagPrivateCreator, "LO", privateCreator)
	it.str(tagFailureText, "LT", reason)
	return it
}

func instanceURL(base, study, series, sop string) string {
	return base + "/studies/" + study + "/series/" + series + "/instances/" + sop
}
