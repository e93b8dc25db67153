package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The pipeline harness (issue 7): triage worker processes, a Server-Sent
// Events client, phantom studies written and pushed by the radtriage
// binary itself, a private redis-server that can be stopped and started
// again empty, a TCP proxy in front of PostgreSQL that can be cut, and
// small clients of the JSON API (worklist, jobs, findings).

// WorkerOptions configure one `radtriage worker` process.
type WorkerOptions struct {
	Bin         string // radtriage binary
	DataDir     string // the data dir serve uses
	DatabaseURL string // the database serve uses (PostgreSQL)
	RedisURL    string // the Redis serve uses (required)
	Workers     int    // --workers; 0 for 1
	ExtraArgs   []string
	LogPath     string
}

// StartWorker starts `radtriage worker` with --metrics-addr on a free
// loopback port and waits until its /metrics answers, that is until its
// workers run. The Process's BaseURL is the metrics server.
func StartWorker(ctx context.Context, o WorkerOptions) (*Process, error) {
	if o.RedisURL == "" {
		return nil, errors.New("e2e: StartWorker needs a RedisURL")
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	n := max(o.Workers, 1)
	args := []string{"worker",
		"--data-dir", o.DataDir,
		"--redis-url", o.RedisURL,
		"--workers", strconv.Itoa(n),
		"--metrics-addr", "127.0.0.1:" + strconv.Itoa(port),
	}
	if o.DatabaseURL != "" {
		args = append(args, "--database-url", o.DatabaseURL)
	}
	args = append(args, o.ExtraArgs...)
	return startReady(ctx, "radtriage worker", o.Bin, args, port, o.LogPath, o.DataDir, "worker", "/metrics")
}

// LogLines returns the lines of p's log that contain every one of subs.
func LogLines(p *Process, subs ...string) []string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok && line != "" {
			out = append(out, line)
		}
	}
	return out
}

// Phantom studies.

// PhantomOptions select the studies `radtriage phantom` writes.
type PhantomOptions struct {
	Count  int    // --count; 0 for 1
	Seed   int    // --seed: study i has seed Seed+i-1 and UIDs that follow from it
	Lesion string // --lesion: none, ich, sdh or random; "" for random
	Size   string // --size DxHxW; "" for the default
}

// PhantomStudy is one study `radtriage phantom` wrote.
type PhantomStudy struct {
	Dir       string // OUT/NNNN
	SeriesDir string // OUT/NNNN/dicom: the DICOM files
	StudyUID  string
	SeriesUID string
	Lesions   []string // kinds: "ich", "sdh"
}

// WritePhantoms runs `radtriage phantom` into out and returns its studies,
// read from their truth.json, in order.
func WritePhantoms(ctx context.Context, bin, out string, o PhantomOptions) ([]PhantomStudy, error) {
	args := []string{"phantom", "-o", out, "--count", strconv.Itoa(max(o.Count, 1)), "--seed", strconv.Itoa(o.Seed)}
	if o.Lesion != "" {
		args = append(args, "--lesion", o.Lesion)
	}
	if o.Size != "" {
		args = append(args, "--size", o.Size)
	}
	if b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("radtriage %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	dirs, err := filepath.Glob(filepath.Join(out, "[0-9][0-9][0-9][0-9]"))
	if err != nil {
		return nil, err
	}
	sort.Strings(dirs)
	var studies []PhantomStudy
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "truth.json"))
		if err != nil {
			return nil, err
		}
		var truth struct {
			SeriesDir string `json:"series_dir"`
			Study     string `json:"study_instance_uid"`
			Series    string `json:"series_instance_uid"`
			Lesions   []struct {
				Kind string `json:"kind"`
			} `json:"lesions"`
		}
		if err := json.Unmarshal(b, &truth); err != nil {
			return nil, fmt.Errorf("%s/truth.json: %w", dir, err)
		}
		if truth.Study == "" || truth.SeriesDir == "" {
			return nil, fmt.Errorf("%s/truth.json: no study_instance_uid or series_dir", dir)
		}
		s := PhantomStudy{Dir: dir, SeriesDir: filepath.Join(dir, truth.SeriesDir), StudyUID: truth.Study, SeriesUID: truth.Series}
		for _, l := range truth.Lesions {
			s.Lesions = append(s.Lesions, l.Kind)
		}
		studies = append(studies, s)
	}
	if len(studies) != max(o.Count, 1) {
		return nil, fmt.Errorf("radtriage phantom wrote %d studies into %s, want %d", len(studies), out, max(o.Count, 1))
	}
	return studies, nil
}

