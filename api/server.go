package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/radtriage/radtriage/store"
	"github.com/radtriage/radtriage/worklist"
)

// Config is what the HTTP layer needs from the command line.
type Config struct {
	// MaxRequestBytes bounds a whole STOW-RS request body (413 above).
	MaxRequestBytes int64
	// MaxInstanceBytes bounds one instance (one multipart part).
	MaxInstanceBytes int64
	// CORSOrigins lists allowed browser origins ("*" for any; empty: CORS off).
	CORSOrigins []string
	// Logger receives request and error logs; nil means slog.Default().
	Logger *slog.Logger
	// MaxQueryResults caps one QIDO-RS answer (0: 10000). A query that
	// matches more is cut and answered with a Warning header (PS3.18 §8.3.4.4).
	MaxQueryResults int
	// Worklist serves /api/v1/worklist; nil answers those routes with 503.
	// When set, STOW-RS also puts every study it stores on the worklist at
	// once (AI pending), as the store describes it (the archive's
	// WorklistStudy method, which store.DB has).
	Worklist *worklist.Worklist
	// Results serves /api/v1/studies/{study}/findings; nil answers those
	// routes with 503.
	Results ResultReader
	// KeyImages serves /api/v1/studies/{study}/key-image.png
	// (keyimage.go); nil answers it with 503.
	KeyImages KeyImager
	// Jobs serves /api/v1/jobs; nil answers it with 503.
	Jobs JobLister
	// Queue adds the job stream's statistics to /api/v1/jobs; nil leaves
	// them out.
	Queue QueueStatter
	// Metrics is served at /metrics, and the STOW-RS handler records
	// ingest in it; nil: no /metrics (404). Its scrape-time gauges read
	// the sources given to Metrics.CollectFrom, which New does not call.
	Metrics *Metrics
	// UI configures the worklist page served at / (ui.go).
	UI UIConfig
}

const defaultMaxQueryResults = 10000

// server holds what the handlers share.
type server struct {
	archive store.Archive
	cfg     Config
	log     *slog.Logger
	// studies describes a study for the worklist (nil when the archive
	// cannot).
	studies worklistDescriber
}

func init() { gin.SetMode(gin.ReleaseMode) }

// New returns the HTTP handler for an archive.
func New(archive store.Archive, cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxQueryResults <= 0 {
		cfg.MaxQueryResults = defaultMaxQueryResults
	}
	s := &server{archive: archive, cfg: cfg, log: cfg.Logger}
	if d, ok := archive.(worklistDescriber); ok {
		s.studies = d
	}

	e := gin.New()
	// Route on the escaped path so that an encoded slash inside a UID
	// ("..%2F..") reaches the handler as one path value, where UID
	// validation refuses it with 400, instead of routing elsewhere.
	e.UseRawPath = true
	e.UnescapePathValues = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.Use(s.recovery, s.logRequests, s.cors)

	e.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.readyz)

	d := e.Group("/dicomweb")
	// STOW-RS (PS3.18 §10.5).
	d.POST("/studies", s.stow)
	d.POST("/studies/:study", s.stow)
	// QIDO-RS (PS3.18 §10.6).
	d.GET("/studies", s.qidoStudies)
	d.GET("/studies/:study/series", s.qidoSeries)
	d.GET("/studies/:study/instances", s.qidoInstances)
	d.GET("/studies/:study/series/:series/instances", s.qidoInstances)
	d.GET("/series", s.qidoSeries)
	d.GET("/instances", s.qidoInstances)
	// WADO-RS (PS3.18 §10.4).
	d.GET("/studies/:study", s.retrieve)
	d.GET("/studies/:study/series/:series", s.retrieve)
	d.GET("/studies/:study/series/:series/instances/:sop", s.retrieve)
	d.GET("/studies/:study/metadata", s.metadata)
	d.GET("/studies/:study/series/:series/metadata", s.metadata)
	d.GET("/studies/:study/series/:series/instances/:sop/metadata", s.metadata)
	d.GET("/studies/:study/series/:series/instances/:sop/frames/:frames", s.frames)
	d.GET("/studies/:study/series/:series/instances/:sop/bulkdata/:tag", s.bulkdata)

	// Worklist (issue 4; worklist.go, worklist_sse.go).
	wl := e.Group("/api/v1/worklist", s.needWorklist)
	wl.GET("", s.worklistList)
	wl.GET("/events", s.worklistEvents())
	wl.GET("/:study", s.worklistGet)
	wl.POST("/:study/claim", s.worklistChange(claimStudy))
	wl.POST("/:study/release", s.worklistChange(releaseStudy))
	wl.POST("/:study/complete", s.worklistChange(completeStudy))
	wl.PUT("/:study/priority", s.worklistChange(setPriority))
	wl.DELETE("/:study/priority", s.worklistChange(clearPriority))

	// Findings and triage jobs (issue 7; findings.go, jobs.go).
	v1 := e.Group("/api/v1")
	v1.GET("/studies/:study/findings", s.needResults, s.findings)
	v1.GET("/studies/:study/findings/mask.nii.gz", s.needResults, s.findingsMask)
	v1.GET("/studies/:study/key-image.png", s.needKeyImages, s.keyImage)
	v1.GET("/jobs", s.needJobs, s.jobs)

	// Prometheus metrics (metrics.go).
	if cfg.Metrics != nil {
		e.GET("/metrics", gin.WrapH(cfg.Metrics.Handler()))
	}

	// The worklist page and its assets (ui.go).
	s.registerUI(e)

	e.NoRoute(s.noRoute)
	return e
}

