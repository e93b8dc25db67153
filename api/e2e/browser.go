package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// The browser harness (issue 8): Debian's headless chromium driven over
// the DevTools protocol with chromedp, for the worklist page's tests, its
// screenshots and its benchmark (cmd/uibench). Never a downloaded browser:
// the binary is /usr/bin/chromium (.ci/browser-deps.sh installs it) or
// RADTRIAGE_TEST_CHROMIUM.

// ChromiumFlags are the flags chromium runs with, besides the remote
// debugging pipe chromedp adds and a throw-away profile folder.
var ChromiumFlags = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-background-networking",
	"--disable-component-update",
	"--no-first-run",
}

// ErrNoChromium is returned by ChromiumPath when no chromium binary is
// installed.
var ErrNoChromium = errors.New("e2e: chromium not installed (Debian package chromium: .ci/browser-deps.sh)")

// ChromiumPath returns RADTRIAGE_TEST_CHROMIUM when set, else
// /usr/bin/chromium; an error wrapping ErrNoChromium when that file is
// not an executable.
func ChromiumPath() (string, error) {
	p := os.Getenv("RADTRIAGE_TEST_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%w: %s", ErrNoChromium, p)
	}
	return p, nil
}

// ErrNoAxe is returned by AxeSource when axe-core is not installed.
var ErrNoAxe = errors.New("e2e: axe-core not installed (npm, into .cache/npm-ui: .ci/browser-deps.sh)")

// AxeSource returns axe.min.js from RADTRIAGE_TEST_AXE when set, else
// from .cache/npm-ui/node_modules/axe-core under the repository root;
// an error wrapping ErrNoAxe when it is not there.
func AxeSource() ([]byte, error) {
	p := os.Getenv("RADTRIAGE_TEST_AXE")
	if p == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		p = filepath.Join(root, ".cache", "npm-ui", "node_modules", "axe-core", "axe.min.js")
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoAxe, p)
	}
	return b, err
}

// BrowserOptions configure StartBrowser.
type BrowserOptions struct {
	ExecPath string    // "" for ChromiumPath()
	Width    int       // window width in CSS pixels; 0 for 1280
	Height   int       // window height; 0 for 900
	Log      io.Writer // chromium's stdout and stderr; nil discards them
}

// Browser is one headless chromium process with a throw-away profile.
type Browser struct {
	ctx           context.Context // the browser's first tab; parent of every Tab
	cancel        context.CancelFunc
	allocCancel   context.CancelFunc
	width, height int

	mu   sync.Mutex
	tabs []*Tab
}

// StartBrowser starts chromium and returns once it answers. ctx bounds
// the start only; the browser runs until Close.
func StartBrowser(ctx context.Context, o BrowserOptions) (*Browser, error) {
	exe := o.ExecPath
	if exe == "" {
		var err error
		if exe, err = ChromiumPath(); err != nil {
			return nil, err
		}
	}
	w, h := o.Width, o.Height
	if w == 0 {
		w = 1280
	}
	if h == 0 {
		h = 900
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(exe), chromedp.WindowSize(w, h)}
	for _, f := range ChromiumFlags {
		opts = append(opts, chromedp.Flag(strings.TrimPrefix(f, "--"), true))
	}
	// Screenshots in sRGB whatever the machine's colour profile; a
	// /dev/shm of containers is often too small for the renderer.
	opts = append(opts, chromedp.Flag("force-color-profile", "srgb"), chromedp.Flag("disable-dev-shm-usage", true))
	if o.Log != nil {
		opts = append(opts, chromedp.CombinedOutput(o.Log))
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(logCDPError))
	b := &Browser{ctx: bctx, cancel: cancel, allocCancel: allocCancel, width: w, height: h}
	if err := firstRun(ctx, bctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	return b, nil
}

// logCDPError logs chromedp's errors, less its complaints about DOM
// events it has no handler for (the top layer of an open <dialog>).
func logCDPError(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "unhandled node event") {
		return
	}
	log.Print("chromedp: " + msg)
}