// Push runs `radtriage push dir --url dicomweb` and returns its output;
// a failed push (exit status not 0) is an error carrying the output.
func Push(ctx context.Context, bin, dir, dicomweb string) (string, error) {
	b, err := exec.CommandContext(ctx, bin, "push", dir, "--url", dicomweb).CombinedOutput()
	if err != nil {
		return string(b), fmt.Errorf("radtriage push %s --url %s: %w\n%s", dir, dicomweb, err, b)
	}
	return string(b), nil
}

// Server-Sent Events.

// SSEEvent is one event of a text/event-stream.
type SSEEvent struct {
	ID   string
	Type string // the event: field; "message" when absent
	Data []byte // the data: lines joined by "\n"
	At   time.Time
}

// EventStream is an open text/event-stream, read in the background. It
// keeps every event received.
type EventStream struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []SSEEvent
	err    error         // why reading ended; set before done is closed
	notify chan struct{} // closed and replaced on each event
}

// OpenEventStream connects to url (GET, Accept: text/event-stream) and
// returns once the server answered 200, so that every event the server
// sends after that moment is received. It reads until Close or until ctx
// ends.
func OpenEventStream(ctx context.Context, url string) (*EventStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	// No client timeout: the stream is open for as long as ctx lasts.
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: HTTP %d, Content-Type %q: %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &EventStream{cancel: cancel, done: make(chan struct{}), notify: make(chan struct{})}
	go s.read(resp.Body)
	return s, nil
}

func (s *EventStream) read(body io.ReadCloser) {
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var (
		ev   SSEEvent
		data [][]byte
		seen bool
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if seen && data != nil {
				ev.Data = bytes.Join(data, []byte("\n"))
				if ev.Type == "" {
					ev.Type = "message"
				}
				ev.At = time.Now()
				s.add(ev)
			}
			ev, data, seen = SSEEvent{}, nil, false
			continue
		}
		if line[0] == ':' {
			continue // a comment
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		seen = true
		switch string(field) {
		case "id":
			ev.ID = string(value)
		case "event":
			ev.Type = string(value)
		case "data":
			data = append(data, bytes.Clone(value))
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.done)
}

func (s *EventStream) add(ev SSEEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	close(s.notify)
	s.notify = make(chan struct{})
}

// Events returns the events received so far, in order.
func (s *EventStream) Events() []SSEEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SSEEvent(nil), s.events...)
}

// Wait returns the first event received (earlier ones included) for which
// match is true; an error when ctx ends or the stream ends first.
func (s *EventStream) Wait(ctx context.Context, match func(SSEEvent) bool) (SSEEvent, error) {
	next := 0
	for {
		s.mu.Lock()
		evs, notify, err := s.events[next:], s.notify, s.err
		next = len(s.events)
		s.mu.Unlock()
		for _, ev := range evs {
			if match(ev) {
				return ev, nil
			}
		}
		if err != nil {
			return SSEEvent{}, fmt.Errorf("event stream ended: %w", err)
		}
		select {
		case <-ctx.Done():
			return SSEEvent{}, ctx.Err()
		case <-notify:
		case <-s.done:
		}
	}
}

// Close ends the stream and waits for its reader.
func (s *EventStream) Close() {
	s.cancel()
	<-s.done
}

// WorklistEvent is the data of one worklist event
// (GET /api/v1/worklist/events).
type WorklistEvent struct {
	ID       string        `json:"id"`
	Type     string        `json:"type"`
	StudyUID string        `json:"study_uid"`
	By       string        `json:"by"`
	Item     *WorklistItem `json:"item"`
}

// DecodeWorklistEvent decodes the data of a worklist event.
func DecodeWorklistEvent(ev SSEEvent) (WorklistEvent, error) {
	var we WorklistEvent
	err := json.Unmarshal(ev.Data, &we)
	return we, err
}

// The JSON API.

// API is a client of a radtriage server's /api/v1 and /metrics.
type API struct {
	Base string // http://127.0.0.1:PORT
	HTTP *http.Client
}

// WorklistItem is an item of GET /api/v1/worklist, with the fields the
// tests look at.
type WorklistItem struct {
	StudyUID string           `json:"study_uid"`
	Tier     string           `json:"tier"`
	Status   string           `json:"status"`
	Reason   string           `json:"reason"`
	AI       string           `json:"ai"`
	Finding  *WorklistFinding `json:"finding"`
}