func (s *server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.archive.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready", "err", err)
		c.Header("Retry-After", retryAfterSeconds)
		c.String(http.StatusServiceUnavailable, "index database unavailable\n")
		return
	}
	if s.cfg.Worklist != nil {
		if err := s.cfg.Worklist.Ping(ctx); err != nil {
			s.log.WarnContext(ctx, "not ready", "err", err)
			c.Header("Retry-After", retryAfterSeconds)
			c.String(http.StatusServiceUnavailable, "worklist Redis unavailable\n")
			return
		}
	}
	c.String(http.StatusOK, "ok\n")
}

// noRoute answers 400 for DICOMweb paths that try to climb out of their
// resource ("1.2.3/../4", empty or dot segments) and 404 otherwise.
func (s *server) noRoute(c *gin.Context) {
	p := c.Request.URL.EscapedPath()
	if strings.HasPrefix(p, "/dicomweb/") {
		for _, seg := range strings.Split(strings.TrimPrefix(p, "/dicomweb/"), "/") {
			low := strings.ToLower(seg)
			if seg == "" || seg == "." || seg == ".." || strings.Contains(low, "%2f") || strings.Contains(low, "%5c") || strings.Contains(seg, `\`) {
				s.abortWithError(c, errorf(http.StatusBadRequest, "invalid path segment %q in %s: a DICOMweb path holds UIDs, not path syntax", seg, p))
				return
			}
		}
	}
	s.abortWithError(c, errorf(http.StatusNotFound, "no resource at %s %s", c.Request.Method, p))
}

// recovery turns a handler panic into a 500 (logged) without killing the
// server; http.ErrAbortHandler passes through to cut the connection of a
// response already under way.
func (s *server) recovery(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(c.Request.Context(), "panic in handler", "method", c.Request.Method,
				"path", c.Request.URL.Path, "panic", v)
			if !c.Writer.Written() {
				c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
				return
			}
			panic(http.ErrAbortHandler)
		}
	}()
	c.Next()
}

func (s *server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := c.Writer.Status()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(c.Request.Context(), level, "http request",
		"method", c.Request.Method,
		"path", c.Request.URL.EscapedPath(),
		"status", status,
		"bytes", c.Writer.Size(),
		"duration", time.Since(start),
		"remote", c.ClientIP())
}

// cors answers browser origins listed in cfg.CORSOrigins, and preflight
// OPTIONS requests for them.
func (s *server) cors(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if len(s.cfg.CORSOrigins) == 0 || origin == "" {
		c.Next()
		return
	}
	allowed, any := false, false
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" {
			allowed, any = true, true
			break
		}
		if strings.EqualFold(o, origin) {
			allowed = true
		}
	}
	h := c.Writer.Header()
	h.Add("Vary", "Origin")
	preflight := c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != ""
	if !allowed {
		if preflight {
			c.AbortWithStatus(http.StatusForbidden)
			return
		}
		c.Next()
		return
	}
	if any {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	h.Set("Access-Control-Expose-Headers", "Content-Type, Content-Location, Content-Length, Location, Warning, Retry-After")
	if preflight {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		if req := c.GetHeader("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
			h.Add("Vary", "Access-Control-Request-Headers")
		}
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	c.Next()
}

// baseURL is the absolute URL of the DICOMweb root as the client reached
// it: scheme from TLS or X-Forwarded-Proto, host from the Host header.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		p = strings.ToLower(strings.TrimSpace(strings.Split(p, ",")[0]))
		if p == "http" || p == "https" {
			scheme = p
		}
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + host + "/dicomweb"
}
