package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/radtriage/radtriage/store"
)

// The triage jobs API (issue 7):
//
//	GET /api/v1/jobs[?state=dead[,retry...]][&limit=100]
//
// answers
//
//	{"counts": {"queued": n, "running": n, "retry": n, "done": n, "dead": n},
//	 "queue": {"length": n, "pending": n, "oldest_age_seconds": s},
//	 "jobs": [{"study_uid", "version", "state", "attempts", "owner", "lease_until",
//	           "next_at", "enqueued_at", "created_at", "updated_at", "finished_at", "last_error"}, ...]}
//
// jobs lists the jobs in the given states (every state without a state
// parameter; states comma-separated or the parameter repeated), the most
// recently changed first, at most limit (1 to 1000, default 100); dead
// letters are state=dead, with the reason in last_error. Times are RFC 3339
// in UTC, absent when unset. queue describes the Redis job stream; it is
// absent when the server has no queue configured, and replaced by
// "queue_error" when Redis does not answer (the jobs themselves come from
// the index database, the source of truth).
//
// Statuses: 400 an unknown state, a bad limit, an unknown or repeated
// query parameter; 406 an Accept header that excludes application/json;
// 503 when the server has no job lister configured, or the index database
// is unavailable.

// Limits of GET /api/v1/jobs.
const (
	defaultJobsLimit = 100
	maxJobsLimit     = 1000
)

// jobJSON is the JSON form of store.Job.
type jobJSON struct {
	StudyUID   string         `json:"study_uid"`
	Version    int64          `json:"version"`
	State      store.JobState `json:"state"`
	Attempts   int            `json:"attempts"`
	Owner      string         `json:"owner,omitempty"`
	LeaseUntil time.Time      `json:"lease_until,omitzero"`
	NextAt     time.Time      `json:"next_at,omitzero"`
	EnqueuedAt time.Time      `json:"enqueued_at,omitzero"`
	CreatedAt  time.Time      `json:"created_at,omitzero"`
	UpdatedAt  time.Time      `json:"updated_at,omitzero"`
	FinishedAt time.Time      `json:"finished_at,omitzero"`
	LastError  string         `json:"last_error,omitempty"`
}

func toJobJSON(j *store.Job) jobJSON {
	return jobJSON{
		StudyUID: j.StudyUID, Version: j.Version, State: j.State, Attempts: j.Attempts, Owner: j.Owner,
		LeaseUntil: utc(j.LeaseUntil), NextAt: utc(j.NextAt), EnqueuedAt: utc(j.EnqueuedAt),
		CreatedAt: utc(j.CreatedAt), UpdatedAt: utc(j.UpdatedAt), FinishedAt: utc(j.FinishedAt),
		LastError: j.LastError,
	}
}

// queueJSON is the JSON form of worklist.QueueStats.
type queueJSON struct {
	Length           int64   `json:"length"`
	Pending          int64   `json:"pending"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

// jobsAnswer is the answer of GET /api/v1/jobs.
type jobsAnswer struct {
	Counts     map[store.JobState]int `json:"counts"`
	Queue      *queueJSON             `json:"queue,omitempty"`
	QueueError string                 `json:"queue_error,omitempty"`
	Jobs       []jobJSON              `json:"jobs"`
}

// needJobs answers 503 on the jobs route of a server built without a job
// lister.
func (s *server) needJobs(c *gin.Context) {
	if s.cfg.Jobs == nil {
		s.abortWithError(c, errorf(http.StatusServiceUnavailable, "triage jobs are not configured on this server (api.Config.Jobs is nil)"))
		return
	}
	c.Next()
}

// parseJobsQuery reads the query of GET /api/v1/jobs.
func parseJobsQuery(c *gin.Context) (states []store.JobState, limit int, err error) {
	q := c.Request.URL.Query()
	for k, v := range q {
		switch {
		case k != "state" && k != "limit":
			return nil, 0, errorf(http.StatusBadRequest, "unknown query parameter %q (want state, limit)", k)
		case k == "limit" && len(v) > 1:
			return nil, 0, errorf(http.StatusBadRequest, "query parameter limit given %d times; give it once", len(v))
		}
	}
	seen := map[store.JobState]bool{}
	for _, v := range q["state"] {
		for _, name := range strings.Split(v, ",") {
			st := store.JobState(strings.ToLower(strings.TrimSpace(name)))
			known := false
			for _, s := range jobStates {
				known = known || st == s
			}
			if !known {
				return nil, 0, errorf(http.StatusBadRequest, "query parameter state=%q: want queued, running, retry, done or dead", name)
			}
			if !seen[st] {
				seen[st] = true
				states = append(states, st)
			}
		}
	}
	limit = defaultJobsLimit
	if q.Has("limit") {
		v := q.Get("limit")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxJobsLimit {
			return nil, 0, errorf(http.StatusBadRequest, "query parameter limit=%q: want an integer from 1 to %d (default %d)", v, maxJobsLimit, defaultJobsLimit)
		}
		limit = n
	}
	return states, limit, nil
}

func (s *server) jobs(c *gin.Context) {
	ctx := c.Request.Context()
	if !accepts(c, mediaTypeJSON) {
		s.abortWithError(c, errorf(http.StatusNotAcceptable, "jobs are served as %s only; Accept %q excludes it", mediaTypeJSON, c.GetHeader("Accept")))
		return
	}
	states, limit, err := parseJobsQuery(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	counts, err := s.cfg.Jobs.JobCounts(ctx)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	list, err := s.cfg.Jobs.Jobs(ctx, states, limit)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	ans := jobsAnswer{Counts: map[store.JobState]int{}, Jobs: make([]jobJSON, 0, len(list))}
	for _, st := range jobStates {
		ans.Counts[st] = counts[st]
	}
	for i := range list {
		ans.Jobs = append(ans.Jobs, toJobJSON(&list[i]))
	}
	if s.cfg.Queue != nil {
		st, err := s.cfg.Queue.Stats(ctx)
		if err != nil {
			s.log.WarnContext(ctx, "jobs: job stream statistics unavailable", "err", err)
			ans.QueueError = "job stream statistics unavailable: " + err.Error()
		} else {
			ans.Queue = &queueJSON{Length: st.Length, Pending: st.Pending, OldestAgeSeconds: st.OldestAge.Seconds()}
		}
	}
	c.JSON(http.StatusOK, ans)
}
