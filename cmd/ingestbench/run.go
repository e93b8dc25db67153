package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/radtriage/radtriage/api/e2e"
)

type config struct {
	k          int
	conc       []int
	servers    []string
	bigServers []string
	bigMB      int
	bigStudy   int
	qidoN      int
	runs       int
	wadoN      int
	dbURL      string
	bin        string
	out        string
	stableAge  time.Duration
	keep       bool
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ingestbench", flag.ContinueOnError)
	var cfg config
	var conc, servers, big string
	fs.IntVar(&cfg.k, "k", 20, "copies of ct-head-5mm (28 instances each) to ingest per run")
	fs.StringVar(&conc, "c", "1,4", "client concurrencies (requests in flight)")
	fs.StringVar(&servers, "servers", "sqlite,postgres,orthanc", "servers to measure: sqlite, postgres (radtriage on each), orthanc")
	fs.StringVar(&big, "big-servers", "sqlite,orthanc", "servers for the one-big-request measurement (empty: skip)")
	fs.IntVar(&cfg.bigMB, "big-mb", 1024, "size of the one big STOW-RS request in MB (0: skip)")
	fs.IntVar(&cfg.bigStudy, "big-study-size", 0, "instances per study in the big request (0: all in one study; a new series every 28 either way)")
	fs.IntVar(&cfg.runs, "runs", 1, "ingest runs per (server, concurrency); the median run is reported, with the min-max rate")
	fs.IntVar(&cfg.qidoN, "qido-n", 50, "QIDO-RS repetitions")
	fs.IntVar(&cfg.wadoN, "wado-n", 20, "whole-study WADO-RS repetitions")
	fs.StringVar(&cfg.dbURL, "database-url", e2e.TestDatabaseURL(), "PostgreSQL for the postgres runs (a fresh schema per run)")
	fs.StringVar(&cfg.bin, "bin", "", "radtriage binary (default: go build ./cmd/radtriage)")
	fs.StringVar(&cfg.out, "o", "", "also write the Markdown report to this file")
	fs.DurationVar(&cfg.stableAge, "stable-age", 5*time.Second, "radtriage --stable-age")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directories")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, c := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("-c: bad concurrency %q", c)
		}
		cfg.conc = append(cfg.conc, n)
	}
	cfg.servers = splitList(servers)
	cfg.bigServers = splitList(big)
	if cfg.runs < 1 {
		cfg.runs = 1
	}
	if cfg.bigMB <= 0 {
		cfg.bigServers = nil
	}

	tmp, err := os.MkdirTemp("", "ingestbench-")
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(tmp)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }

	fixtures, err := e2e.FixturesDir()
	if err != nil {
		return err
	}
	orig, err := e2e.LoadSeries(filepath.Join(fixtures, "ct-head-5mm"))
	if err != nil {
		return err
	}
	studies := make([][]e2e.Instance, cfg.k)
	var payload int64
	for i := range studies {
		studies[i] = e2e.Freshen(orig)
		for _, in := range studies[i] {
			payload += int64(len(in.Bytes))
		}
	}
	logf("generated %d studies, %d instances, %.1f MB", cfg.k, cfg.k*len(orig), mb(payload))

	needRadtriage := slices.ContainsFunc(append(slices.Clone(cfg.servers), cfg.bigServers...), func(s string) bool { return s != "orthanc" })
	if needRadtriage && cfg.bin == "" {
		logf("building ./cmd/radtriage")
		cfg.bin, err = e2e.BuildServer(ctx, tmp)
		if err != nil {
			return err
		}
	}

	b := &bench{cfg: cfg, tmp: tmp, logf: logf}
	// Rounds interleave the servers so that a noisy moment on the machine
	// does not land on one server only; each cell reports its median run.
	runs := map[string][]row{}
	for round := 0; round < cfg.runs; round++ {
		for _, srv := range cfg.servers {
			for _, c := range cfg.conc {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r, err := b.ingestRun(ctx, srv, c, studies, payload)
				if err != nil {
					logf("%s c=%d: %v", srv, c, err)
					r = row{server: srv, conc: c, err: err.Error()}
				}
				key := srv + "/" + strconv.Itoa(c)
				runs[key] = append(runs[key], r)
			}
		}
	}
	var rows []row
	for _, srv := range cfg.servers {
		for _, c := range cfg.conc {
			rows = append(rows, medianRow(runs[srv+"/"+strconv.Itoa(c)]))
		}
	}
	var bigRows []bigRow
	for _, srv := range cfg.bigServers {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := b.bigRun(ctx, srv, orig)
		if err != nil {
			logf("%s big request: %v", srv, err)
			r.server, r.err = srv, err.Error()
		}
		bigRows = append(bigRows, r)
	}

	report := b.report(rows, bigRows, len(orig), payload)
	fmt.Fprint(stdout, report)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func mb(n int64) float64 { return float64(n) / 1e6 }

