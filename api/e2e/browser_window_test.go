package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"
	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/worklist"
)

// TestBrowserLongList: the windowed list with 1,500 open studies (seeded
// in a real Redis with the worklist package, under the prefix of a
// `radtriage serve --redis-url`): the table says it stands for every
// study (aria-rowcount) while the document holds only the rows around
// the screen; End, Home and j reach studies off screen, rendered, selected
// and focused; a study at the bottom that turns critical shows on top
// live; a completed one leaves the count; the tier filter shows its count;
// and axe-core finds nothing serious.
func TestBrowserLongList(t *testing.T) {
	const n = 1500
	b := startBrowser(t)
	redisURL, prefix := sharedRedis(t)
	p := newPipeline(t, "", redisURL, prefix)
	p.startServe(t, "--workers", "0")

	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	t.Cleanup(func() { rc.Close() })
	wl, err := worklist.New(rc, worklist.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 2*time.Minute)
	// Routine studies received a second apart: the list's order is the index's.
	uid := func(i int) string { return fmt.Sprintf("2.25.77%06d", i) }
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	for i := range n {
		s := worklist.Study{StudyUID: uid(i), PatientID: fmt.Sprintf("LL%06d", i), PatientName: fmt.Sprintf("LONG^LIST %d", i),
			AccessionNumber: fmt.Sprintf("LL%07d", i), Modality: "CT", BodyPart: "HEAD", Description: "CT HEAD",
			Received: base.Add(time.Duration(i) * time.Second)}
		if _, err := wl.Upsert(ctx, s, "test"); err != nil {
			t.Fatal(err)
		}
	}

	pg := openPage(t, b, "frank", p.serve.BaseURL, "frank")
	pg.markDocument()
	type windowState struct {
		RowCount int    `json:"rowcount"`
		DOMRows  int    `json:"dom"`
		First    string `json:"first"`
		FirstIdx int    `json:"first_idx"`
		Selected string `json:"selected"`
		SelIdx   int    `json:"sel_idx"`
		Focused  string `json:"focused"`
		ScrollY  int    `json:"scroll_y"`
		Shown    string `json:"shown"`
	}
	state := func() windowState {
		var s windowState
		pg.eval(`(() => { const rows = document.querySelectorAll("table#worklist tbody tr[data-study]");
			const sel = document.querySelector("table#worklist tbody tr.selected");
			const a = document.activeElement;
			return {rowcount: Number(document.querySelector("table#worklist").getAttribute("aria-rowcount")),
				dom: rows.length, first: rows.length ? rows[0].dataset.study : "", first_idx: rows.length ? Number(rows[0].getAttribute("aria-rowindex")) : 0,
				selected: sel ? sel.dataset.study : "", sel_idx: sel ? Number(sel.getAttribute("aria-rowindex")) : 0,
				focused: a && a.dataset ? (a.dataset.study || "") : "", scroll_y: Math.round(window.scrollY),
				shown: document.querySelector("#shown-count").textContent}; })()`, &s)
		return s
	}
	waitState := func(what string, cond func(windowState) bool) windowState {
		t.Helper()
		deadline := time.Now().Add(browserBound)
		for {
			s := state()
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; the page: %+v", what, browserBound, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	s := state()
	t.Logf("loaded: %+v", s)
	if s.RowCount != n+1 || s.First != uid(0) || s.FirstIdx != 2 {
		t.Fatalf("after loading %d studies: %+v; want aria-rowcount %d and the first study first (aria-rowindex 2)", n, s, n+1)
	}
	if s.DOMRows < 5 || s.DOMRows > 150 {
		t.Fatalf("%d rows in the document for %d studies: want the window's (5 to 150)", s.DOMRows, n)
	}
	if s.Shown != strconv.Itoa(n)+" studies" {
		t.Errorf("#shown-count %q, want %q", s.Shown, strconv.Itoa(n)+" studies")
	}

	pg.blur()
	pg.key(kb.End)
	s = waitState("End: the last study selected and focused", func(s windowState) bool {
		return s.Selected == uid(n-1) && s.Focused == uid(n-1) && s.SelIdx == n+1
	})
	if s.ScrollY == 0 || s.DOMRows > 150 {
		t.Errorf("after End: %+v; want the page scrolled and still only a window of rows", s)
	}
	pg.key(kb.Home)
	waitState("Home: the first study selected and focused", func(s windowState) bool {
		return s.Selected == uid(0) && s.Focused == uid(0) && s.ScrollY == 0
	})
	for range 60 {
		pg.key("j")
	}
	s = waitState("60 times j: study 60 selected and focused", func(s windowState) bool {
		return s.Selected == uid(60) && s.Focused == uid(60) && s.SelIdx == 62
	})
	if s.First == uid(0) {
		t.Errorf("after moving 60 rows down the window still starts at the first study: %+v", s)
	}
	pg.key(kb.Home)
	waitState("Home again", func(s windowState) bool { return s.Selected == uid(0) && s.ScrollY == 0 })

	// A study at the bottom, off screen, turns critical: on top, live.
	low := uid(n - 3)
	if _, err := wl.SetFindings(ctx, low, []worklist.Finding{{Code: "ICH", Name: "intracranial haemorrhage", Probability: 0.95,
		Tier: worklist.TierCritical, VolumeML: 9, Model: "test"}}, "test"); err != nil {
		t.Fatal(err)
	}
	pg.waitRows(browserBound, "the study from the bottom on top, critical", func(rows []pageRow) bool {
		return len(rows) > 0 && rows[0].Study == low && rows[0].Tier == "critical"
	})
	if n := pg.count("#count-critical"); n != 1 {
		t.Errorf("#count-critical %d, want 1", n)
	}
	// Completing one takes it off the count.
	if _, err := wl.Claim(ctx, uid(5), "frank"); err != nil {
		t.Fatal(err)
	}
	if _, err := wl.Complete(ctx, uid(5), "frank"); err != nil {
		t.Fatal(err)
	}
	waitState("a completed study off the list", func(s windowState) bool { return s.RowCount == n })
	if r := row(pg.rows(), uid(5)); r.Study != "" {
		t.Errorf("the completed study still has a row: %+v", r)
	}

	// The tier filter: the critical study alone.
	pg.eval(`(() => { const s = document.querySelector("#filter-tier"); s.value = "critical"; s.dispatchEvent(new Event("change")); })()`, nil)
	waitState("tier=critical: one study", func(s windowState) bool { return s.RowCount == 2 && s.DOMRows == 1 && s.First == low })
	pg.eval(`(() => { const s = document.querySelector("#filter-tier"); s.value = ""; s.dispatchEvent(new Event("change")); })()`, nil)
	waitState("no filter: every study again", func(s windowState) bool { return s.RowCount == n && s.DOMRows > 5 })

	axeSrc, err := AxeSource()
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pg.tab.RunAxe(ctxT(t, 2*time.Minute), axeSrc)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range seriousAxe(t, "the windowed list", vs) {
		t.Errorf("axe-core on the windowed list: %s", v)
	}
	pg.checkSameDocument()
	pg.checkClean()
}
