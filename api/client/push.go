package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults of the Client fields.
const (
	DefaultConcurrency   = 4
	DefaultMaxBatchBytes = 64 << 20
	DefaultRetries       = 5
	DefaultBackoff       = 500 * time.Millisecond
	maxBackoff           = 30 * time.Second
	maxRetryAfter        = 5 * time.Minute
)

// Client sends instances to a STOW-RS service. The zero value of each
// field but URL selects its default.
type Client struct {
	// URL is the DICOMweb base, e.g. http://host:8080/dicomweb; requests
	// go to URL + "/studies".
	URL string
	// HTTPClient defaults to a client without a total timeout (a batch of
	// 64 MiB on a slow link takes long); cancel ctx to stop.
	HTTPClient *http.Client
	// Concurrency bounds the requests in flight.
	Concurrency int
	// MaxBatchBytes bounds the file bytes of one request; a larger file
	// goes alone.
	MaxBatchBytes int64
	// Retries is the number of retries after the first attempt of a
	// request that failed on the network, with 5xx or with 429.
	// Negative: none.
	Retries int
	// Backoff is the first retry's delay; it doubles on each retry (with
	// jitter, capped at 30s). A Retry-After header takes precedence.
	Backoff time.Duration
	// Progress, when set, is called with the number of file bytes just
	// streamed (negative when a request is retried and its bytes will be
	// sent again). Calls may come from several goroutines.
	Progress func(delta int64)
}

// Summary is what Push did, one Result per file sent.
type Summary struct {
	Results []Result // in path order
	Skipped []Skipped
}

// Count returns the number of results with status s.
func (s *Summary) Count(st Status) int {
	n := 0
	for _, r := range s.Results {
		if r.Status == st {
			n++
		}
	}
	return n
}

// OK reports that nothing failed.
func (s *Summary) OK() bool { return s.Count(Failed) == 0 }

// Print writes the counts, then each failure and warning with its file and
// reason.
func (s *Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "%d stored, %d stored with warnings, %d failed, %d skipped\n",
		s.Count(Stored), s.Count(Warned), s.Count(Failed), len(s.Skipped))
	for _, st := range []Status{Failed, Warned} {
		for _, r := range s.Results {
			if r.Status == st {
				fmt.Fprintf(w, "  %-7s %s (%s): %s\n", st, r.Path, r.SOPInstanceUID, r.Reason)
			}
		}
	}
	for _, sk := range s.Skipped {
		fmt.Fprintf(w, "  skipped %s: %s\n", sk.Path, sk.Reason)
	}
}

// Batches splits the studies of inv into request bodies of at most max
// file bytes (a larger file makes a batch of its own). A batch never mixes
// studies, and never holds two files with the same SOP Instance UID: the
// response names instances by that UID, so each file's verdict must be
// unambiguous.
func Batches(inv *Inventory, max int64) [][]File {
	var out [][]File
	for _, s := range inv.Studies {
		var cur []File
		var size int64
		sops := map[string]bool{}
		for _, f := range s.Files {
			if len(cur) > 0 && (size+f.Size > max || sops[f.SOPInstanceUID]) {
				out = append(out, cur)
				cur, size = nil, 0
				clear(sops)
			}
			cur = append(cur, f)
			size += f.Size
			sops[f.SOPInstanceUID] = true
		}
		if len(cur) > 0 {
			out = append(out, cur)
		}
	}
	return out
}

