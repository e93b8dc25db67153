package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/triage"
	"github.com/radtriage/radtriage/worklist"
)

// The findings API (issue 7), under /api/v1/studies/{study}:
//
//	GET /api/v1/studies/{study}/findings              the latest triage result (JSON)
//	GET /api/v1/studies/{study}/findings/mask.nii.gz  its label mask (gzip-compressed NIfTI-1)
//
// The findings answer is
//
//	{"study_uid": "...", "series_uid": "...", "tier": "critical", "at": RFC 3339,
//	 "ai": "done"|"pending"|"failed",
//	 "result": {the Result as "radtriage triage --json" prints it, with each finding's explanation},
//	 "mask_url": "http://host/api/v1/studies/{study}/findings/mask.nii.gz",
//	 "job": {"study_uid", "version", "state", "attempts", "last_error", ...}}
//
// result and mask_url are absent while the study has no result (mask_url
// also when the result has no mask), job when the study has no triage job
// (a result saved outside the pipeline). ai is "done" when the result is
// the latest job's, "failed" when that job is dead (an earlier result may
// still be shown), and "pending" otherwise. A study with neither a result
// nor a job is 404.
//
// Statuses: 400 a study UID that dicomio.ValidateUID refuses; 404 no
// result and no job, or (mask) no result or one without a mask; 406 an
// Accept header that excludes application/json (findings) or
// application/gzip (mask); 503 when the server has no result store
// configured, or the index database is unavailable.

// ResultReader reads a study's triage result and its triage job
// (store.DB implements it).
type ResultReader interface {
	// TriageResult returns the study's latest result; an error wrapping
	// store.ErrNotFound when it has none.
	TriageResult(ctx context.Context, studyUID string) (triage.StoredResult, error)
	// Job returns the study's triage job; an error wrapping
	// store.ErrNotFound when it has none.
	Job(ctx context.Context, studyUID string) (store.Job, error)
}

var _ ResultReader = (*store.DB)(nil)

// Media types of the findings routes.
const (
	mediaTypeJSON = "application/json"
	mediaTypeGzip = "application/gzip"
)

// findingsAnswer is the JSON answer of GET .../findings.
type findingsAnswer struct {
	StudyUID  string            `json:"study_uid"`
	SeriesUID string            `json:"series_uid,omitempty"`
	Tier      string            `json:"tier,omitempty"`
	At        time.Time         `json:"at,omitzero"`
	AI        worklist.AIStatus `json:"ai"`
	Result    json.RawMessage   `json:"result,omitempty"`
	MaskURL   string            `json:"mask_url,omitempty"`
	Job       *jobJSON          `json:"job,omitempty"`
}

// needResults answers 503 on the findings routes of a server built without
// a result reader.
func (s *server) needResults(c *gin.Context) {
	if s.cfg.Results == nil {
		s.abortWithError(c, errorf(http.StatusServiceUnavailable, "triage results are not configured on this server (api.Config.Results is nil)"))
		return
	}
	c.Next()
}

// pathStudy validates the study UID of the path.
func pathStudy(c *gin.Context) (string, error) {
	uid := c.Param("study")
	if err := dicomio.ValidateUID(uid); err != nil {
		return "", errorf(http.StatusBadRequest, "invalid Study Instance UID in path: %v", err)
	}
	return uid, nil
}

// accepts reports whether the request's Accept header admits one of the
// media types (a missing header admits anything).
func accepts(c *gin.Context, types ...string) bool {
	for _, m := range parseAccept(c.GetHeader("Accept")) {
		if m.typ == "*/*" {
			return true
		}
		for _, t := range types {
			if m.typ == t || strings.HasSuffix(m.typ, "/*") && strings.HasPrefix(t, strings.TrimSuffix(m.typ, "*")) {
				return true
			}
		}
	}
	return false
}

// aiStatus says where AI triage of a study stands, from its job (nil: no
// job) and whether it has a result.
func aiStatus(job *store.Job, hasResult bool) worklist.AIStatus {
	switch {
	case job == nil && hasResult, job != nil && job.State == store.JobDone:
		return worklist.AIDone
	case job != nil && job.State == store.JobDead:
		return worklist.AIFailed
	}
	return worklist.AIPending
}

func (s *server) findings(c *gin.Context) {
	ctx := c.Request.Context()
	study, err := pathStudy(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if !accepts(c, mediaTypeJSON) {
		s.abortWithError(c, errorf(http.StatusNotAcceptable, "findings are served as %s only; Accept %q excludes it", mediaTypeJSON, c.GetHeader("Accept")))
		return
	}
	r, err := s.cfg.Results.TriageResult(ctx, study)
	hasResult := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.abortWithError(c, err)
		return
	}
	var job *store.Job
	j, err := s.cfg.Results.Job(ctx, study)
	switch {
	case err == nil:
		job = &j
	case !errors.Is(err, store.ErrNotFound):
		s.abortWithError(c, err)
		return
	case !hasResult:
		s.abortWithError(c, errorf(http.StatusNotFound, "study %s has no triage result and no triage job (not stored, not yet stable, or not triaged)", study))
		return
	}
	ans := findingsAnswer{StudyUID: study, AI: aiStatus(job, hasResult)}
	if job != nil {
		js := toJobJSON(job)
		ans.Job = &js
	}
	if hasResult {
		ans.SeriesUID, ans.Tier, ans.At = r.SeriesUID, r.Tier, utc(r.At)
		ans.Result = json.RawMessage(r.JSON)
		if r.Mask != nil {
			ans.MaskURL = apiURL(c.Request) + "/studies/" + study + "/findings/mask.nii.gz"
		}
	}
	c.JSON(http.StatusOK, ans)
}

func (s *server) findingsMask(c *gin.Context) {
	study, err := pathStudy(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if !accepts(c, mediaTypeGzip, "application/x-gzip", "application/octet-stream") {
		s.abortWithError(c, errorf(http.StatusNotAcceptable, "the mask is served as %s (NIfTI-1, .nii.gz) only; Accept %q excludes it", mediaTypeGzip, c.GetHeader("Accept")))
		return
	}
	r, err := s.cfg.Results.TriageResult(c.Request.Context(), study)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	if r.Mask == nil {
		s.abortWithError(c, errorf(http.StatusNotFound, "the triage result of study %s has no mask (no positive finding with a segmentation)", study))
		return
	}
	c.Header("Content-Disposition", `attachment; filename="`+study+`.nii.gz"`)
	c.Data(http.StatusOK, mediaTypeGzip, r.Mask)
}

// apiURL is the absolute URL of /api/v1 as the client reached it (see
// baseURL).
func apiURL(r *http.Request) string {
	return strings.TrimSuffix(baseURL(r), "/dicomweb") + "/api/v1"
}
