package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"
)

// The browser tests (issue 8): the worklist page in a headless Debian
// chromium (browser.go) against a real `radtriage serve` on the embedded
// defaults with --workers 1 --stable-age 1s, studies pushed as phantoms
// through the API the way a PACS sends them.
//
//   - TestBrowserHarness: the harness itself on a page of its own, with
//     planted accessibility violations that axe-core must find.
//   - TestBrowserWorklist: the page loads (same-origin requests only,
//     under its Content-Security-Policy); a phantom with a bleed pushed
//     while two users have the page open appears on top in both, without a
//     reload, highlighted and notified; the key image has the lesion
//     outlined (red pixels in the PNG) and shows in the study panel;
//     axe-core finds no serious or critical violation on the list and with
//     the panel open; a claim in one browser context shows as held in the
//     other; completing removes the row everywhere; and a keyboard-only
//     session moves, opens, claims, releases, overrides and completes.
//   - TestBrowserReconnect: the event stream is cut (a TCP proxy between
//     browser and server) and changes made meanwhile show after it comes
//     back, without a reload, the offline banner shown in between; then
//     serve restarts on the same port and data dir and the page catches
//     up with the rebuilt worklist and a change made after the restart.
//
// They skip under -short and when chromium is missing (fail under CI=true);
// on failure they log the server's log tail and save each tab's screenshot
// and page HTML under RADTRIAGE_TEST_ARTIFACTS (default: a new folder in
// the system temp dir, its path logged).

// browserBound bounds what the page takes to show a change (event, render).
const browserBound = 15 * time.Second

// js helpers evaluated in the page.
const (
	// jsVisible(sel): the element exists, is not hidden and takes space
	// (a <dialog> only when open).
	jsVisible = `((sel) => { const el = document.querySelector(sel); if (!el || el.hidden) return false;
		if (el.tagName === "DIALOG" && !el.open) return false;
		const cs = getComputedStyle(el); return cs.display !== "none" && cs.visibility !== "hidden" && el.getClientRects().length > 0; })`
	// jsRows: the worklist rows in DOM order with their data attributes.
	jsRows = `[...document.querySelectorAll("table#worklist tbody tr[data-study]")].map(tr => ({
		study: tr.dataset.study, tier: tr.dataset.tier || "", status: tr.dataset.status || "",
		claimed_by: tr.dataset.claimedBy || "", ai: tr.dataset.ai || "", selected: tr.classList.contains("selected"),
		text: tr.textContent.replace(/\s+/g, " ").trim() }))`
	// jsRecordMoved starts recording the rows that get the class "moved"
	// (window.__moved) and the rows removed (window.__removed).
	jsRecordMoved = `(() => {
		window.__moved = new Set(); window.__removed = new Set();
		const note = n => { if (n.nodeType === 1 && n.matches("tr[data-study]") && n.classList.contains("moved")) window.__moved.add(n.dataset.study); };
		new MutationObserver(ms => { for (const m of ms) {
			if (m.type === "attributes") note(m.target);
			for (const n of m.addedNodes || []) note(n);
			for (const n of m.removedNodes || []) if (n.nodeType === 1 && n.dataset && n.dataset.study) window.__removed.add(n.dataset.study);
		} }).observe(document.querySelector("table#worklist tbody"), {subtree: true, childList: true, attributes: true, attributeFilter: ["class"]});
		return true; })()`
	// jsStubNotification replaces the Notification API with a recorder
	// that has permission (headless chromium shows none).
	jsStubNotification = `(() => {
		window.__notifications = [];
		class RecordedNotification {
			constructor(title, options) { window.__notifications.push({title: String(title), body: String((options && options.body) || "")}); }
			close() {}
			addEventListener() {}
			static get permission() { return "granted"; }
			static requestPermission(cb) { if (cb) cb("granted"); return Promise.resolve("granted"); }
		}
		window.Notification = RecordedNotification;
	})()`
)

// pageRow is one row of the worklist table as jsRows reads it.
type pageRow struct {
	Study     string `json:"study"`
	Tier      string `json:"tier"`
	Status    string `json:"status"`
	ClaimedBy string `json:"claimed_by"`
	AI        string `json:"ai"`
	Selected  bool   `json:"selected"`
	Text      string `json:"text"`
}

// row returns study's row, the zero pageRow when it has none.
func row(rows []pageRow, study string) pageRow {
	if i := slices.IndexFunc(rows, func(r pageRow) bool { return r.Study == study }); i >= 0 {
		return rows[i]
	}
	return pageRow{}
}