type bench struct {
	cfg  config
	tmp  string
	logf func(string, ...any)
	seq  int
}

// running is one server under measurement.
type running struct {
	proc   *e2e.Process
	client *e2e.Client
	note   string
	stop   func()
}

// start starts a fresh server of kind srv.
func (b *bench) start(ctx context.Context, srv string) (*running, error) {
	b.seq++
	dir := filepath.Join(b.tmp, fmt.Sprintf("%02d-%s", b.seq, srv))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	hc := benchHTTPClient()
	switch srv {
	case "sqlite", "postgres":
		dbURL, drop := "", func() error { return nil }
		if srv == "postgres" {
			var err error
			dbURL, drop, err = e2e.CreateSchema(ctx, b.cfg.dbURL, "ingestbench")
			if err != nil {
				return nil, err
			}
		}
		p, err := e2e.StartServer(ctx, e2e.ServerOptions{
			Bin: b.cfg.bin, DataDir: filepath.Join(dir, "data"), DatabaseURL: dbURL,
			StableAge: b.cfg.stableAge, LogPath: filepath.Join(dir, "radtriage.log"),
		})
		if err != nil {
			drop()
			return nil, err
		}
		return &running{proc: p, client: &e2e.Client{Root: p.DICOMweb(), HTTP: hc},
			stop: func() {
				if err := p.Stop(30 * time.Second); err != nil {
					b.logf("stop radtriage: %v", err)
				}
				if err := drop(); err != nil {
					b.logf("drop schema: %v", err)
				}
			}}, nil
	case "orthanc":
		bin, plugin, err := e2e.FindOrthanc()
		if err != nil {
			return nil, err
		}
		port, err := e2e.FreePort()
		if err != nil {
			return nil, err
		}
		p, err := e2e.StartOrthanc(ctx, bin, dir, e2e.OrthancConfig(dir, plugin, port, nil))
		if err != nil {
			return nil, err
		}
		return &running{proc: p, client: &e2e.Client{Root: p.BaseURL + "/dicom-web", HTTP: hc},
			stop: func() {
				if err := p.Stop(60 * time.Second); err != nil {
					b.logf("stop Orthanc: %v", err)
				}
			}}, nil
	}
	return nil, fmt.Errorf("unknown server %q (want sqlite, postgres or orthanc)", srv)
}

func benchHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 15 * time.Minute,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			DisableCompression:  true,
		},
	}
}

type row struct {
	server           string
	conc             int
	instances        int
	seconds          float64
	rssIngest, rss   int64
	cpu              time.Duration // server CPU time during ingest
	qidoP50, wadoP50 time.Duration
	qidoN, wadoN     int
	runs, retries    int
	failedRuns       int
	minRate, maxRate float64 // instances/s over the runs
	err              string
}

