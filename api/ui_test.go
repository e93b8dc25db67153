package api

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// uiServer is a server with the given page configuration on a fresh
// SQLite archive.
func uiServer(t *testing.T, ui UIConfig) http.Handler {
	t.Helper()
	return New(openSQLite(t), Config{UI: ui})
}

// uiGet runs one request against h.
func uiGet(t *testing.T, h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkUIHeaders checks the headers every page and asset answer carries.
func checkUIHeaders(t *testing.T, target string, rec *httptest.ResponseRecorder) {
	t.Helper()
	h := rec.Header()
	if csp := h.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
		t.Errorf("%s: Content-Security-Policy %q, want it to start with default-src 'self'", target, csp)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q, want nosniff", target, got)
	}
	if h.Get("ETag") == "" {
		t.Errorf("%s: no ETag", target)
	}
}

// uiContractIDs are the element ids the browser tests and the benchmark
// rely on (contracts of issue 8).
var uiContractIDs = []string{
	"user-name", "worklist", "filter-modality", "filter-tier", "filter-status", "filter-mine",
	"count-critical", "count-urgent", "count-routine", "banner-offline", "help-overlay",
	"study-panel", "window-preset", "viewer-link", "ai-note", "sound-toggle",
}

func TestUIPage(t *testing.T) {
	h := uiServer(t, UIConfig{})
	b, err := loadUI()
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/", "/worklist"} {
		t.Run(target, func(t *testing.T) {
			rec := uiGet(t, h, http.MethodGet, target, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
			}
			checkUIHeaders(t, target, rec)
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q, want text/html; charset=utf-8", ct)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != cacheRevalidate {
				t.Errorf("Cache-Control %q, want %q (the page names the asset version)", cc, cacheRevalidate)
			}
			page := rec.Body.String()
			for _, id := range uiContractIDs {
				if !strings.Contains(page, `id="`+id+`"`) {
					t.Errorf("the page has no element #%s", id)
				}
			}
			if !strings.Contains(page, `src="/ui/`+b.version+`/app.js"`) {
				t.Errorf("the page does not load /ui/%s/app.js:\n%s", b.version, page)
			}
			if strings.Contains(page, `"/ui/app.js"`) {
				t.Errorf("the page still links an unversioned asset")
			}

			head := uiGet(t, h, http.MethodHead, target, nil)
			if head.Code != http.StatusOK || head.Body.Len() != 0 {
				t.Errorf("HEAD %s: %d with %d body bytes, want 200 and none", target, head.Code, head.Body.Len())
			}
			etag := rec.Header().Get("ETag")
			again := uiGet(t, h, http.MethodGet, target, http.Header{"If-None-Match": {etag}})
			if again.Code != http.StatusNotModified {
				t.Errorf("GET %s with If-None-Match %s: %d, want 304", target, etag, again.Code)
			}
		})
	}
	for _, target := range []string{"/worklist/", "/index.html", "/ui/index.html"} {
		if rec := uiGet(t, h, http.MethodGet, target, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, rec.Code)
		}
	}
}

// externalRefs find references that would make the browser reach outside
// the server: absolute or protocol-relative URLs in src/href attributes,
// CSS url() and @import, and module imports; absoluteURL any http(s) URL
// at all (XML namespaces, which nothing fetches, are allowed).
var (
	externalRefs = []*regexp.Regexp{
		regexp.MustCompile(`(?i)\b(?:src|href|action|poster|srcset|formaction)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//`),
		regexp.MustCompile(`(?i)url\(\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//`),
		regexp.MustCompile(`(?i)@import`),
		regexp.MustCompile(`(?i)\b(?:import|from)\s*\(?\s*["'](?:[a-z][a-z0-9+.-]*:)?//`),
		regexp.MustCompile(`(?i)\b(?:fetch|EventSource|Worker|Audio)\s*\(\s*["'](?:[a-z][a-z0-9+.-]*:)?//`),
	}
	absoluteURL   = regexp.MustCompile(`(?i)https?://[^\s"'<>)]*`)
	xmlNamespaces = map[string]bool{"http://www.w3.org/2000/svg": true}
)

