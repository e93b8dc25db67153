package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// The worklist page (issue 8): plain ES modules and CSS in web/, embedded
// in the binary, so the page works on a network with no internet and the
// build needs no Node.
//
//	GET /, /worklist       the page (web/index.html)
//	GET /ui/{file}          an asset, revalidated with its ETag (Cache-Control: no-cache)
//	GET /ui/v-{hash}/{file} the same asset under the version of the whole
//	                        folder, cached for a year (immutable); the page
//	                        links its assets this way, and relative module
//	                        imports stay under the same version
//	GET /api/v1/ui/config  {"viewer_url", "demonstration", "models"} (UIConfig)
//
// Every answer carries Content-Security-Policy (default-src 'self': no
// inline script or style, nothing fetched from elsewhere) and
// X-Content-Type-Options: nosniff.

//go:embed web
var webFiles embed.FS

// UIConfig is what the worklist page is told about the site.
type UIConfig struct {
	// ViewerURL is the template of a link that opens a study in an
	// external DICOMweb viewer: "{study}" is replaced by the Study
	// Instance UID, e.g.
	// "https://viewer.example.org/viewer?StudyInstanceUIDs={study}" for
	// an OHIF deployment pointed at this server's /dicomweb. "" shows no
	// link. See CheckViewerURL.
	ViewerURL string
	// Demonstration says that AI results come from demonstration models
	// (not clinically validated); the page says so.
	Demonstration bool
	// Models names the models in use, for the page's note.
	Models []string
}

// uiConfigAnswer is the JSON answer of GET /api/v1/ui/config.
type uiConfigAnswer struct {
	ViewerURL     string   `json:"viewer_url"`
	Demonstration bool     `json:"demonstration"`
	Models        []string `json:"models"`
}

// ErrViewerURL is the error of CheckViewerURL.
var ErrViewerURL = errors.New("invalid viewer URL template")

// CheckViewerURL checks a UIConfig.ViewerURL template: "" (no link), or an
// absolute http or https URL that holds "{study}".
func CheckViewerURL(template string) error {
	if template == "" {
		return nil
	}
	if !strings.Contains(template, "{study}") {
		return fmt.Errorf("%w: %q has no {study} placeholder for the Study Instance UID", ErrViewerURL, template)
	}
	u, err := url.Parse(strings.ReplaceAll(template, "{study}", "1.2.3"))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrViewerURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %q is not an absolute http:// or https:// URL", ErrViewerURL, template)
	}
	return nil
}

// contentSecurityPolicy allows the page only its own origin: scripts,
// styles, images, the API and the event stream.
const contentSecurityPolicy = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'"

// Cache-Control values of the UI.
const (
	cacheRevalidate = "no-cache"
	cacheImmutable  = "public, max-age=31536000, immutable"
)

// uiAsset is one embedded file, ready to serve.
type uiAsset struct {
	name        string // path under web/, e.g. "app.js"
	body        []byte
	contentType string
	etag        string // quoted strong ETag of body
}

// uiBundle is the embedded folder.
type uiBundle struct {
	version string // "v-" and 16 hex digits of a hash of every file
	page    *uiAsset
	assets  map[string]*uiAsset // by name; index.html is served as page only
}

var (
	uiOnce   sync.Once
	uiLoaded *uiBundle
	uiErr    error
)

// loadUI reads and versions the embedded folder once.
func loadUI() (*uiBundle, error) {
	uiOnce.Do(func() { uiLoaded, uiErr = readUI(webFiles) })
	return uiLoaded, uiErr
}

// uiContentTypes maps the extensions the folder may hold to their media
// types; readUI refuses any other file, so that nothing is served with a
// sniffed type.
var uiContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
}

// readUI reads the folder web/ of fsys.
func readUI(fsys fs.FS) (*uiBundle, error) {
	b := &uiBundle{assets: make(map[string]*uiAsset)}
	var names []string
	err := fs.WalkDir(fsys, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("api: reading the embedded UI: %w", err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, p := range names {
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("api: reading the embedded UI: %w", err)
		}
		name := strings.TrimPrefix(p, "web/")
		ct, ok := uiContentTypes[path.Ext(name)]
		if !ok {
			return nil, fmt.Errorf("api: embedded UI file %s: no content type for %q", name, path.Ext(name))
		}
		sum := sha256.Sum256(body)
		a := &uiAsset{name: name, body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		fmt.Fprintf(h, "%s\x00%x\x00", name, sum)
		if name == "index.html" {
			b.page = a
			continue
		}
		b.assets[name] = a
	}
	if b.page == nil {
		return nil, errors.New("api: the embedded UI has no index.html")
	}
	b.version = "v-" + hex.EncodeToString(h.Sum(nil)[:8])
	// The page links its assets under the version, so that a new binary's
	// page never runs an old cached script.
	page := bytes.ReplaceAll(b.page.body, []byte(`"/ui/`), []byte(`"/ui/`+b.version+`/`))
	sum := sha256.Sum256(page)
	b.page = &uiAsset{name: "index.html", body: page, contentType: b.page.contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	return b, nil
}

// registerUI adds the page, its assets and its configuration to e.
func (s *server) registerUI(e *gin.Engine) {
	b, err := loadUI()
	if err != nil {
		// The folder is compiled in: this is a build defect, not input.
		panic(err)
	}
	page := func(c *gin.Context) { serveUIAsset(c, b.page, cacheRevalidate) }
	for _, p := range []string{"/", "/worklist"} {
		e.GET(p, page)
		e.HEAD(p, page)
	}
	asset := func(c *gin.Context) { s.uiAsset(c, b) }
	e.GET("/ui/*asset", asset)
	e.HEAD("/ui/*asset", asset)
	e.GET("/api/v1/ui/config", s.uiConfig)
}

// uiAsset serves /ui/{name} and /ui/v-{hash}/{name}.
func (s *server) uiAsset(c *gin.Context, b *uiBundle) {
	name := strings.TrimPrefix(c.Param("asset"), "/")
	cache := cacheRevalidate
	if v, rest, ok := strings.Cut(name, "/"); ok && strings.HasPrefix(v, "v-") {
		name = rest
		if v == b.version {
			cache = cacheImmutable
		}
		// Another version (a page from before an upgrade) gets today's
		// file, revalidated rather than cached for a year.
	}
	a, ok := b.assets[name]
	if !ok {
		s.abortWithError(c, errorf(http.StatusNotFound, "no UI asset %q", c.Param("asset")))
		return
	}
	serveUIAsset(c, a, cache)
}

// serveUIAsset writes a with its headers; http.ServeContent answers
// If-None-Match with 304 and HEAD without a body.
func serveUIAsset(c *gin.Context, a *uiAsset, cache string) {
	h := c.Writer.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", cache)
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if a.name == "index.html" {
		h.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(c.Writer, c.Request, "", time.Time{}, bytes.NewReader(a.body))
}

// uiConfig answers GET /api/v1/ui/config.
func (s *server) uiConfig(c *gin.Context) {
	ui := s.cfg.UI
	models := ui.Models
	if models == nil {
		models = []string{}
	}
	c.Header("Cache-Control", cacheRevalidate)
	c.JSON(http.StatusOK, uiConfigAnswer{ViewerURL: ui.ViewerURL, Demonstration: ui.Demonstration, Models: models})
}