func describeRows(rows []pageRow) string {
	if len(rows) == 0 {
		return "no rows"
	}
	var parts []string
	for i, r := range rows {
		s := fmt.Sprintf("#%d %s %s %s", i, r.Study, r.Tier, r.Status)
		if r.ClaimedBy != "" {
			s += " by " + r.ClaimedBy
		}
		if r.Selected {
			s += " (selected)"
		}
		parts = append(parts, s+" ai "+r.AI)
	}
	return strings.Join(parts, "; ")
}

// browserPage is a tab showing the worklist page as one user.
type browserPage struct {
	t    *testing.T
	name string
	tab  *Tab
	base string
}

// startBrowser starts chromium for t, or skips t (under -short, or when
// chromium is missing and CI is not true). It is closed when t ends.
func startBrowser(t *testing.T) *Browser {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser and the server")
	}
	exe, err := ChromiumPath()
	if err != nil {
		skipOrFail(t, "%v", err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := StartBrowser(ctx, BrowserOptions{ExecPath: exe, Log: logf})
	if err != nil {
		logf.Close()
		t.Fatalf("%v; chromium log:\n%s", err, tailFile(logf.Name(), 30))
	}
	t.Cleanup(func() {
		b.Close()
		logf.Close()
		if t.Failed() {
			t.Logf("chromium log tail:\n%s", tailFile(logf.Name(), 20))
		}
	})
	return b
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// openPage opens base (the page's origin) in a new browser context of b
// as user (typed into #user-name; "" types none), with Notification
// stubbed, and waits for the first full render. On failure of t its
// screenshot and HTML are saved.
func openPage(t *testing.T, b *Browser, name, base, user string) *browserPage {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	tab, err := b.NewTab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := &browserPage{t: t, name: name, tab: tab, base: base}
	t.Cleanup(func() {
		if t.Failed() {
			p.dump("failed")
		}
	})
	if err := tab.OnNewDocument(ctx, jsStubNotification); err != nil {
		t.Fatal(err)
	}
	p.load()
	if user != "" {
		p.setUser(user)
	}
	return p
}

// load navigates to the page and waits for performance mark
// worklist-rendered.
func (p *browserPage) load() {
	p.t.Helper()
	ctx := ctxT(p.t, time.Minute)
	if err := p.tab.Navigate(ctx, p.base+"/"); err != nil {
		p.t.Fatalf("%s: navigate %s/: %v", p.name, p.base, err)
	}
	p.wait(browserBound, `performance.getEntriesByName("worklist-rendered", "mark").length > 0`, `document.body.innerText.slice(0, 300)`)
}

// setUser types user into #user-name and leaves the field (Tab), then
// drops the focus so that shortcuts reach the page.
func (p *browserPage) setUser(user string) {
	p.t.Helper()
	ctx := ctxT(p.t, 30*time.Second)
	if err := p.tab.Fill(ctx, "#user-name", user); err != nil {
		p.t.Fatalf("%s: type the user name: %v", p.name, err)
	}
	if err := p.tab.Key(ctx, "\t"); err != nil {
		p.t.Fatal(err)
	}
	p.blur()
}

// blur drops the keyboard focus to the document body, as a click on an
// empty part of the page would.
func (p *browserPage) blur() {
	p.t.Helper()
	p.eval(`document.activeElement && document.activeElement.blur(), true`, nil)
}

func (p *browserPage) eval(js string, out any) {
	p.t.Helper()
	if err := p.tab.Eval(ctxT(p.t, 30*time.Second), js, out); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// wait waits up to d for the JavaScript condition js; describe is
// evaluated for the failure message.
func (p *browserPage) wait(d time.Duration, js, describe string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.tab.WaitJS(ctx, js, describe); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// waitRows waits up to d until cond holds of the rows.
func (p *browserPage) waitRows(d time.Duration, what string, cond func([]pageRow) bool) []pageRow {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		rows := p.rows()
		if cond(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s: not within %v; rows: %s", p.name, what, d, describeRows(rows))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *browserPage) rows() []pageRow {
	p.t.Helper()
	var rows []pageRow
	p.eval(jsRows, &rows)
	return rows
}

func (p *browserPage) visible(sel string) bool {
	p.t.Helper()
	var ok bool
	b, _ := json.Marshal(sel)
	p.eval(jsVisible+"("+string(b)+")", &ok)
	return ok
}

func (p *browserPage) waitVisible(sel string, want bool) {
	p.t.Helper()
	b, _ := json.Marshal(sel)
	cond := jsVisible + "(" + string(b) + ")"
	if !want {
		cond = "!" + cond
	}
	p.wait(browserBound, cond, `document.querySelector(`+string(b)+`) ? document.querySelector(`+string(b)+`).outerHTML.slice(0, 300) : "absent"`)
}

func (p *browserPage) key(keys string) {
	p.t.Helper()
	if err := p.tab.Key(ctxT(p.t, 30*time.Second), keys); err != nil {
		p.t.Fatalf("%s: key %q: %v", p.name, keys, err)
	}
}

func (p *browserPage) click(sel string) {
	p.t.Helper()
	if err := p.tab.Click(ctxT(p.t, 30*time.Second), sel); err != nil {
		p.t.Fatalf("%s: click %s: %v", p.name, sel, err)
	}
}

func (p *browserPage) text(sel string) string {
	p.t.Helper()
	var s string
	b, _ := json.Marshal(sel)
	p.eval(`(document.querySelector(`+string(b)+`) || {textContent: ""}).textContent.replace(/\s+/g, " ").trim()`, &s)
	return s
}

// count reads the first integer in the text of sel (a tier count).
func (p *browserPage) count(sel string) int {
	p.t.Helper()
	m := regexp.MustCompile(`\d+`).FindString(p.text(sel))
	n, err := strconv.Atoi(m)
	if err != nil {
		p.t.Fatalf("%s: %s reads %q, no count", p.name, sel, p.text(sel))
	}
	return n
}

// selectRow moves the selection with j (from the top) until study's row
// is selected.
func (p *browserPage) selectRow(study string) {
	p.t.Helper()
	p.blur()
	rows := p.rows()
	for range len(rows) + 1 {
		for _, r := range rows {
			if r.Selected && r.Study == study {
				return
			}
		}
		p.key("j")
		rows = p.rows()
	}
	p.t.Fatalf("%s: j never selected %s; rows: %s", p.name, study, describeRows(rows))
}

// openPanel selects study and opens its panel with Enter.
func (p *browserPage) openPanel(study string) {
	p.t.Helper()
	p.selectRow(study)
	p.key(kb.Enter)
	p.waitVisible("#study-panel", true)
}

// sameDocument marks the document, so that a reload (a new document)
// shows as the mark missing.
func (p *browserPage) markDocument() {
	p.t.Helper()
	p.eval(`window.__sameDocument = true`, nil)
}

func (p *browserPage) checkSameDocument() {
	p.t.Helper()
	var same bool
	p.eval(`window.__sameDocument === true`, &same)
	if !same {
		p.t.Errorf("%s: the page was reloaded (a new document) instead of updating live", p.name)
	}
}

// checkClean fails t on uncaught exceptions and Content-Security-Policy
// violations, and on requests that left the page's origin (the page must
// work with no internet).
func (p *browserPage) checkClean() {
	p.t.Helper()
	for _, e := range p.tab.Exceptions() {
		p.t.Errorf("%s: uncaught exception: %s", p.name, e)
	}
	for _, e := range p.tab.Errors() {
		if strings.Contains(e, "Content Security Policy") {
			p.t.Errorf("%s: %s", p.name, e)
		}
	}
	for _, u := range p.tab.Requests() {
		if !strings.HasPrefix(u, p.base+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") && !strings.HasPrefix(u, "about:") {
			p.t.Errorf("%s: the page requested %s, outside its origin %s", p.name, u, p.base)
		}
	}
}

// dump saves the tab's screenshot, HTML, errors and dialogs under the
// artifacts folder.
func (p *browserPage) dump(why string) {
	dir := os.Getenv("RADTRIAGE_TEST_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "radtriage-browser-"); err != nil {
			p.t.Logf("artifacts: %v", err)
			return
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Logf("artifacts: %v", err)
		return
	}
	stem := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(p.t.Name()+"-"+p.name+"-"+why))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if png, err := p.tab.Screenshot(ctx); err == nil {
		_ = os.WriteFile(stem+".png", png, 0o644)
	} else {
		p.t.Logf("%s: screenshot: %v", p.name, err)
	}
	var html string
	if err := p.tab.Eval(ctx, `document.documentElement.outerHTML`, &html); err == nil {
		_ = os.WriteFile(stem+".html", []byte(html), 0o644)
	}
	notes := fmt.Sprintf("exceptions:\n%s\n\nerrors:\n%s\n\ndialogs:\n%s\n", strings.Join(p.tab.Exceptions(), "\n"),
		strings.Join(p.tab.Errors(), "\n"), strings.Join(p.tab.Dialogs(), "\n"))
	_ = os.WriteFile(stem+".txt", []byte(notes), 0o644)
	p.t.Logf("%s: page saved as %s.{png,html,txt}\n%s", p.name, stem, notes)
}

// itemState is the part of GET /api/v1/worklist/{study} these tests read.
type itemState struct {
	StudyUID  string `json:"study_uid"`
	Status    string `json:"status"`
	ClaimedBy string `json:"claimed_by"`
	Tier      string `json:"tier"`
}

func getItem(t *testing.T, a *API, study string) (itemState, int) {
	t.Helper()
	var it itemState
	err := a.GetJSON(ctxT(t, 30*time.Second), "/api/v1/worklist/"+url.PathEscape(study), &it)
	var he *HTTPError
	if errors.As(err, &he) {
		return it, he.Status
	}
	if err != nil {
		t.Fatal(err)
	}
	return it, http.StatusOK
}

// seriousAxe returns the serious and critical violations, and logs the
// others.
func seriousAxe(t *testing.T, where string, vs []AxeViolation) []AxeViolation {
	var bad []AxeViolation
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, v)
		} else {
			t.Logf("axe-core (%s), %s (not failing)", where, v)
		}
	}
	return bad
}

// TestBrowserHarness checks the harness on a small page of its own:
// axe-core finds the violations planted in it (so that "no violation" on
// the worklist page means something), typing, key events, dialogs,
// exceptions and requests are seen, and WaitJS reports what it saw last.
func TestBrowserHarness(t *testing.T) {
	b := startBrowser(t)
	axeSrc, err := AxeSource()
	if err != nil {
		skipOrFail(t, "%v", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html lang="en"><head><title>harness</title></head><body><main>
<h1>Harness</h1>
<input id="unlabelled" type="text">
<img src="/pixel.png">
<p id="keys"></p>
<script>
document.addEventListener("keydown", e => { document.querySelector("#keys").textContent += e.key + " "; });
window.answer = null;
setTimeout(() => { window.answer = confirm("sure?"); }, 10);
setTimeout(() => { throw new Error("planted"); }, 20);
</script></main></body></html>`)
	}))
	t.Cleanup(srv.Close)

	ctx := ctxT(t, time.Minute)
	tab, err := b.NewTab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Navigate(ctx, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tab.WaitJS(wctx, `window.answer === true`, `window.answer`); err != nil {
		t.Fatalf("the confirm dialog was not accepted: %v", err)
	}
	if d := tab.Dialogs(); len(d) != 1 || d[0] != "confirm: sure?" {
		t.Errorf("dialogs %q, want [confirm: sure?]", d)
	}
	if err := tab.WaitJS(wctx, `true`, ""); err != nil {
		t.Fatal(err)
	}
	for !slices.ContainsFunc(tab.Exceptions(), func(e string) bool { return strings.Contains(e, "planted") }) {
		if wctx.Err() != nil {
			t.Fatalf("the planted exception was not recorded: %q", tab.Exceptions())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.Contains(tab.Requests(), srv.URL+"/pixel.png") {
		t.Errorf("requests %q lack /pixel.png", tab.Requests())
	}

	if err := tab.Fill(ctx, "#unlabelled", "old"); err != nil {
		t.Fatal(err)
	}
	if err := tab.Fill(ctx, "#unlabelled", "new"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := tab.Eval(ctx, `document.querySelector("#unlabelled").value`, &v); err != nil || v != "new" {
		t.Errorf("after Fill the input holds %q (%v), want new", v, err)
	}
	if err := tab.Eval(ctx, `document.activeElement.blur(), document.querySelector("#keys").textContent = ""`, nil); err != nil {
		t.Fatal(err)
	}
	if err := tab.Key(ctx, "j?"+kb.Escape+kb.Enter+kb.ArrowDown); err != nil {
		t.Fatal(err)
	}
	if err := tab.Eval(ctx, `document.querySelector("#keys").textContent`, &v); err != nil || v != "j ? Escape Enter ArrowDown " {
		t.Errorf("keys seen by the page: %q (%v), want \"j ? Escape Enter ArrowDown \"", v, err)
	}

	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	err = tab.WaitJS(short, `document.querySelector("#never")`, `document.title`)
	if err == nil || !strings.Contains(err.Error(), `last seen: "harness"`) {
		t.Errorf("WaitJS on a condition that never holds: %v, want a timeout naming the title", err)
	}

	vs, err := tab.RunAxe(ctx, axeSrc)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, v := range vs {
		ids[v.ID] = v.Impact
	}
	if ids["label"] != "critical" || ids["image-alt"] != "critical" {
		t.Errorf("axe-core found %v, want label and image-alt (critical) among them", ids)
	}
	if png, err := tab.ScreenshotViewport(ctx); err != nil || len(png) < 100 || string(png[1:4]) != "PNG" {
		t.Errorf("screenshot: %d bytes, %v", len(png), err)
	}
}

func TestBrowserWorklist(t *testing.T) {
	b := startBrowser(t)
	axeSrc, err := AxeSource()
	if err != nil {
		skipOrFail(t, "%v", err)
	}
	p := newPipeline(t, "", "", "")
	p.startServe(t, "--workers", "1")
	normals := p.phantoms(t, "normal", PhantomOptions{Count: 2, Seed: 8101, Lesion: "none"})
	bleed := p.phantoms(t, "bleed", PhantomOptions{Count: 1, Seed: 8201, Lesion: "ich"})[0]
	for _, s := range normals {
		p.push(t, s.SeriesDir)
	}
	for _, s := range normals {
		p.waitTriaged(t, triageBound, s.StudyUID)
	}
	base := p.serve.BaseURL

	alice := openPage(t, b, "alice", base, "alice")
	bob := openPage(t, b, "bob", base, "bob")

	// Each step builds on the ones before; the test stops at the first
	// that fails.

	if !t.Run("loads", func(t *testing.T) {
		items, err := p.api.Worklist(ctxT(t, 30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, pg := range []*browserPage{alice, bob} {
			rows := pg.rows()
			if len(rows) != len(items) {
				t.Fatalf("%s: %d rows, the API lists %d: %s; API: %s", pg.name, len(rows), len(items), describeRows(rows), describeItems(items))
			}
			for i, r := range rows {
				it := items[i]
				if r.Study != it.StudyUID || r.Tier != it.Tier || r.Status != it.Status || r.AI != it.AI {
					t.Errorf("%s: row %d is %s %s %s ai %s, the API's item %d is %s %s %s ai %s",
						pg.name, i, r.Study, r.Tier, r.Status, r.AI, i, it.StudyUID, it.Tier, it.Status, it.AI)
				}
			}
			if n := pg.count("#count-routine"); n != 2 {
				t.Errorf("%s: #count-routine %d, want 2", pg.name, n)
			}
			if n := pg.count("#count-critical"); n != 0 {
				t.Errorf("%s: #count-critical %d, want 0", pg.name, n)
			}
			if pg.visible("#banner-offline") {
				t.Errorf("%s: #banner-offline shown while connected", pg.name)
			}
			pg.checkClean()
		}
		// The user name survives a reload (localStorage).
		alice.load()
		var user string
		alice.eval(`document.querySelector("#user-name").value`, &user)
		if user != "alice" {
			t.Errorf("#user-name after a reload: %q, want alice (kept in localStorage)", user)
		}
		// Served with a policy that keeps everything on this origin.
		resp, err := httpClient(10 * time.Second).Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET /: Content-Security-Policy %q, want default-src 'self'", csp)
		}
	}) {
		return
	}

	if !t.Run("bleed appears on top live", func(t *testing.T) {
		for _, pg := range []*browserPage{alice, bob} {
			pg.markDocument()
			pg.eval(jsRecordMoved, nil)
		}
		start := time.Now()
		p.push(t, bleed.SeriesDir)
		for _, pg := range []*browserPage{alice, bob} {
			rows := pg.waitRows(triageBound, "the bleed on top, critical, AI done", func(rows []pageRow) bool {
				return len(rows) == 3 && rows[0].Study == bleed.StudyUID && rows[0].Tier == "critical" && rows[0].AI == "done"
			})
			t.Logf("%s: bleed on top after %v: %s", pg.name, time.Since(start).Round(100*time.Millisecond), rows[0].Text)
			if !regexp.MustCompile(`\d+(\.\d+)?\s*%`).MatchString(rows[0].Text) || !strings.Contains(rows[0].Text, "mL") {
				t.Errorf("%s: the bleed's row shows no probability %% and volume mL: %q", pg.name, rows[0].Text)
			}
			pg.checkSameDocument()
			var moved bool
			pg.eval(`window.__moved.has(`+strconv.Quote(bleed.StudyUID)+`)`, &moved)
			if !moved {
				t.Errorf("%s: the bleed's row never had the class moved (the highlight)", pg.name)
			}
			if n := pg.count("#count-critical"); n != 1 {
				t.Errorf("%s: #count-critical %d, want 1", pg.name, n)
			}
			var notes []struct{ Title, Body string }
			pg.eval(`window.__notifications`, &notes)
			if len(notes) == 0 {
				t.Errorf("%s: no desktop notification for the critical arrival", pg.name)
			}
			pg.checkClean()
		}
	}) {
		return
	}

	if !t.Run("key image has the outline", func(t *testing.T) {
		ctx := ctxT(t, time.Minute)
		for _, plane := range []string{"axial", "coronal", "sagittal"} {
			img, err := p.api.KeyImage(ctx, bleed.StudyUID, url.Values{"plane": {plane}, "window": {"brain"}, "slice": {"-1"}, "outline": {"1"}})
			if err != nil {
				t.Fatal(err)
			}
			n, box := RedPixels(img)
			t.Logf("%s key image %v: %d outline pixels in %v", plane, img.Bounds().Size(), n, box)
			if n < 10 {
				t.Errorf("%s key image of the bleed: %d red outline pixels, want at least 10", plane, n)
			}
			if plane == "axial" && (img.Bounds().Dx() != 256 || img.Bounds().Dy() != 256) {
				t.Errorf("axial key image %v, want 256x256 (the phantom's slice)", img.Bounds().Size())
			}
			img, err = p.api.KeyImage(ctx, bleed.StudyUID, url.Values{"plane": {plane}, "window": {"brain"}, "slice": {"-1"}, "outline": {"0"}})
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := RedPixels(img); n != 0 {
				t.Errorf("%s key image without outline: %d red pixels, want 0", plane, n)
			}
		}
		img, err := p.api.KeyImage(ctx, normals[0].StudyUID, url.Values{"outline": {"1"}})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := RedPixels(img)
		t.Logf("normal study's key image: %d red pixels", n)
		for _, c := range []struct {
			study string
			q     url.Values
			want  int
		}{
			{bleed.StudyUID, url.Values{"plane": {"oblique"}}, http.StatusBadRequest},
			{bleed.StudyUID, url.Values{"window": {"lung-ish"}}, http.StatusBadRequest},
			{"1.2.3.4.5.6.7.8.9", nil, http.StatusNotFound},
		} {
			_, err := p.api.KeyImage(ctx, c.study, c.q)
			var he *HTTPError
			if !errors.As(err, &he) || he.Status != c.want {
				t.Errorf("key image of %s ?%s: %v, want HTTP %d", c.study, c.q.Encode(), err, c.want)
			}
		}

		// In the page: the panel shows the three planes and the findings.
		alice.openPanel(bleed.StudyUID)
		alice.wait(browserBound, `(() => { const im = [...document.querySelectorAll("#study-panel img.key-image")];
			return ["axial", "coronal", "sagittal"].every(pl => im.some(i => i.dataset.plane === pl && i.complete && i.naturalWidth > 0 && i.src.includes("/key-image.png"))); })()`,
			`[...document.querySelectorAll("#study-panel img.key-image")].map(i => [i.dataset.plane, i.src, i.complete, i.naturalWidth])`)
		alice.wait(browserBound, `[...document.querySelectorAll("#study-panel .finding")].some(f =>
			f.querySelector(".explanation") && f.querySelector(".explanation").textContent.trim() &&
			f.querySelector(".model-versions") && f.querySelector(".model-versions").textContent.trim())`,
			`document.querySelector("#study-panel").innerText.slice(0, 500)`)
		note := alice.text("#ai-note")
		if !regexp.MustCompile(`(?i)demonstration`).MatchString(note) || !regexp.MustCompile(`(?i)remove`).MatchString(note) {
			t.Errorf("#ai-note %q: want the demonstration-model note and that AI never removes studies", note)
		}
		// Another window preset re-renders the key images.
		alice.eval(`(() => { const s = document.querySelector("#window-preset"); s.value = "bone"; s.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`, nil)
		alice.wait(browserBound, `[...document.querySelectorAll("#study-panel img.key-image")].every(i => i.src.includes("window=bone") && i.complete && i.naturalWidth > 0)`,
			`[...document.querySelectorAll("#study-panel img.key-image")].map(i => i.src)`)
		var cfg struct {
			ViewerURL string `json:"viewer_url"`
		}
		if err := p.api.GetJSON(ctx, "/api/v1/ui/config", &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.ViewerURL == "" && alice.visible("a#viewer-link") {
			t.Errorf("a#viewer-link shown with no viewer URL configured")
		}
		alice.checkClean()
	}) {
		return
	}

	if !t.Run("axe-core", func(t *testing.T) {
		ctx := ctxT(t, 2*time.Minute)
		for _, c := range []struct {
			where string
			pg    *browserPage
		}{{"the list", bob}, {"the study panel open", alice}} {
			vs, err := c.pg.tab.RunAxe(ctx, axeSrc)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range seriousAxe(t, c.where, vs) {
				t.Errorf("axe-core on %s: %s", c.where, v)
			}
		}
	}) {
		return
	}

	if !t.Run("claim shows held in another context", func(t *testing.T) {
		alice.click(`#study-panel button[data-action="claim"]`)
		for _, pg := range []*browserPage{alice, bob} {
			pg.waitRows(browserBound, "the bleed claimed by alice", func(rows []pageRow) bool {
				return len(rows) > 0 && rows[0].Study == bleed.StudyUID && rows[0].Status == "claimed" && rows[0].ClaimedBy == "alice"
			})
		}
		if it, _ := getItem(t, p.api, bleed.StudyUID); it.Status != "claimed" || it.ClaimedBy != "alice" {
			t.Errorf("API: the bleed is %s by %q, want claimed by alice", it.Status, it.ClaimedBy)
		}
		if !strings.Contains(bob.rows()[0].Text, "alice") {
			t.Errorf("bob's row of the bleed does not name the holder: %q", bob.rows()[0].Text)
		}
		// Bob cannot take it: the claim stays alice's.
		bob.openPanel(bleed.StudyUID)
		bob.click(`#study-panel button[data-action="claim"]`)
		time.Sleep(time.Second)
		if it, _ := getItem(t, p.api, bleed.StudyUID); it.ClaimedBy != "alice" {
			t.Errorf("after bob's claim the bleed is held by %q, want alice", it.ClaimedBy)
		}
		bob.key(kb.Escape)
		bob.waitVisible("#study-panel", false)
	}) {
		return
	}

	if !t.Run("complete removes it", func(t *testing.T) {
		alice.click(`#study-panel button[data-action="complete"]`)
		for _, pg := range []*browserPage{alice, bob} {
			pg.waitRows(browserBound, "the bleed gone", func(rows []pageRow) bool {
				return len(rows) == 2 && rows[0].Study != bleed.StudyUID && rows[1].Study != bleed.StudyUID
			})
			pg.checkSameDocument()
			if n := pg.count("#count-critical"); n != 0 {
				t.Errorf("%s: #count-critical %d after completion, want 0", pg.name, n)
			}
		}
		if it, status := getItem(t, p.api, bleed.StudyUID); status == http.StatusOK && it.Status != "done" {
			t.Errorf("API: the bleed is %s after completion, want done", it.Status)
		}
		alice.key(kb.Escape)
		alice.waitVisible("#study-panel", false)
	}) {
		return
	}

	t.Run("keyboard only", func(t *testing.T) {
		carol := openPage(t, b, "carol", base, "carol")
		carol.markDocument()
		rows := carol.rows()
		if len(rows) != 2 {
			t.Fatalf("carol sees %s, want the two normal studies", describeRows(rows))
		}
		first, second := rows[0].Study, rows[1].Study
		selected := func(study string) {
			t.Helper()
			carol.waitRows(browserBound, study+" selected", func(rows []pageRow) bool {
				n := 0
				for _, r := range rows {
					if r.Selected {
						n++
					}
				}
				return n == 1 && slices.IndexFunc(rows, func(r pageRow) bool { return r.Selected && r.Study == study }) >= 0
			})
		}

		// ? shows the help, listing every shortcut; Escape closes it.
		carol.key("?")
		carol.waitVisible("#help-overlay", true)
		help := carol.text("#help-overlay")
		for _, k := range []string{"j", "k", "Enter", "c", "r", "d", "p", "Esc", "?"} {
			if !strings.Contains(help, k) {
				t.Errorf("#help-overlay does not list %q: %q", k, help)
			}
		}
		carol.key(kb.Escape)
		carol.waitVisible("#help-overlay", false)
		carol.blur()

		// j, j, k move; the arrows too.
		carol.key("j")
		carol.key("j")
		selected(second)
		carol.key("k")
		selected(first)
		carol.key(kb.ArrowDown)
		selected(second)
		carol.key(kb.ArrowUp)
		selected(first)

		// Enter opens the panel; Escape closes it.
		carol.key(kb.Enter)
		carol.waitVisible("#study-panel", true)
		carol.key(kb.Escape)
		carol.waitVisible("#study-panel", false)
		carol.blur()
		selected(first)

		// c claims, r releases.
		carol.key("c")
		carol.waitRows(browserBound, "claimed by carol", func(rows []pageRow) bool {
			return row(rows, first).Status == "claimed" && row(rows, first).ClaimedBy == "carol"
		})
		carol.key("r")
		carol.waitRows(browserBound, "released", func(rows []pageRow) bool {
			return row(rows, first).Status == "open"
		})

		// p opens the override dialog; Escape closes it.
		carol.key("p")
		carol.waitVisible("#override-dialog", true)
		carol.key(kb.Escape)
		carol.waitVisible("#override-dialog", false)
		carol.blur()
		selected(first)

		// The claim button reached with Tab alone, with a visible focus,
		// and pressed with Space.
		carol.key(kb.Enter)
		carol.waitVisible("#study-panel", true)
		const claimBtn = `#study-panel button[data-action="claim"]`
		found := false
		for range 60 {
			carol.key(kb.Tab)
			var on bool
			carol.eval(`document.activeElement && document.activeElement.matches(`+strconv.Quote(claimBtn)+`)`, &on)
			if on {
				found = true
				break
			}
		}
		if !found {
			var at string
			carol.eval(`document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : ""`, &at)
			t.Fatalf("60 Tabs never reached the panel's claim button (focus on %s)", at)
		}
		var focus struct {
			Outline string `json:"outline"`
			Shadow  string `json:"shadow"`
		}
		carol.eval(`(() => { const cs = getComputedStyle(document.activeElement); return {outline: cs.outlineStyle + " " + cs.outlineWidth, shadow: cs.boxShadow}; })()`, &focus)
		if (strings.HasPrefix(focus.Outline, "none") || strings.HasSuffix(focus.Outline, " 0px")) && focus.Shadow == "none" {
			t.Errorf("the focused claim button has no visible focus (outline %q, box-shadow %q)", focus.Outline, focus.Shadow)
		}
		carol.key(" ")
		carol.waitRows(browserBound, "claimed by carol with Tab and Space", func(rows []pageRow) bool {
			return row(rows, first).Status == "claimed" && row(rows, first).ClaimedBy == "carol"
		})
		carol.key(kb.Escape)
		carol.waitVisible("#study-panel", false)
		carol.blur()
		selected(first)

		// d completes: the row leaves the list.
		carol.key("d")
		carol.waitRows(browserBound, "completed and gone", func(rows []pageRow) bool {
			return len(rows) == 1 && rows[0].Study == second
		})
		if it, status := getItem(t, p.api, first); status == http.StatusOK && it.Status != "done" {
			t.Errorf("API: %s is %s after d, want done", first, it.Status)
		}
		carol.checkSameDocument()
		carol.checkClean()
	})
}

func TestBrowserReconnect(t *testing.T) {
	b := startBrowser(t)
	p := newPipeline(t, "", "", "")
	p.startServe(t, "--workers", "0")
	studies := p.phantoms(t, "small", PhantomOptions{Count: 2, Seed: 8301, Lesion: "none", Size: "8x64x64"})
	for _, s := range studies {
		p.push(t, s.SeriesDir)
	}
	s1, s2 := studies[0].StudyUID, studies[1].StudyUID
	waitFor(t, 30*time.Second, "both studies listed", func(ctx context.Context) (bool, string) {
		items, err := p.api.Worklist(ctx)
		if err != nil {
			return false, err.Error()
		}
		return len(items) == 2, describeItems(items)
	})

	proxy, err := StartTCPProxy(fmt.Sprintf("127.0.0.1:%d", p.serve.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	pg := openPage(t, b, "dave", "http://"+proxy.Addr, "dave")
	pg.markDocument()
	change := func(study, action, user string) {
		t.Helper()
		if err := p.api.WorklistChange(ctxT(t, 30*time.Second), study, action, user); err != nil {
			t.Fatal(err)
		}
	}

	// Live first: a change shows.
	change(s1, "claim", "dave")
	pg.waitRows(browserBound, "s1 claimed by dave (live)", func(rows []pageRow) bool {
		return row(rows, s1).ClaimedBy == "dave"
	})

	if !t.Run("stream cut and restored", func(t *testing.T) {
		proxy.Cut()
		pg.waitVisible("#banner-offline", true)
		change(s1, "release", "dave")
		change(s2, "claim", "erin")
		time.Sleep(time.Second)
		if r := row(pg.rows(), s2); r.ClaimedBy == "erin" {
			t.Fatalf("the page saw erin's claim while the proxy was cut: the stream did not drop")
		}
		proxy.Restore()
		pg.waitRows(browserBound, "caught up: s1 open, s2 claimed by erin", func(rows []pageRow) bool {
			return row(rows, s1).Status == "open" && row(rows, s2).Status == "claimed" && row(rows, s2).ClaimedBy == "erin"
		})
		pg.waitVisible("#banner-offline", false)
		pg.checkSameDocument()
	}) {
		return
	}

	t.Run("serve restarted", func(t *testing.T) {
		port := p.serve.Port
		if err := p.serve.Stop(30 * time.Second); err != nil {
			t.Logf("stop serve: %v", err)
		}
		pg.waitVisible("#banner-offline", true)
		ctx := ctxT(t, 90*time.Second)
		proc, err := StartServer(ctx, ServerOptions{
			Bin: p.bin, DataDir: p.dataDir, StableAge: time.Second, Port: port,
			ExtraArgs: append(p.args(), "--workers", "0"),
			LogPath:   filepath.Join(p.root, "serve2.log"),
		})
		if err != nil {
			t.Fatalf("restart serve on port %d: %v", port, err)
		}
		stopOnCleanup(t, proc)
		p.serve = proc
		// The embedded store was rebuilt from the index: claims are
		// gone. A change after the restart shows too.
		change(s1, "claim", "frank")
		pg.waitRows(browserBound, "caught up after the restart: s1 claimed by frank, s2 open", func(rows []pageRow) bool {
			return len(rows) == 2 && row(rows, s1).ClaimedBy == "frank" && row(rows, s2).Status == "open"
		})
		pg.waitVisible("#banner-offline", false)
		pg.checkSameDocument()
		pg.checkClean()
	})
}