// medianRow returns the run with the median ingest time, with the range of
// rates over all successful runs; an error if any run failed.
func medianRow(rs []row) row {
	var ok []row
	retries := 0
	for _, r := range rs {
		retries += r.retries
		if r.err == "" {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return rs[len(rs)-1]
	}
	slices.SortFunc(ok, func(a, b row) int { return cmp.Compare(a.seconds, b.seconds) })
	m := ok[(len(ok)-1)/2]
	m.runs = len(ok)
	m.failedRuns = len(rs) - len(ok)
	m.retries = retries
	m.minRate = float64(ok[len(ok)-1].instances) / ok[len(ok)-1].seconds
	m.maxRate = float64(ok[0].instances) / ok[0].seconds
	return m
}

// staleConn reports an error from writing to a connection the server had
// closed (a kept-alive connection reused as the server dropped it).
func staleConn(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// ingestRun pushes every study (one request each) with c requests in
// flight, then measures QIDO-RS and WADO-RS latency.
func (b *bench) ingestRun(ctx context.Context, srv string, c int, studies [][]e2e.Instance, payload int64) (row, error) {
	r := row{server: srv, conc: c}
	s, err := b.start(ctx, srv)
	if err != nil {
		return r, err
	}
	defer s.stop()
	b.logf("%s c=%d: ingesting %d studies", srv, c, len(studies))

	var next, stored, retries atomic.Int64
	errs := make(chan error, c)
	var wg sync.WaitGroup
	cpu0, _ := s.proc.CPUTime()
	t0 := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(studies) || ctx.Err() != nil {
					return
				}
				parts := make([][]byte, len(studies[i]))
				for j, in := range studies[i] {
					parts[j] = in.Bytes
				}
				res, err := s.client.Store(ctx, parts)
				if err != nil && staleConn(err) && ctx.Err() == nil {
					// The server closed a kept-alive connection as the
					// request went out; STOW-RS re-sends are harmless.
					retries.Add(1)
					res, err = s.client.Store(ctx, parts)
				}
				if err == nil && (res.Status != http.StatusOK || len(res.Stored) != len(parts)) {
					err = fmt.Errorf("study %d: HTTP %d, %d stored, %d failed: %.300s", i, res.Status, len(res.Stored), len(res.Failed), res.Body)
				}
				if err != nil {
					errs <- err
					return
				}
				stored.Add(int64(len(res.Stored)))
			}
		}()
	}
	wg.Wait()
	r.seconds = time.Since(t0).Seconds()
	if cpu1, err := s.proc.CPUTime(); err == nil {
		r.cpu = cpu1 - cpu0
	}
	close(errs)
	if err := <-errs; err != nil {
		return r, err
	}
	r.instances = int(stored.Load())
	r.retries = int(retries.Load())
	r.rssIngest, _ = s.proc.PeakRSS()

	// QIDO-RS.
	var lat []time.Duration
	for i := 0; i < b.cfg.qidoN; i++ {
		t := time.Now()
		ds, err := s.client.Query(ctx, "/studies?limit=100")
		if err != nil {
			return r, fmt.Errorf("QIDO-RS: %w", err)
		}
		if len(ds) != len(studies) {
			return r, fmt.Errorf("QIDO-RS /studies?limit=100: %d studies, want %d", len(ds), len(studies))
		}
		lat = append(lat, time.Since(t))
	}
	r.qidoP50, r.qidoN = median(lat), len(lat)

	// WADO-RS whole study.
	lat = lat[:0]
	for i := 0; i < b.cfg.wadoN; i++ {
		st := studies[i%len(studies)]
		t := time.Now()
		n := 0
		var size int64
		err := s.client.RetrieveEach(ctx, "/studies/"+st[0].Study, func(p []byte) error {
			n++
			size += int64(len(p))
			return nil
		})
		if err != nil {
			return r, fmt.Errorf("WADO-RS: %w", err)
		}
		if n != len(st) {
			return r, fmt.Errorf("WADO-RS study: %d parts, want %d", n, len(st))
		}
		lat = append(lat, time.Since(t))
	}
	r.wadoP50, r.wadoN = median(lat), len(lat)
	r.rss, _ = s.proc.PeakRSS()
	b.logf("%s c=%d: %d instances in %.2fs", srv, c, r.instances, r.seconds)
	return r, nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type bigRow struct {
	server            string
	instances, stored int
	bytes             int64
	seconds           float64
	rssBefore         int64
	rssPeakSampled    int64
	hwm               int64
	status            int
	err               string
}

// bigRun streams one STOW-RS request of about bigMB MB to a fresh server
// and watches its memory.
func (b *bench) bigRun(ctx context.Context, srv string, orig []e2e.Instance) (bigRow, error) {
	r := bigRow{server: srv}
	s, err := b.start(ctx, srv)
	if err != nil {
		return r, err
	}
	defer s.stop()
	r.rssBefore, _ = s.proc.RSS()

	var slice int64
	for _, in := range orig {
		slice += int64(len(in.Bytes))
	}
	slice /= int64(len(orig))
	total := int((int64(b.cfg.bigMB) << 20) / slice)
	b.logf("%s: one STOW-RS request of %d instances (~%d MB)", srv, total, b.cfg.bigMB)

	study := e2e.NewUID(len(orig[0].Study))
	var series string
	i := 0
	t0 := time.Now()
	next := func() ([]byte, error) {
		if i >= total || ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if b.cfg.bigStudy > 0 && i > 0 && i%b.cfg.bigStudy == 0 {
			study = e2e.NewUID(len(orig[0].Study))
		}
		if i%len(orig) == 0 {
			series = e2e.NewUID(len(orig[0].Series))
		}
		in := e2e.FreshenOne(orig[i%len(orig)], study, series)
		if i > 0 && i%250 == 0 {
			b.logf("%s: %d instances sent, %.1fs", srv, i, time.Since(t0).Seconds())
		}
		i++
		r.bytes += int64(len(in.Bytes))
		return in.Bytes, nil
	}

	done := make(chan struct{})
	var peak atomic.Int64
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := s.proc.RSS(); err == nil && v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	t0 = time.Now()
	res, err := s.client.StoreStream(ctx, next)
	r.seconds = time.Since(t0).Seconds()
	close(done)
	r.instances = i
	r.rssPeakSampled = peak.Load()
	r.hwm, _ = s.proc.PeakRSS()
	if err != nil {
		return r, err
	}
	r.status = res.Status
	r.stored = len(res.Stored)
	if res.Status != http.StatusOK {
		r.err = fmt.Sprintf("HTTP %d: %.200s", res.Status, bytes.TrimSpace(res.Body))
	}
	return r, nil
}