// firstRun makes the first chromedp.Run on cdp, which starts the browser
// or attaches the tab, bounded by ctx. That Run must get cdp itself, not
// a context derived from it: chromedp keeps using the context of the
// first Run for the browser's or the tab's lifetime.
func firstRun(ctx, cdp context.Context) error {
	done := make(chan error, 1)
	go func() { done <- chromedp.Run(cdp) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Version returns the browser's product string, e.g. "Chrome/142.0.7444.59".
func (b *Browser) Version(ctx context.Context) (string, error) {
	var v string
	err := b.run(ctx, b.ctx, chromedp.Evaluate(`navigator.userAgent.match(/(Headless)?Chrome\/[\d.]+/)[0]`, &v))
	return v, err
}

// NewTab opens a tab in a browser context of its own (cookies, storage
// and cache apart from every other tab's): two tabs are two users.
func (b *Browser) NewTab(ctx context.Context) (*Tab, error) {
	// The tab opens in a new window of its browser context: chromium's
	// headless mode has no window to put it in otherwise ("no browser is
	// open"), which chromedp.WithNewBrowserContext does not ask for.
	var (
		bcID cdp.BrowserContextID
		id   target.ID
	)
	err := b.run(ctx, b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		exec := cdp.WithExecutor(ctx, chromedp.FromContext(ctx).Browser)
		var err error
		if bcID, err = target.CreateBrowserContext().Do(exec); err != nil {
			return err
		}
		id, err = target.CreateTarget("about:blank").WithBrowserContextID(bcID).
			WithNewWindow(true).WithWidth(int64(b.width)).WithHeight(int64(b.height)).Do(exec)
		return err
	}))
	if err != nil {
		return nil, fmt.Errorf("new tab: %w", err)
	}
	tctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
	t := &Tab{ctx: tctx}
	t.cancel = func() {
		cancel() // closes the target
		_ = b.run(context.Background(), b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
			return target.DisposeBrowserContext(bcID).Do(cdp.WithExecutor(ctx, chromedp.FromContext(ctx).Browser))
		}))
	}
	chromedp.ListenTarget(tctx, t.listen)
	if err := firstRun(ctx, tctx); err != nil {
		t.cancel()
		return nil, fmt.Errorf("new tab: %w", err)
	}
	b.mu.Lock()
	b.tabs = append(b.tabs, t)
	b.mu.Unlock()
	return t, nil
}

// Close closes every tab and ends chromium, removing its profile.
func (b *Browser) Close() {
	b.mu.Lock()
	tabs := b.tabs
	b.tabs = nil
	b.mu.Unlock()
	for _, t := range tabs {
		t.Close()
	}
	b.cancel()
	b.allocCancel()
}

// run runs actions on the chromedp context cdp, bounded by ctx too.
func (b *Browser) run(ctx, cdp context.Context, actions ...chromedp.Action) error {
	c, cancel := bound(ctx, cdp)
	defer cancel()
	return chromedp.Run(c, actions...)
}

// bound returns a context derived from the chromedp context cdp that
// also ends when ctx ends: chromedp needs its own context, the caller
// bounds the time.
func bound(ctx, cdp context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancelCause(cdp)
	var stopDeadline context.CancelFunc = func() {}
	if d, ok := ctx.Deadline(); ok {
		var dc context.Context
		dc, stopDeadline = context.WithDeadline(c, d)
		c = dc
	}
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	return c, func() {
		stop()
		stopDeadline()
		cancel(nil)
	}
}

// Tab is one page in a browser context of its own. It records the
// page's uncaught exceptions, console and log errors, the URLs it
// requested and the dialogs it opened (accepted at once, a prompt
// answered with PromptText).
type Tab struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	promptText string
	exceptions []string
	errors     []string
	requests   []string
	dialogs    []string
}

func (t *Tab) listen(ev any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev := ev.(type) {
	case *cdpruntime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg = d.Exception.Description
		}
		t.exceptions = append(t.exceptions, fmt.Sprintf("%s (%s:%d:%d)", msg, d.URL, d.LineNumber, d.ColumnNumber))
	case *cdpruntime.EventConsoleAPICalled:
		if ev.Type != cdpruntime.APITypeError && ev.Type != cdpruntime.APITypeAssert {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			if a.Description != "" {
				parts = append(parts, a.Description)
			} else {
				parts = append(parts, string(a.Value))
			}
		}
		t.errors = append(t.errors, "console."+ev.Type.String()+": "+strings.Join(parts, " "))
	case *cdplog.EventEntryAdded:
		if e := ev.Entry; e.Level == cdplog.LevelError {
			t.errors = append(t.errors, fmt.Sprintf("%s: %s %s", e.Source, e.Text, e.URL))
		}
	case *network.EventRequestWillBeSent:
		t.requests = append(t.requests, ev.Request.URL)
	case *page.EventJavascriptDialogOpening:
		t.dialogs = append(t.dialogs, ev.Type.String()+": "+ev.Message)
		answer := t.promptText
		// A listener must not block: answer from a goroutine.
		go func() {
			_ = chromedp.Run(t.ctx, page.HandleJavaScriptDialog(true).WithPromptText(answer))
		}()
	}
}

