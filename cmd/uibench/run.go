package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/radtriage/radtriage/api/e2e"
	"github.com/radtriage/radtriage/worklist"
)

// prefix is the worklist prefix of the benchmark's serve and seeding.
const prefix = "uibench:"

type config struct {
	bin         string
	studies     int
	renders     int
	reorders    int
	keyImages   int
	targetFirst time.Duration
	targetSSE   time.Duration
	targetKey   time.Duration
	out         string
	screenshots string
	keep        bool
	profile     bool
	hold        bool
	timeout     time.Duration
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("uibench", flag.ContinueOnError)
	var cfg config
	fs.IntVar(&cfg.studies, "studies", 5000, "open studies on the worklist")
	fs.IntVar(&cfg.renders, "renders", 10, "page loads timed (first render)")
	fs.IntVar(&cfg.reorders, "reorders", 20, "SSE re-orders timed")
	fs.IntVar(&cfg.keyImages, "keyimages", 30, "cached 512x512 key-image requests timed")
	fs.DurationVar(&cfg.targetFirst, "target-render", 300*time.Millisecond, "target: first render p95 under this")
	fs.DurationVar(&cfg.targetSSE, "target-reorder", 100*time.Millisecond, "target: SSE re-order on screen p95 under this")
	fs.DurationVar(&cfg.targetKey, "target-keyimage", 100*time.Millisecond, "target: key image p95 under this")
	fs.StringVar(&cfg.bin, "bin", "", "radtriage binary (default: go build ./cmd/radtriage)")
	fs.StringVar(&cfg.out, "o", "", "also write the Markdown report to this file")
	fs.StringVar(&cfg.screenshots, "screenshots", "", "write DIR/worklist.png and DIR/study-panel.png instead of benchmarking")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "longest wait for a phantom's triage")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary folder (server and redis logs)")
	fs.BoolVar(&cfg.hold, "hold", false, "after seeding, print the page's address and keep serving until interrupted (no measurements)")
	fs.BoolVar(&cfg.profile, "profile", false, "print each load's performance timeline (marks and requests, ms from navigation start) on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.studies < 2 || cfg.renders < 1 || cfg.reorders < 1 || cfg.keyImages < 1 {
		return errors.New("-studies must be at least 2, -renders, -reorders and -keyimages at least 1")
	}
	if _, err := e2e.ChromiumPath(); err != nil {
		return fmt.Errorf("%w (run .ci/browser-deps.sh)", err)
	}

	tmp, err := os.MkdirTemp("", "uibench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(os.Stderr, "uibench: keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if cfg.bin == "" {
		if cfg.bin, err = e2e.BuildServer(ctx, tmp); err != nil {
			return err
		}
	}
	if cfg.screenshots != "" {
		return screenshots(ctx, cfg, tmp, cfg.screenshots)
	}
	rep, err := bench(ctx, cfg, tmp)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := rep.write(&buf); err != nil {
		return err
	}
	if _, err := stdout.Write(buf.Bytes()); err != nil {
		return err
	}
	if cfg.out != "" {
		return os.WriteFile(cfg.out, buf.Bytes(), 0o644)
	}
	return nil
}

// logf reports progress on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "uibench: "+format+"\n", args...)
}

// stack is what one run starts: redis-server (benchmark only), serve and
// chromium; stop ends them in reverse order.
type stack struct {
	redis       *e2e.RedisServer
	serve       *e2e.Process
	api         *e2e.API
	browser     *e2e.Browser
	chromiumLog *os.File
}

func (s *stack) stop() {
	if s.browser != nil {
		s.browser.Close()
	}
	if s.chromiumLog != nil {
		s.chromiumLog.Close()
	}
	if s.serve != nil {
		if err := s.serve.Stop(30 * time.Second); err != nil {
			logf("stop serve: %v", err)
		}
	}
	if s.redis != nil {
		if err := s.redis.Stop(); err != nil {
			logf("stop redis-server: %v", err)
		}
	}
}