func TestUIAssetsStayOffline(t *testing.T) {
	err := fs.WalkDir(webFiles, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(webFiles, p)
		if err != nil {
			return err
		}
		text := string(body)
		for _, re := range externalRefs {
			for _, m := range re.FindAllString(text, -1) {
				t.Errorf("%s: external reference %q (the page must work with no internet)", p, m)
			}
		}
		for _, m := range absoluteURL.FindAllString(text, -1) {
			if !xmlNamespaces[m] {
				t.Errorf("%s: absolute URL %q (the page must work with no internet)", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The scanners must find what they are there to find.
func TestUIExternalRefScanners(t *testing.T) {
	for _, bad := range []string{
		`<script src="https://cdn.example/x.js">`,
		`<link href='//fonts.example/css'>`,
		`body { background: url( "//cdn.example/a.png") }`,
		`@import "theme.css";`,
		`import x from "https://cdn.example/m.js";`,
		`const m = await import('//cdn.example/m.js');`,
		`fetch("https://api.example/")`,
	} {
		found := false
		for _, re := range externalRefs {
			found = found || re.MatchString(bad)
		}
		if !found {
			t.Errorf("no scanner finds %q", bad)
		}
	}
	if absoluteURL.FindString(`x = "http://cdn.example/a"`) != "http://cdn.example/a" {
		t.Errorf("absoluteURL misses a plain URL")
	}
}

// pageRef finds the assets a page or module loads: src and href
// attributes, and static and dynamic module imports.
var (
	attrRef   = regexp.MustCompile(`\b(?:src|href)="([^"]+)"`)
	importRef = regexp.MustCompile(`(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']`)
)

// TestUIAssetsResolve follows every reference from the page, as a browser
// would, and checks that each answers 200 with the right type and caching,
// and that every embedded file is used.
func TestUIAssetsResolve(t *testing.T) {
	h := uiServer(t, UIConfig{})
	b, err := loadUI()
	if err != nil {
		t.Fatal(err)
	}
	wantType := map[string]string{
		".js":  "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8",
		".svg": "image/svg+xml",
	}
	base, _ := url.Parse("http://radtriage.test/worklist")
	seen := map[string]bool{}
	used := map[string]bool{}
	apiRefs := map[string]bool{}
	queue := []string{"/worklist"}
	for len(queue) > 0 {
		target := queue[0]
		queue = queue[1:]
		if seen[target] {
			continue
		}
		seen[target] = true
		rec := uiGet(t, h, http.MethodGet, target, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", target, rec.Code, rec.Body)
			continue
		}
		checkUIHeaders(t, target, rec)
		refs := attrRef
		if ext := path.Ext(target); ext != "" {
			if ct := rec.Header().Get("Content-Type"); ct != wantType[ext] {
				t.Errorf("GET %s: Content-Type %q, want %q", target, ct, wantType[ext])
			}
			if cc := rec.Header().Get("Cache-Control"); cc != cacheImmutable {
				t.Errorf("GET %s: Cache-Control %q, want %q for a versioned asset", target, cc, cacheImmutable)
			}
			prefix := "/ui/" + b.version + "/"
			if !strings.HasPrefix(target, prefix) {
				t.Errorf("%s is not under the version %s", target, prefix)
			}
			used[strings.TrimPrefix(target, prefix)] = true
			refs = importRef
			if ext == ".css" || ext == ".svg" {
				continue
			}
		}
		from, _ := base.Parse(target)
		for _, m := range refs.FindAllStringSubmatch(rec.Body.String(), -1) {
			if strings.HasPrefix(m[1], "#") {
				continue // a link inside the page
			}
			u, err := from.Parse(m[1])
			if err != nil || u.Host != base.Host {
				t.Errorf("%s: reference %q leaves the server", target, m[1])
				continue
			}
			if strings.HasPrefix(u.Path, "/api/") {
				// Data, not an asset: the page preloads the list's
				// first page (api.js asks for the same URL).
				apiRefs[u.RequestURI()] = true
				continue
			}
			queue = append(queue, u.Path)
		}
	}
	for name := range b.assets {
		if !used[name] {
			t.Errorf("web/%s is embedded but nothing on the page loads it", name)
		}
	}
	if len(used) < 5 {
		t.Errorf("followed only %v from the page", used)
	}
	// The preloaded list must be the one api.js fetches, or the browser
	// fetches it twice.
	apiJS, err := fs.ReadFile(webFiles, "web/api.js")
	if err != nil {
		t.Fatal(err)
	}
	for ref := range apiRefs {
		if ref != "/api/v1/worklist?format=ndjson" || !strings.Contains(string(apiJS), "export const listPath = '/worklist?format=ndjson';") {
			t.Errorf("the page references %s: want only /api/v1/worklist?format=ndjson, the streamed list api.js fetches (listPath)", ref)
		}
	}
	if len(apiRefs) != 1 {
		t.Errorf("the page preloads %v, want the streamed list", apiRefs)
	}
}

func TestUIAssetCaching(t *testing.T) {
	h := uiServer(t, UIConfig{})
	b, err := loadUI()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		target string
		code   int
		ctype  string
		cache  string
	}{
		{"unversioned script", "/ui/app.js", http.StatusOK, "text/javascript; charset=utf-8", cacheRevalidate},
		{"unversioned style", "/ui/app.css", http.StatusOK, "text/css; charset=utf-8", cacheRevalidate},
		{"versioned script", "/ui/" + b.version + "/api.js", http.StatusOK, "text/javascript; charset=utf-8", cacheImmutable},
		{"versioned icon", "/ui/" + b.version + "/favicon.svg", http.StatusOK, "image/svg+xml", cacheImmutable},
		{"another version", "/ui/v-0123456789abcdef/app.js", http.StatusOK, "text/javascript; charset=utf-8", cacheRevalidate},
		{"unknown asset", "/ui/nope.js", http.StatusNotFound, "", ""},
		{"folder", "/ui/", http.StatusNotFound, "", ""},
		{"embed folder name", "/ui/web/app.js", http.StatusNotFound, "", ""},
		{"climbing out", "/ui/../api/ui.go", http.StatusNotFound, "", ""},
		{"encoded climb", "/ui/%2e%2e%2fui.go", http.StatusNotFound, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := uiGet(t, h, http.MethodGet, tc.target, nil)
			if rec.Code != tc.code {
				t.Fatalf("GET %s: %d, want %d (%s)", tc.target, rec.Code, tc.code, rec.Body)
			}
			if tc.code != http.StatusOK {
				return
			}
			checkUIHeaders(t, tc.target, rec)
			if ct := rec.Header().Get("Content-Type"); ct != tc.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != tc.cache {
				t.Errorf("Cache-Control %q, want %q", cc, tc.cache)
			}
			etag := rec.Header().Get("ETag")
			again := uiGet(t, h, http.MethodGet, tc.target, http.Header{"If-None-Match": {etag}})
			if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
				t.Errorf("If-None-Match %s: %d with %d bytes, want 304 and none", etag, again.Code, again.Body.Len())
			}
			other := uiGet(t, h, http.MethodGet, tc.target, http.Header{"If-None-Match": {`"stale"`}})
			if other.Code != http.StatusOK || other.Body.Len() == 0 {
				t.Errorf("If-None-Match \"stale\": %d with %d bytes, want 200 and the file", other.Code, other.Body.Len())
			}
		})
	}
}

// TestUIContractHooks checks the hooks the browser tests and benchmark
// rely on that are not elements of the page.
func TestUIContractHooks(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"web/app.js", `performance.mark('worklist-rendered')`},
		{"web/app.js", `performance.mark('sse-applied:' + id)`},
		{"web/api.js", `'X-Radtriage-User': user`},
		{"web/api.js", `/worklist/events`},
		{"web/live.js", `?last_event_id=`},
		// The stream starts from the event_id of the list's first page.
		{"web/app.js", `live.start(page.event_id)`},
		{"web/panel.js", `'key-image'`},
		{"web/index.html", `button type="button" data-action="claim"`},
		{"web/index.html", `button type="button" data-action="release"`},
		{"web/index.html", `button type="button" data-action="complete"`},
		{"web/index.html", `button type="button" data-action="override"`},
		{"web/index.html", `id="banner-offline" class="banner banner-offline" role="alert" hidden`},
	} {
		body, err := fs.ReadFile(webFiles, tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), tc.want) {
			t.Errorf("%s does not contain %s", tc.file, tc.want)
		}
	}
}