func (b *bench) report(rows []row, big []bigRow, perStudy int, payload int64) string {
	var w strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&w, "## Ingest benchmark (%s, %s, %d CPUs, %s)\n\n", host, time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&w, "K=%d copies of ct-head-5mm with fresh UIDs: %d instances, %.1f MB; one STOW-RS request per study (%d parts). "+
		"Fresh server and data directory per row. QIDO-RS: GET /studies?limit=100, median of %d; WADO-RS: whole study (%d instances), median of %d. "+
		"Server CPU is the user+system time of the server process during ingest, per instance (the client runs on the same machine, so at 4 clients the two compete for the 2 cores). "+
		"Peak RSS is VmHWM of the server process after ingest / at the end of the row. %d run(s) per row, interleaved; the median run is shown, with the range of rates.\n\n",
		b.cfg.k, b.cfg.k*perStudy, mb(payload), perStudy, b.cfg.qidoN, perStudy, b.cfg.wadoN, b.cfg.runs)
	fmt.Fprintf(&w, "| server | clients | instances | seconds | instances/s | range (inst/s) | MB/s | server CPU (ms/inst) | peak RSS ingest (MB) | peak RSS end (MB) | QIDO p50 (ms) | WADO study p50 (ms) |\n")
	fmt.Fprintf(&w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var notes []string
	for _, r := range rows {
		if r.err != "" {
			fmt.Fprintf(&w, "| %s | %d | error: %s |||||||||\n", label(r.server), r.conc, strings.ReplaceAll(oneLine(r.err), "|", "/"))
			continue
		}
		fmt.Fprintf(&w, "| %s | %d | %d | %.2f | %.0f | %.0f–%.0f | %.1f | %.2f | %.0f | %.0f | %.1f | %.0f |\n",
			label(r.server), r.conc, r.instances, r.seconds, float64(r.instances)/r.seconds, r.minRate, r.maxRate, mb(payload)/r.seconds,
			ms(r.cpu)/float64(max(r.instances, 1)), mb(r.rssIngest), mb(r.rss), ms(r.qidoP50), ms(r.wadoP50))
		if r.retries > 0 || r.failedRuns > 0 {
			notes = append(notes, fmt.Sprintf("%s, %d clients: %d request(s) re-sent after the server dropped a kept-alive connection; %d failed run(s) left out",
				label(r.server), r.conc, r.retries, r.failedRuns))
		}
	}
	for _, n := range notes {
		fmt.Fprintf(&w, "\n- %s", n)
	}
	if len(notes) > 0 {
		fmt.Fprintln(&w)
	}
	if len(big) > 0 {
		shape := "all in one study, a new series every 28"
		if b.cfg.bigStudy > 0 {
			shape = fmt.Sprintf("a new study every %d instances", b.cfg.bigStudy)
		}
		fmt.Fprintf(&w, "\nOne STOW-RS request of about %d MB (fresh-UID slices streamed through an io.Pipe; %s):\n\n", b.cfg.bigMB, shape)
		fmt.Fprintf(&w, "| server | instances sent | MB sent | HTTP | stored | seconds | RSS before (MB) | peak RSS sampled (MB) | VmHWM (MB) |\n")
		fmt.Fprintf(&w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range big {
			status := strconv.Itoa(r.status)
			if r.err != "" {
				status += " (" + strings.ReplaceAll(oneLine(r.err), "|", "/") + ")"
			}
			fmt.Fprintf(&w, "| %s | %d | %.0f | %s | %d | %.1f | %.0f | %.0f | %.0f |\n",
				label(r.server), r.instances, mb(r.bytes), status, r.stored, r.seconds, mb(r.rssBefore), mb(r.rssPeakSampled), mb(r.hwm))
		}
	}
	fmt.Fprintf(&w, "\nOrthanc: Debian %s with DICOMweb plugin; config: default SQLite index, StorageCompression false, SyncStorageArea true, "+
		"HTTP compression off, DICOM listener off, STOW-RS at /dicom-web/studies.\n", orthancVersion())
	return w.String()
}

func label(s string) string {
	switch s {
	case "sqlite":
		return "radtriage (SQLite)"
	case "postgres":
		return "radtriage (PostgreSQL)"
	case "orthanc":
		return "Orthanc + DICOMweb"
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func orthancVersion() string {
	bin, _, err := e2e.FindOrthanc()
	if err != nil {
		return "Orthanc (not found)"
	}
	out, err := execOutput(bin, "--version")
	if err != nil {
		return "Orthanc"
	}
	line, _, _ := strings.Cut(out, "\n")
	return strings.TrimSpace(filepath.Base(line))
}

var errNoOutput = errors.New("no output")