// start starts serve (on the private redis-server when redisURL is set)
// and chromium.
func start(ctx context.Context, cfg config, dir, redisURL string, width, height int) (*stack, error) {
	s := &stack{}
	args := []string{"--workers", "1", "--backend", "cpu"}
	if redisURL != "" {
		args = append(args, "--redis-url", redisURL, "--worklist-prefix", prefix)
	}
	sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var err error
	s.serve, err = e2e.StartServer(sctx, e2e.ServerOptions{
		Bin: cfg.bin, DataDir: filepath.Join(dir, "data"), StableAge: time.Second,
		ExtraArgs: args, LogPath: filepath.Join(dir, "serve.log"),
	})
	if err != nil {
		return nil, err
	}
	s.api = &e2e.API{Base: s.serve.BaseURL, HTTP: &http.Client{Timeout: time.Minute}}
	if s.chromiumLog, err = os.Create(filepath.Join(dir, "chromium.log")); err != nil {
		s.stop()
		return nil, err
	}
	s.browser, err = e2e.StartBrowser(sctx, e2e.BrowserOptions{Width: width, Height: height, Log: s.chromiumLog})
	if err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// pushTriaged writes phantoms, pushes them and waits until every one is
// triaged (AI done).
func pushTriaged(ctx context.Context, cfg config, s *stack, dir string, o e2e.PhantomOptions) ([]e2e.PhantomStudy, error) {
	studies, err := e2e.WritePhantoms(ctx, cfg.bin, dir, o)
	if err != nil {
		return nil, err
	}
	for _, st := range studies {
		if _, err := e2e.Push(ctx, cfg.bin, st.SeriesDir, s.serve.DICOMweb()); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(cfg.timeout)
	for _, st := range studies {
		for {
			f, err := s.api.Findings(ctx, st.StudyUID)
			if err == nil && f.AI == "done" {
				break
			}
			if err == nil && f.Job != nil && f.Job.State == "dead" {
				return nil, fmt.Errorf("triage of %s failed: %s", st.StudyUID, f.Job.LastError)
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("study %s not triaged within %v (last: %v); serve log tail:\n%s", st.StudyUID, cfg.timeout, err, s.serve.LogTail(30))
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	return studies, nil
}

// benchHooks records, for every "sse-applied:" mark the page makes (and
// for "worklist-first-screen" and "worklist-rendered", in
// window.__benchMarks[name]), the mark's time,
// the next animation frame's and the time just after that frame (a
// message posted from the frame callback runs after its paint).
const benchHooks = `(() => {
	window.__bench = [];
	const mark = performance.mark.bind(performance);
	performance.mark = function (name, options) {
		const m = mark(name, options);
		if (name === "worklist-rendered" || name === "worklist-first-screen") {
			const t = m ? m.startTime : performance.now();
			requestAnimationFrame(() => {
				const frame = performance.now();
				const ch = new MessageChannel();
				ch.port1.onmessage = () => { (window.__benchMarks = window.__benchMarks || {})[name] = {t, frame, painted: performance.now()}; };
				ch.port2.postMessage(0);
			});
		}
		if (typeof name === "string" && name.startsWith("sse-applied:")) {
			const t = m ? m.startTime : performance.now();
			requestAnimationFrame(() => {
				const frame = performance.now();
				const ch = new MessageChannel();
				ch.port1.onmessage = () => window.__bench.push({name, t, frame, painted: performance.now()});
				ch.port2.postMessage(0);
			});
		}
		return m;
	};
})()`

func bench(ctx context.Context, cfg config, dir string) (*report, error) {
	rep := &report{when: time.Now(), machine: machine(), goVer: runtime.Version(), studies: cfg.studies}
	redisBin, err := e2e.RedisServerPath()
	if err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return nil, err
	}
	rs, err := e2e.StartRedis(ctx, redisBin, rdir)
	if err != nil {
		return nil, err
	}
	s, err := start(ctx, cfg, dir, rs.URL(), 1440, 900)
	if err != nil {
		rs.Stop()
		return nil, err
	}
	s.redis = rs
	defer s.stop()
	if rep.browser, err = s.browser.Version(ctx); err != nil {
		return nil, err
	}

	logf("pushing a 32x512x512 phantom with a bleed and waiting for its triage")
	big, err := pushTriaged(ctx, cfg, s, filepath.Join(dir, "phantom512"), e2e.PhantomOptions{Count: 1, Seed: 9001, Lesion: "ich", Size: "32x512x512"})
	if err != nil {
		return nil, err
	}
	study512 := big[0].StudyUID

	logf("seeding %d studies in Redis", cfg.studies-1)
	opts, err := redis.ParseURL(rs.URL())
	if err != nil {
		return nil, err
	}
	opts.PoolSize = 16
	rc := redis.NewClient(opts)
	defer rc.Close()
	wl, err := worklist.New(rc, worklist.Config{Prefix: prefix})
	if err != nil {
		return nil, err
	}
	studies := seedStudies(cfg.studies-1, time.Now(), 1)
	t0 := time.Now()
	tiers, err := seedWorklist(ctx, wl, studies, 8)
	if err != nil {
		return nil, err
	}
	rep.seedTime = time.Since(t0)
	tiers["critical"]++ // the triaged phantom
	rep.tiers = tiers

	if cfg.hold {
		logf("serving %d studies at %s/ (redis %s, prefix %s); interrupt to stop", cfg.studies, s.serve.BaseURL, rs.URL(), prefix)
		<-ctx.Done()
		return nil, ctx.Err()
	}

	tab, err := s.browser.NewTab(ctx)
	if err != nil {
		return nil, err
	}
	if err := tab.OnNewDocument(ctx, benchHooks); err != nil {
		return nil, err
	}

	logf("first render: %d loads of the page", cfg.renders)
	screen := measure{name: fmt.Sprintf("first render: the top of the list on screen, %d studies", cfg.studies),
		how: "navigation start to just after the first frame (style, layout, paint) after the mark worklist-first-screen (the first screenful of rows, in order, rendered)", target: cfg.targetFirst}
	first := measure{name: "the whole list in (counts, scroll height)",
		how: "navigation start to just after the first frame after the mark worklist-rendered (the list complete, the window rendered)"}
	marked := measure{name: "of which to the mark", how: "navigation start to the mark worklist-rendered"}
	fetch := measure{name: "of which reading the list", how: "mark worklist-fetch-start to worklist-rendered: the streamed request, JSON and rendering"}
	var cold, coldScreen time.Duration
	for i := range cfg.renders {
		l, err := loadPage(ctx, tab, s.serve.BaseURL)
		if err != nil {
			first.err, screen.err = err, err
			break
		}
		if i == 0 {
			cold, coldScreen = l.painted, l.screen
		}
		if cfg.profile {
			var tl string
			if err := tab.Eval(ctx, timelineJS, &tl); err != nil {
				return nil, err
			}
			logf("load %d: painted %.1f ms; %s", i+1, float64(l.painted)/float64(time.Millisecond), tl)
		}
		rep.rows, rep.domRows = l.listed, l.domRows
		screen.samples = append(screen.samples, l.screen)
		first.samples = append(first.samples, l.painted)
		marked.samples = append(marked.samples, l.marked)
		if l.fetchStart > 0 {
			fetch.samples = append(fetch.samples, l.marked-l.fetchStart)
		}
	}
	if first.err == nil && rep.rows != cfg.studies {
		first.err = fmt.Errorf("the page listed %d studies, want %d", rep.rows, cfg.studies)
	}
	if first.err == nil && (rep.domRows < 1 || rep.domRows > 200) {
		first.err = fmt.Errorf("the page has %d rows in the document, want the window's (1 to 200)", rep.domRows)
	}
	if screen.err == nil {
		screen.err = first.err
	}
	rep.measures = append(rep.measures, screen, first)
	if len(marked.samples) > 0 {
		rep.measures = append(rep.measures, marked)
	}
	if len(fetch.samples) > 0 {
		rep.measures = append(rep.measures, fetch)
	}
	rep.notes = append(rep.notes, fmt.Sprintf("The first load (cold HTTP cache) took %s ms to the top of the list on screen and %s ms to the whole list.", millis(coldScreen), millis(cold)))
	if len(screen.samples) > 2 {
		warm := slices.Clone(screen.samples[1:])
		slices.Sort(warm)
		rep.notes = append(rep.notes, fmt.Sprintf("The %d warm loads (assets cached; they are immutable for a year) took %s ms (median) and at most %s ms to the top of the list on screen.",
			len(warm), millis(warm[len(warm)/2]), millis(warm[len(warm)-1])))
	}

	logf("SSE re-order: %d studies moved by a critical finding", cfg.reorders)
	rep.measures = append(rep.measures, reorders(ctx, tab, wl, studies, cfg, rep)...)

	logf("key image: %d requests of the 512x512 phantom", cfg.keyImages)
	rep.measures = append(rep.measures, keyImages(ctx, s.serve.BaseURL, study512, cfg, rep)...)
	return rep, nil
}

// timelineJS is the page's performance timeline as one line: marks, and
// requests with their start, first byte and end, in ms from navigation
// start, in time order (uibench -profile).
const timelineJS = `(() => {
	const r = (x) => x.toFixed(1);
	const e = performance.getEntries().filter((x) => x.entryType === "mark" || x.entryType === "resource" || x.entryType === "navigation" || x.entryType === "paint" || x.entryType === "measure");
	e.sort((a, b) => a.startTime - b.startTime);
	return e.map((x) => {
		if (x.entryType === "resource" || x.entryType === "navigation") {
			const u = x.name.replace(location.origin, "");
			return u + " [" + r(x.startTime) + " ttfb " + r(x.responseStart) + " end " + r(x.responseEnd) + " " + x.transferSize + "B]";
		}
		if (x.entryType === "measure") return x.name + " [" + r(x.startTime) + "+" + r(x.duration) + "]";
		return x.name + "@" + r(x.startTime);
	}).join("  ");
})()`

// pageLoad is what loadPage measured, in time from navigation start.
type pageLoad struct {
	screen     time.Duration // just after the first frame after the mark worklist-first-screen
	painted    time.Duration // just after the first frame after the mark worklist-rendered
	marked     time.Duration // the mark worklist-rendered (list complete, window rendered)
	fetchStart time.Duration // the mark worklist-fetch-start (0 when the page made none)
	listed     int           // studies the table stands for (aria-rowcount less the header)
	domRows    int           // rows in the document (the rendered window)
}

// loadPage loads the page and waits for its first full render: the mark
// worklist-rendered and the first frame painted after it (benchHooks).
func loadPage(ctx context.Context, tab *e2e.Tab, base string) (pageLoad, error) {
	var l pageLoad
	nctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := tab.Navigate(nctx, base+"/"); err != nil {
		return l, err
	}
	var got struct {
		T, Frame, Painted, Screen float64
		Ok                        bool
	}
	for {
		if err := tab.Eval(nctx, `(() => { const m = window.__benchMarks || {}; const r = m["worklist-rendered"], f = m["worklist-first-screen"];
			return r && f ? {T: r.t, Frame: r.frame, Painted: r.painted, Screen: f.painted, Ok: true} : {Ok: false}; })()`, &got); err != nil {
			return l, err
		}
		if got.Ok {
			break
		}
		select {
		case <-nctx.Done():
			return l, fmt.Errorf("no performance marks worklist-first-screen and worklist-rendered followed by a frame: %w", nctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	l.painted, l.marked, l.screen = fromMillis(got.Painted), fromMillis(got.T), fromMillis(got.Screen)
	if ms, ok, err := tab.MarkTime(nctx, "worklist-fetch-start"); err == nil && ok {
		l.fetchStart = fromMillis(ms)
	}
	var counts struct{ Listed, DOM int }
	err := tab.Eval(nctx, `({Listed: Number(document.querySelector("table#worklist").getAttribute("aria-rowcount") || 1) - 1,
		DOM: document.querySelectorAll("table#worklist tbody tr[data-study]").length})`, &counts)
	l.listed, l.domRows = counts.Listed, counts.DOM
	return l, err
}

// align estimates the page clock's offset from this program's, from the
// best of up to 30 readings (it stops at one within 1 ms).
func align(ctx context.Context, tab *e2e.Tab) (offset, bound time.Duration, err error) {
	bound = time.Hour
	for i := 0; i < 30 && bound > time.Millisecond; i++ {
		var ms float64
		before := time.Now()
		if err := tab.Eval(ctx, `performance.timeOrigin + performance.now()`, &ms); err != nil {
			return 0, 0, err
		}
		o, b := clockOffset(before, time.Now(), ms)
		if b < bound {
			offset, bound = o, b
		}
	}
	return offset, bound, nil
}

// benchEntry is one record of benchHooks.
type benchEntry struct {
	Name    string  `json:"name"`
	T       float64 `json:"t"`
	Frame   float64 `json:"frame"`
	Painted float64 `json:"painted"`
}

// reorders moves cfg.reorders routine studies from the bottom of the list
// with a critical finding, and times each until the page shows it.
func reorders(ctx context.Context, tab *e2e.Tab, wl *worklist.Worklist, studies []seeded, cfg config, rep *report) []measure {
	screen := measure{name: "SSE re-order on screen", how: "SetFindings request to just after the first frame (style, layout, paint) following mark sse-applied:<id>", target: cfg.targetSSE}
	frame := measure{name: "of which to the frame's start", how: "SetFindings request to that frame's requestAnimationFrame callback"}
	applied := measure{name: "of which applied", how: "SetFindings request to mark sse-applied:<id> (event received, DOM updated)"}
	fail := func(err error) []measure {
		screen.err, frame.err, applied.err = err, err, err
		return []measure{screen, frame, applied}
	}
	var origin float64
	if err := tab.Eval(ctx, `performance.timeOrigin`, &origin); err != nil {
		return fail(err)
	}
	cands := reorderCandidates(studies, cfg.reorders)
	if len(cands) < cfg.reorders {
		return fail(fmt.Errorf("only %d routine studies without findings to move", len(cands)))
	}
	for _, c := range cands {
		uid := c.study.StudyUID
		// Its place in the list: the row's aria-rowindex, or, off screen
		// (the table is windowed, and it is near the bottom), the count.
		index := fmt.Sprintf(`(() => { const r = [...document.querySelectorAll("table#worklist tbody tr[data-study]")].find(r => r.dataset.study === %q);
			return r ? Number(r.getAttribute("aria-rowindex")) : -1; })()`, uid)
		var before int
		if err := tab.Eval(ctx, index, &before); err != nil {
			return fail(err)
		}
		if before < 0 {
			if err := tab.Eval(ctx, `Number(document.querySelector("table#worklist").getAttribute("aria-rowcount"))`, &before); err != nil {
				return fail(err)
			}
		}
		// Let the previous sample's frames and highlight settle first.
		if err := tab.Eval(ctx, `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 300))))`, nil); err != nil {
			return fail(err)
		}
		offset, bound, err := align(ctx, tab)
		if err != nil {
			return fail(err)
		}
		rep.clockErr = max(rep.clockErr, bound)
		if err := tab.Eval(ctx, `window.__bench.length = 0`, nil); err != nil {
			return fail(err)
		}
		t0 := time.Now()
		f := worklist.Finding{Code: "ICH", Name: "intracranial haemorrhage", Probability: 0.97, Tier: worklist.TierCritical, VolumeML: 18.5, Model: "uibench"}
		if _, err := wl.SetFindings(ctx, uid, []worklist.Finding{f}, "uibench"); err != nil {
			return fail(err)
		}
		var e benchEntry
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		for {
			var es []benchEntry
			if err := tab.Eval(wctx, `window.__bench`, &es); err != nil {
				cancel()
				return fail(fmt.Errorf("waiting for the re-order of %s: %w", uid, err))
			}
			if len(es) > 0 {
				e = es[0]
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
		var after struct {
			Index int    `json:"index"`
			Tier  string `json:"tier"`
		}
		if err := tab.Eval(ctx, fmt.Sprintf(`(() => { const i = %s; const r = document.querySelector("tr[data-study=\"%s\"]"); return {index: i, tier: r ? r.dataset.tier : ""}; })()`, index, uid), &after); err != nil {
			return fail(err)
		}
		if after.Tier != "critical" || after.Index < 0 || after.Index >= before {
			return fail(fmt.Errorf("after %s, study %s is row %d (was %d), tier %q: not moved up on screen as critical", e.Name, uid, after.Index, before, after.Tier))
		}
		at := func(ms float64) time.Duration {
			page := time.UnixMicro(int64((origin + ms) * 1000))
			return page.Add(-offset).Sub(t0)
		}
		applied.samples = append(applied.samples, at(e.T))
		frame.samples = append(frame.samples, at(e.Frame))
		screen.samples = append(screen.samples, at(e.Painted))
	}
	return []measure{screen, frame, applied}
}

// keyImages times the key-image endpoint on the 512x512 phantom.
func keyImages(ctx context.Context, base, study string, cfg config, rep *report) []measure {
	client := &http.Client{Timeout: time.Minute}
	get := func(q url.Values) (time.Duration, []byte, error) {
		u := base + "/api/v1/studies/" + url.PathEscape(study) + "/key-image.png?" + q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, nil, err
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, b)
		}
		return d, b, err
	}
	q := func(plane string, slice int) url.Values {
		return url.Values{"plane": {plane}, "window": {"brain"}, "slice": {fmt.Sprint(slice)}, "outline": {"1"}}
	}
	axial := measure{name: "key image 512x512, axial", how: "GET key-image.png, a new slice each time, outline on, volume cached", target: cfg.targetKey}
	d, b, err := get(q("axial", -1))
	if err != nil {
		axial.err = err
		return []measure{axial}
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		axial.err = fmt.Errorf("key image: %w", err)
		return []measure{axial}
	}
	red, _ := e2e.RedPixels(img)
	rep.notes = append(rep.notes, fmt.Sprintf("The first key-image request (series read and volume assembled, uncached) took %s ms; the key slice is %v with %d outline pixels.",
		millis(d), img.Bounds().Size(), red))
	if img.Bounds().Dx() != 512 || img.Bounds().Dy() != 512 {
		axial.err = fmt.Errorf("the axial key image is %v, want 512x512", img.Bounds().Size())
		return []measure{axial}
	}
	for i := range cfg.keyImages {
		d, _, err := get(q("axial", i%32))
		if err != nil {
			axial.err = err
			break
		}
		axial.samples = append(axial.samples, d)
	}
	out := []measure{axial}
	for _, plane := range []string{"coronal", "sagittal"} {
		m := measure{name: "key image, " + plane, how: "GET key-image.png, reformat through the lesion, outline on"}
		for i := range max(cfg.keyImages/3, 1) {
			d, _, err := get(q(plane, 128+i*16))
			if err != nil {
				m.err = err
				break
			}
			m.samples = append(m.samples, d)
		}
		out = append(out, m)
	}
	return out
}

// machine describes the CPU: model name and logical cores.
func machine() string {
	name := runtime.GOARCH
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				name = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("%s, %d logical cores", name, runtime.NumCPU())
}