// SetPromptText sets the answer given to window.prompt dialogs.
func (t *Tab) SetPromptText(s string) {
	t.mu.Lock()
	t.promptText = s
	t.mu.Unlock()
}

// Exceptions returns the page's uncaught exceptions so far.
func (t *Tab) Exceptions() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.exceptions)
}

// Errors returns console.error calls and error log entries (failed
// loads, Content-Security-Policy violations) so far.
func (t *Tab) Errors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.errors)
}

// Requests returns the URLs the page requested so far.
func (t *Tab) Requests() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.requests)
}

// Dialogs returns the dialogs the page opened ("confirm: message").
func (t *Tab) Dialogs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.dialogs)
}

// Close closes the tab and its browser context.
func (t *Tab) Close() { t.cancel() }

// Run runs chromedp actions in the tab, bounded by ctx.
func (t *Tab) Run(ctx context.Context, actions ...chromedp.Action) error {
	c, cancel := bound(ctx, t.ctx)
	defer cancel()
	return chromedp.Run(c, actions...)
}

// OnNewDocument makes the page run script before its own scripts in
// every document it loads from now on (stubs, performance hooks).
func (t *Tab) OnNewDocument(ctx context.Context, script string) error {
	return t.Run(ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		_, err := page.AddScriptToEvaluateOnNewDocument(script).Do(ctx)
		return err
	}))
}

// Navigate loads url and waits for its load event.
func (t *Tab) Navigate(ctx context.Context, url string) error {
	return t.Run(ctx, chromedp.Navigate(url))
}