// Push sends the files of inv, read from fsys, and reports each one. It
// returns an error only when ctx ends; failures of requests or instances
// are in the Summary.
func (c *Client) Push(ctx context.Context, fsys fs.FS, inv *Inventory) (*Summary, error) {
	if c.URL == "" {
		return nil, errors.New("client: no URL")
	}
	conc := orDefault(c.Concurrency, DefaultConcurrency)
	maxBatch := orDefault(c.MaxBatchBytes, DefaultMaxBatchBytes)
	sum := &Summary{Skipped: inv.Skipped}
	var mu sync.Mutex
	var g errgroup.Group // batches never fail the group: failures are results
	g.SetLimit(conc)
	for _, batch := range Batches(inv, maxBatch) {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			res := c.send(ctx, fsys, batch)
			mu.Lock()
			sum.Results = append(sum.Results, res...)
			mu.Unlock()
			return nil
		})
	}
	g.Wait()
	slices.SortFunc(sum.Results, func(a, b Result) int { return strings.Compare(a.Path, b.Path) })
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	return sum, nil
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// send posts one batch, with retries, and returns one Result per file.
func (c *Client) send(ctx context.Context, fsys fs.FS, batch []File) []Result {
	retries := c.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	backoff := orDefault(c.Backoff, DefaultBackoff)
	var lastErr error
	for attempt := 0; ; attempt++ {
		resp, sent, err := c.post(ctx, fsys, batch)
		if err == nil {
			return resp.apply(batch)
		}
		lastErr = err
		var re *retryable
		if !errors.As(err, &re) || attempt >= retries || ctx.Err() != nil {
			break
		}
		if c.Progress != nil && sent != 0 {
			c.Progress(-sent)
		}
		wait := re.after
		if wait <= 0 {
			wait = backoffDelay(backoff, attempt)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if ctx.Err() != nil {
		lastErr = ctx.Err()
	}
	out := make([]Result, len(batch))
	for i, f := range batch {
		out[i] = Result{Path: f.Path, SOPInstanceUID: f.SOPInstanceUID, Status: Failed, Reason: lastErr.Error()}
	}
	return out
}

// backoffDelay is the wait before retry number attempt+1: base doubled
// attempt times, capped at maxBackoff, with jitter in [d/2, d].
func backoffDelay(base time.Duration, attempt int) time.Duration {
	d := maxBackoff
	if attempt < 32 && base<<attempt < maxBackoff && base<<attempt > 0 {
		d = base << attempt
	}
	return d/2 + rand.N(d/2+1)
}

// retryable wraps an error worth another attempt; after, when positive, is
// the server's Retry-After.
type retryable struct {
	err   error
	after time.Duration
}

func (e *retryable) Error() string { return e.err.Error() }
func (e *retryable) Unwrap() error { return e.err }

// post makes one attempt: it streams the batch as multipart/related and
// parses the answer. It returns the file bytes it streamed.
func (c *Client) post(ctx context.Context, fsys fs.FS, batch []File) (*Response, int64, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	var (
		sent      int64
		writeErr  error
		writeDone = make(chan struct{})
	)
	go func() {
		defer close(writeDone)
		writeErr = c.writeParts(mw, fsys, batch, &sent)
		pw.CloseWithError(writeErr)
	}()
	// finish stops the writer (the server may answer before it read the
	// whole body) and waits for it; afterwards sent and writeErr are final.
	finish := func() {
		pr.CloseWithError(errRequestDone)
		<-writeDone
	}

	url := strings.TrimRight(c.URL, "/") + "/studies"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	if err != nil {
		finish()
		return nil, 0, err
	}
	req.Header.Set("Content-Type", mime.FormatMediaType("multipart/related",
		map[string]string{"type": "application/dicom", "boundary": mw.Boundary()}))
	req.Header.Set("Accept", "application/dicom+json")
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		finish()
		var local *localError
		switch {
		case ctx.Err() != nil:
			return nil, sent, ctx.Err()
		case errors.As(writeErr, &local):
			return nil, sent, local // a file could not be read: retrying will not help
		}
		return nil, sent, &retryable{err: fmt.Errorf("POST %s: %w", url, err)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.Body.Close()
	finish()
	if err != nil {
		return nil, sent, &retryable{err: fmt.Errorf("POST %s: reading the response: %w", url, err)}
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK, code == http.StatusAccepted, code == http.StatusConflict:
		// 200 all stored, 202 some failed or warned, 409 none stored: all
		// carry the response data set.
		r, err := ParseResponse(body)
		if err != nil {
			return nil, sent, fmt.Errorf("POST %s: HTTP %d: %w", url, code, err)
		}
		return r, sent, nil
	case code >= 500 || code == http.StatusTooManyRequests:
		return nil, sent, &retryable{err: httpError(url, resp, body), after: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		return nil, sent, httpError(url, resp, body)
	}
}

var errRequestDone = errors.New("request finished")

func httpError(url string, resp *http.Response, body []byte) error {
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		return fmt.Errorf("POST %s: HTTP %s", url, resp.Status)
	}
	return fmt.Errorf("POST %s: HTTP %s: %s", url, resp.Status, msg)
}

// retryAfter parses a Retry-After value (seconds or an HTTP date); 0 when
// absent or unreadable. The wait is capped at five minutes.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// localError is a failure to read a file of the batch.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// writeParts streams each file of batch as one application/dicom part.
func (c *Client) writeParts(mw *multipart.Writer, fsys fs.FS, batch []File, sent *int64) error {
	for _, f := range batch {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "application/dicom")
		w, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		n, err := c.copyFile(w, fsys, f)
		*sent += n
		if err != nil {
			return err
		}
	}
	return mw.Close()
}

func (c *Client) copyFile(w io.Writer, fsys fs.FS, f File) (int64, error) {
	fh, err := fsys.Open(f.Path)
	if err != nil {
		return 0, &localError{err}
	}
	defer fh.Close()
	var r io.Reader = fh
	if c.Progress != nil {
		r = &progressReader{r: fh, report: c.Progress}
	}
	n, err := io.Copy(w, r)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return n, &localError{fmt.Errorf("%s: %w", f.Path, err)}
		}
		return n, err
	}
	if n != f.Size {
		return n, &localError{fmt.Errorf("%s: changed while sending (%d bytes, was %d)", f.Path, n, f.Size)}
	}
	return n, nil
}

type progressReader struct {
	r      io.Reader
	report func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.report(int64(n))
	}
	return n, err
}
