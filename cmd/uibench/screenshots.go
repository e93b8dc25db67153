package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/radtriage/radtriage/api/e2e"
)

// screenshots pushes five phantom studies (two ICH, one SDH, two normal)
// to serve on the embedded defaults, waits for their triage, and writes
// out/worklist.png and out/study-panel.png (the panel open on the top
// bleed).
func screenshots(ctx context.Context, cfg config, dir, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	s, err := start(ctx, cfg, dir, "", 1440, 900)
	if err != nil {
		return err
	}
	defer s.stop()
	logf("pushing five phantom studies and waiting for their triage")
	for i, o := range []e2e.PhantomOptions{
		{Count: 2, Seed: 501, Lesion: "none"},
		{Count: 2, Seed: 601, Lesion: "ich"},
		{Count: 1, Seed: 701, Lesion: "sdh"},
	} {
		if _, err := pushTriaged(ctx, cfg, s, filepath.Join(dir, fmt.Sprintf("phantoms%d", i)), o); err != nil {
			return err
		}
	}
	tab, err := s.browser.NewTab(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	steps := []struct {
		what string
		do   func() error
	}{
		{"load", func() error { return tab.Navigate(wctx, s.serve.BaseURL+"/") }},
		{"render", func() error {
			return tab.WaitJS(wctx, `performance.getEntriesByName("worklist-rendered", "mark").length > 0 && document.querySelectorAll("table#worklist tbody tr[data-study]").length === 5`, "")
		}},
		{"user name", func() error { return tab.Fill(wctx, "#user-name", "dr.lee") }},
		{"leave the field", func() error { return tab.Eval(wctx, `document.activeElement.blur()`, nil) }},
		{"highlights faded", func() error { return tab.WaitJS(wctx, `!document.querySelector("tr.moved")`, "") }},
		{"worklist.png", func() error { return shoot(wctx, tab, filepath.Join(out, "worklist.png")) }},
		{"select the top row", func() error { return tab.Key(wctx, "j") }},
		{"open the panel", func() error { return tab.Key(wctx, kb.Enter) }},
		{"key images", func() error {
			return tab.WaitJS(wctx, `(() => { const im = [...document.querySelectorAll("#study-panel img.key-image")];
				return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0) && document.querySelector("#study-panel .finding"); })()`, "")
		}},
		{"fit the panel", func() error {
			// A window as tall as the panel's content (up to 2000 px), so
			// that the key images show below the findings.
			var h int
			if err := tab.Eval(wctx, `document.querySelector("#study-panel").scrollHeight`, &h); err != nil {
				return err
			}
			return tab.Run(wctx, chromedp.EmulateViewport(1440, int64(min(max(h+40, 900), 2000))))
		}},
		{"study-panel.png", func() error { return shoot(wctx, tab, filepath.Join(out, "study-panel.png")) }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			return fmt.Errorf("screenshots: %s: %w", st.what, err)
		}
	}
	logf("wrote %s and %s", filepath.Join(out, "worklist.png"), filepath.Join(out, "study-panel.png"))
	return nil
}

// shoot writes what the tab's window shows as a PNG, after the page has
// settled (fonts, the next two frames).
func shoot(ctx context.Context, tab *e2e.Tab, path string) error {
	if err := tab.Eval(ctx, `document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true)))))`, nil); err != nil {
		return err
	}
	b, err := tab.ScreenshotViewport(ctx)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