// Eval evaluates the JavaScript expression js in the page, awaiting it
// when it is a promise, and decodes its JSON value into out (nil: the
// value is dropped). A thrown exception is an error.
func (t *Tab) Eval(ctx context.Context, js string, out any) error {
	var raw json.RawMessage
	err := t.Run(ctx, chromedp.Evaluate(js, &raw, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	if err != nil {
		return fmt.Errorf("evaluate %.200s: %w", js, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("evaluate %.200s: decoding %.200s: %w", js, raw, err)
	}
	return nil
}

// WaitJS polls the JavaScript expression js every 50 ms until it is
// truthy (an exception counts as false), and returns an error naming what
// describe (a JavaScript expression, may be "") said last when ctx ends
// first.
func (t *Tab) WaitJS(ctx context.Context, js, describe string) error {
	probe := fmt.Sprintf(`(() => { try { return !!(%s); } catch (e) { return false; } })()`, js)
	for {
		var ok bool
		err := t.Eval(ctx, probe, &ok)
		if err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			last := ""
			if describe != "" {
				c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var v any
				if derr := t.Eval(c, fmt.Sprintf(`(() => { try { return %s; } catch (e) { return String(e); } })()`, describe), &v); derr == nil {
					b, _ := json.Marshal(v)
					last = "; last seen: " + string(b)
				}
				cancel()
			}
			if err != nil {
				last += "; last error: " + err.Error()
			}
			return fmt.Errorf("waiting for %s: %w%s", js, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Key types keys into the focused element as key events; special keys
// are chromedp's kb constants ("\r" is Enter, "\t" Tab).
func (t *Tab) Key(ctx context.Context, keys string) error {
	return t.Run(ctx, chromedp.KeyEvent(keys))
}

// Click clicks the first element matching the CSS selector sel once it
// is visible.
func (t *Tab) Click(ctx context.Context, sel string) error {
	return t.Run(ctx, chromedp.Click(sel, chromedp.ByQuery, chromedp.NodeVisible))
}

// Fill focuses the input matching sel, selects its text and types text
// over it, as a user would.
func (t *Tab) Fill(ctx context.Context, sel, text string) error {
	q, _ := json.Marshal(sel)
	return t.Run(ctx,
		chromedp.Focus(sel, chromedp.ByQuery, chromedp.NodeVisible),
		chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%s).select()`, q), nil),
		chromedp.KeyEvent(text))
}

// Screenshot returns a PNG of the whole page.
func (t *Tab) Screenshot(ctx context.Context) ([]byte, error) {
	var b []byte
	err := t.Run(ctx, chromedp.FullScreenshot(&b, 100))
	return b, err
}

// ScreenshotViewport returns a PNG of what the window shows.
func (t *Tab) ScreenshotViewport(ctx context.Context) ([]byte, error) {
	var b []byte
	err := t.Run(ctx, chromedp.CaptureScreenshot(&b))
	return b, err
}

// AxeViolation is one rule axe-core found broken, with the nodes that
// break it (their CSS selectors and HTML).
type AxeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"` // minor, moderate, serious or critical
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		HTML    string `json:"html"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// String is "id (impact): help: first node".
func (v AxeViolation) String() string {
	s := fmt.Sprintf("%s (%s): %s", v.ID, v.Impact, v.Help)
	for i, n := range v.Nodes {
		if i == 3 {
			s += fmt.Sprintf("\n    ... %d more", len(v.Nodes)-3)
			break
		}
		s += fmt.Sprintf("\n    %v %.160s: %s", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", " "))
	}
	return s
}

// RunAxe injects axe-core (src: AxeSource) into the page, if not there
// yet, and returns the violations of WCAG 2 A/AA and best-practice rules
// on the document as it stands.
func (t *Tab) RunAxe(ctx context.Context, src []byte) ([]AxeViolation, error) {
	var have bool
	if err := t.Eval(ctx, `typeof window.axe === "object"`, &have); err != nil {
		return nil, err
	}
	if !have {
		// Runtime.evaluate is not subject to the page's
		// Content-Security-Policy, so the page's own policy stays on.
		if err := t.Run(ctx, chromedp.Evaluate(string(src)+"\n;void 0", nil)); err != nil {
			return nil, fmt.Errorf("inject axe-core: %w", err)
		}
	}
	var res struct {
		Violations []AxeViolation `json:"violations"`
	}
	err := t.Eval(ctx, `axe.run(document, {
		runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
		resultTypes: ["violations"]
	}).then(r => ({violations: r.violations}))`, &res)
	return res.Violations, err
}

// MarkTime returns the startTime of the first performance mark called
// name (milliseconds from the document's time origin: navigation start),
// and false when there is none yet.
func (t *Tab) MarkTime(ctx context.Context, name string) (float64, bool, error) {
	var v *float64
	b, _ := json.Marshal(name)
	err := t.Eval(ctx, fmt.Sprintf(`(() => { const m = performance.getEntriesByName(%s, "mark"); return m.length ? m[0].startTime : null; })()`, b), &v)
	if err != nil || v == nil {
		return 0, false, err
	}
	return *v, true, nil
}

// WorklistChange sends a worklist change as user: POST
// /api/v1/worklist/{study}/{action} for action claim, release or
// complete. A status other than 200 is an *HTTPError.
func (a *API) WorklistChange(ctx context.Context, study, action, user string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.Base+"/api/v1/worklist/"+url.PathEscape(study)+"/"+action, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Radtriage-User", user)
	resp, err := a.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return &HTTPError{"POST", req.URL.String(), resp.StatusCode, string(b)}
	}
	return nil
}

// KeyImage GETs /api/v1/studies/{study}/key-image.png with query q and
// decodes the PNG; a status other than 200 is an *HTTPError, a body that
// is not a PNG an error.
func (a *API) KeyImage(ctx context.Context, study string, q url.Values) (image.Image, error) {
	path := "/api/v1/studies/" + url.PathEscape(study) + "/key-image.png"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	u := a.Base + path
	b, header, err := a.get(ctx, path, "")
	if err != nil {
		return nil, err
	}
	if ct := header.Get("Content-Type"); ct != "image/png" {
		return nil, fmt.Errorf("GET %s: Content-Type %q, want image/png", u, ct)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return img, nil
}

// RedPixels counts the pixels of img that are the outline's red (label 1,
// ICH: R at least 200, G and B at most 60) and returns their count and
// bounding box; grey pixels (R = G = B) never count.
func RedPixels(img image.Image) (int, image.Rectangle) {
	n := 0
	var box image.Rectangle
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 >= 200 && g>>8 <= 60 && bl>>8 <= 60 {
				p := image.Rect(x, y, x+1, y+1)
				if n == 0 {
					box = p
				} else {
					box = box.Union(p)
				}
				n++
			}
		}
	}
	return n, box
}