func TestUIConfig(t *testing.T) {
	tests := []struct {
		name string
		ui   UIConfig
		want string
	}{
		{"zero", UIConfig{}, `{"viewer_url":"","demonstration":false,"models":[]}`},
		{"demonstration", UIConfig{Demonstration: true, Models: []string{"built-in demonstration ensemble"}},
			`{"viewer_url":"","demonstration":true,"models":["built-in demonstration ensemble"]}`},
		{"viewer", UIConfig{ViewerURL: "https://ohif.example/viewer?StudyInstanceUIDs={study}", Models: []string{"ich-seg@1.0.0", "ich-cls@1.0.0"}},
			`{"viewer_url":"https://ohif.example/viewer?StudyInstanceUIDs={study}","demonstration":false,"models":["ich-seg@1.0.0","ich-cls@1.0.0"]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := uiGet(t, uiServer(t, tc.ui), http.MethodGet, "/api/v1/ui/config", nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var got, want any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("%v: %s", err, rec.Body)
			}
			json.Unmarshal([]byte(tc.want), &want)
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			if string(gj) != string(wj) {
				t.Errorf("got %s, want %s", rec.Body, tc.want)
			}
		})
	}
}

func TestCheckViewerURL(t *testing.T) {
	tests := []struct {
		template string
		ok       bool
	}{
		{"", true},
		{"https://ohif.example.org/viewer?StudyInstanceUIDs={study}", true},
		{"http://10.0.0.5:3000/viewer/{study}", true},
		{"https://ohif.example.org/viewer", false},           // no placeholder
		{"/viewer?StudyInstanceUIDs={study}", false},         // not absolute
		{"javascript:alert(1)//{study}", false},              // not http(s)
		{"ftp://files.example/{study}", false},               // not http(s)
		{"https://{study}", true},                            // odd but absolute once filled
		{"https://exa mple.org/viewer?s={study}", false},     // unparsable host
		{"https:///viewer?StudyInstanceUIDs={study}", false}, // no host
	}
	for _, tc := range tests {
		err := CheckViewerURL(tc.template)
		if (err == nil) != tc.ok {
			t.Errorf("CheckViewerURL(%q) = %v, want ok %v", tc.template, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrViewerURL) {
			t.Errorf("CheckViewerURL(%q) = %v, not wrapping ErrViewerURL", tc.template, err)
		}
	}
}

func TestReadUI(t *testing.T) {
	page := &fstest.MapFile{Data: []byte(`<script type="module" src="/ui/app.js"></script><link href="/ui/app.css">`)}
	asset := &fstest.MapFile{Data: []byte(`export {};`)}
	tests := []struct {
		name string
		fsys fstest.MapFS
		ok   bool
	}{
		{"good", fstest.MapFS{"web/index.html": page, "web/app.js": asset, "web/app.css": asset}, true},
		{"no page", fstest.MapFS{"web/app.js": asset}, false},
		{"unknown type", fstest.MapFS{"web/index.html": page, "web/notes.txt": asset}, false},
		{"no folder", fstest.MapFS{"index.html": page}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := readUI(tc.fsys)
			if (err == nil) != tc.ok {
				t.Fatalf("readUI: %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			want := `src="/ui/` + b.version + `/app.js"`
			if !strings.Contains(string(b.page.body), want) || !strings.Contains(string(b.page.body), `href="/ui/`+b.version+`/app.css"`) {
				t.Errorf("page %s: links not versioned (want %s)", b.page.body, want)
			}
			// The version follows the content of any file.
			changed := fstest.MapFS{}
			for k, v := range tc.fsys {
				changed[k] = v
			}
			changed["web/app.css"] = &fstest.MapFile{Data: []byte(`body{}`)}
			b2, err := readUI(changed)
			if err != nil {
				t.Fatal(err)
			}
			if b2.version == b.version {
				t.Errorf("version %s unchanged after app.css changed", b.version)
			}
		})
	}
}