// WorklistFinding is the finding that places a worklist item.
type WorklistFinding struct {
	Code        string  `json:"code"`
	Name        string  `json:"name"`
	Probability float64 `json:"probability"`
	Tier        string  `json:"tier"`
}

// Job is one triage job of GET /api/v1/jobs.
type Job struct {
	StudyUID  string `json:"study_uid"`
	Version   int64  `json:"version"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
	Owner     string `json:"owner"`
	LastError string `json:"last_error"`
}

// JobsAnswer is the answer of GET /api/v1/jobs.
type JobsAnswer struct {
	Counts map[string]int `json:"counts"`
	Queue  *struct {
		Length           int64   `json:"length"`
		Pending          int64   `json:"pending"`
		OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	} `json:"queue"`
	QueueError string `json:"queue_error"`
	Jobs       []Job  `json:"jobs"`
}

// Job returns the job of study, and whether it is listed.
func (a *JobsAnswer) Job(study string) (Job, bool) {
	for _, j := range a.Jobs {
		if j.StudyUID == study {
			return j, true
		}
	}
	return Job{}, false
}

// Findings is the answer of GET /api/v1/studies/{study}/findings.
type Findings struct {
	StudyUID string          `json:"study_uid"`
	Tier     string          `json:"tier"`
	AI       string          `json:"ai"`
	Result   json.RawMessage `json:"result"`
	MaskURL  string          `json:"mask_url"`
	Job      *Job            `json:"job"`
}

func (a *API) http() *http.Client {
	if a.HTTP != nil {
		return a.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// get GETs path (under Base), with accept as the Accept header unless
// it is "", and returns the body and headers of a 200 answer; any other
// status is an *HTTPError.
func (a *API) get(ctx context.Context, path, accept string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.Base+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := a.http().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, &HTTPError{"GET", a.Base + path, resp.StatusCode, string(b)}
	}
	return b, resp.Header, nil
}

// GetJSON GETs path (under Base) and decodes a 200 answer into out; any
// other status is an *HTTPError.
func (a *API) GetJSON(ctx context.Context, path string, out any) error {
	b, _, err := a.get(ctx, path, "application/json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("GET %s: %w: %.300s", a.Base+path, err, b)
	}
	return nil
}

// Worklist returns the open and claimed items in worklist order (the
// first 500).
func (a *API) Worklist(ctx context.Context) ([]WorklistItem, error) {
	var page struct {
		Items []WorklistItem `json:"items"`
	}
	err := a.GetJSON(ctx, "/api/v1/worklist?limit=500", &page)
	return page.Items, err
}

// Jobs returns GET /api/v1/jobs?limit=1000.
func (a *API) Jobs(ctx context.Context) (*JobsAnswer, error) {
	var ans JobsAnswer
	if err := a.GetJSON(ctx, "/api/v1/jobs?limit=1000", &ans); err != nil {
		return nil, err
	}
	return &ans, nil
}

// Findings returns GET /api/v1/studies/{study}/findings; a 404 is an
// *HTTPError with Status 404.
func (a *API) Findings(ctx context.Context, study string) (*Findings, error) {
	var f Findings
	if err := a.GetJSON(ctx, "/api/v1/studies/"+url.PathEscape(study)+"/findings", &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// Redis.

// RedisServerPath returns RADTRIAGE_TEST_REDIS_SERVER, else redis-server
// on PATH.
func RedisServerPath() (string, error) {
	if p := os.Getenv("RADTRIAGE_TEST_REDIS_SERVER"); p != "" {
		return p, nil
	}
	return exec.LookPath("redis-server")
}

// RedisServer is a private redis-server on a loopback port, without
// persistence: stopped and started again, it is empty.
type RedisServer struct {
	Bin  string
	Port int
	Dir  string // working dir and logs

	mu     sync.Mutex
	proc   *Process
	starts int
}

// StartRedis starts redis-server from bin on a free port, its logs in dir,
// and waits until it answers PING.
func StartRedis(ctx context.Context, bin, dir string) (*RedisServer, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &RedisServer{Bin: bin, Port: port, Dir: dir}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// URL is redis://127.0.0.1:PORT/0.
func (r *RedisServer) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(r.Port) + "/0" }

// Start starts the server (again, empty) on its port and waits until it
// answers PING. It is an error when it runs already.
func (r *RedisServer) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		return errors.New("e2e: redis-server runs already")
	}
	r.starts++
	args := []string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.Dir}
	p, err := Start("redis-server", r.Bin, args, nil, r.Port, filepath.Join(r.Dir, fmt.Sprintf("redis-%d.log", r.starts)))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := pingRedis(ctx, r.Port)
		if err == nil {
			r.proc = p
			return nil
		}
		if exited, werr := p.Exited(); exited {
			return fmt.Errorf("redis-server exited (%v); log tail:\n%s", werr, p.LogTail(20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Kill()
			return fmt.Errorf("redis-server on port %d does not answer PING: %w; log tail:\n%s", r.Port, err, p.LogTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server (SIGTERM, then SIGKILL) and waits until its port
// refuses connections; its data is gone.
func (r *RedisServer) Stop() error {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	err := p.Stop(10 * time.Second)
	for range 100 {
		c, derr := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(r.Port), 100*time.Millisecond)
		if derr != nil {
			return err
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	return errors.Join(err, fmt.Errorf("port %d still accepts connections after redis-server stopped", r.Port))
}

// LogTail returns the last n lines of the running (or last) server's log.
func (r *RedisServer) LogTail(n int) string {
	p := filepath.Join(r.Dir, fmt.Sprintf("redis-%d.log", r.starts))
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pingRedis sends an inline PING and wants +PONG.
func pingRedis(ctx context.Context, port int) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// RedisKeyCount returns how many keys the Redis at redisURL holds under
// prefix (all keys when prefix is "").
func RedisKeyCount(ctx context.Context, redisURL, prefix string) (int, error) {
	n := 0
	err := scanRedis(ctx, redisURL, prefix, func(c *redis.Client, keys []string) error {
		n += len(keys)
		return nil
	})
	return n, err
}

// DeleteRedisPrefix deletes every key under prefix (not empty) in the
// Redis at redisURL: the cleanup of a test that used a shared Redis under
// its own prefix.
func DeleteRedisPrefix(ctx context.Context, redisURL, prefix string) error {
	if prefix == "" {
		return errors.New("e2e: DeleteRedisPrefix needs a prefix")
	}
	return scanRedis(ctx, redisURL, prefix, func(c *redis.Client, keys []string) error {
		return c.Unlink(ctx, keys...).Err()
	})
}

func scanRedis(ctx context.Context, redisURL, prefix string, fn func(*redis.Client, []string) error) error {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	c := redis.NewClient(opts)
	defer c.Close()
	pattern := "*"
	if prefix != "" {
		pattern = globEscape(prefix) + "*"
	}
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 500).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := fn(c, keys); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// globEscape escapes the glob characters of Redis' MATCH patterns.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(s)
}

// TCP proxy.

// TCPProxy forwards loopback connections to a target address (in front of
// PostgreSQL) and can cut them: Cut closes every open connection and
// refuses new ones (accepted and closed at once) until Restore.
type TCPProxy struct {
	Addr   string // 127.0.0.1:PORT
	target string
	ln     net.Listener

	mu       sync.Mutex
	cut      bool
	closed   bool
	conns    map[net.Conn]struct{}
	accepted int
	refused  int
	wg       sync.WaitGroup
}

// StartTCPProxy listens on a free loopback port and forwards to target
// (host:port).
func StartTCPProxy(target string) (*TCPProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &TCPProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut || p.closed {
			p.refused++
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.accepted++
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *TCPProxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer p.drop(c)
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.cut || p.closed {
		p.mu.Unlock()
		up.Close()
		return
	}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	defer p.drop(up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done // one side ended: end both
}

func (p *TCPProxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Cut closes every connection through the proxy and refuses new ones
// until Restore: to its clients the database is gone.
func (p *TCPProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore forwards new connections again.
func (p *TCPProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Counts returns how many connections were forwarded and how many were
// refused while cut.
func (p *TCPProxy) Counts() (accepted, refused int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted, p.refused
}

// Close stops listening, closes every connection and waits for the
// forwarding goroutines.
func (p *TCPProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// ProxiedURL returns databaseURL with its host:port replaced by addr.
func ProxiedURL(databaseURL, addr string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", fmt.Errorf("database URL %s has no host", u.Redacted())
	}
	u.Host = addr
	return u.String(), nil
}

// DatabaseAddr returns the host:port of a postgres:// URL (port 5432 when
// absent).
func DatabaseAddr(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", err
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("database URL %s has no host", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}
