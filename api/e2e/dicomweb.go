package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// Client speaks DICOMweb to one server root (…/dicomweb or …/dicom-web).
type Client struct {
	Root string // no trailing slash
	HTTP *http.Client
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// StowResult is a STOW-RS answer.
type StowResult struct {
	Status   int
	Stored   []string // ReferencedSOPSequence SOP Instance UIDs
	Failed   []string // FailedSOPSequence SOP Instance UIDs
	Warnings []string // ReferencedSOPSequence items that carry a WarningReason
	Body     []byte
	Header   http.Header
}

// Boundary returns a random multipart boundary.
func Boundary() string {
	var b [12]byte
	rand.Read(b[:])
	return "e2e-" + hex.EncodeToString(b[:])
}

// StowContentType is the request media type for a boundary.
func StowContentType(boundary string) string {
	return `multipart/related; type="application/dicom"; boundary=` + boundary
}

// WriteParts writes a multipart/related body with one application/dicom
// part per item of parts.
func WriteParts(w io.Writer, boundary string, parts [][]byte) error {
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(boundary); err != nil {
		return err
	}
	for _, p := range parts {
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		if err != nil {
			return err
		}
		if _, err := pw.Write(p); err != nil {
			return err
		}
	}
	return mw.Close()
}

// Store sends instances in one STOW-RS request to Root/studies.
func (c *Client) Store(ctx context.Context, parts [][]byte) (*StowResult, error) {
	var buf bytes.Buffer
	b := Boundary()
	if err := WriteParts(&buf, b, parts); err != nil {
		return nil, err
	}
	return c.StoreBody(ctx, StowContentType(b), int64(buf.Len()), &buf)
}

// StoreStream sends a STOW-RS request whose parts come from next, one at
// a time (nil ends), without holding the body in memory.
func (c *Client) StoreStream(ctx context.Context, next func() ([]byte, error)) (*StowResult, error) {
	pr, pw := io.Pipe()
	b := Boundary()
	go func() {
		mw := multipart.NewWriter(pw)
		mw.SetBoundary(b)
		for {
			p, err := next()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if p == nil {
				break
			}
			w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
			if err == nil {
				_, err = w.Write(p)
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	res, err := c.StoreBody(ctx, StowContentType(b), -1, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	return res, err
}

// StoreBody sends a raw STOW-RS body (size -1: chunked).
func (c *Client) StoreBody(ctx context.Context, contentType string, size int64, body io.Reader) (*StowResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Root+"/studies", body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("STOW-RS: read answer: %w", err)
	}
	res := &StowResult{Status: resp.StatusCode, Body: rb, Header: resp.Header}
	if len(bytes.TrimSpace(rb)) == 0 {
		return res, nil
	}
	ds, err := decodeDataset(rb)
	if err != nil {
		return res, fmt.Errorf("STOW-RS: HTTP %d: answer is not a DICOM JSON dataset: %w: %.300s", resp.StatusCode, err, rb)
	}
	for _, item := range ds.Items("00081199") {
		uid := item.String("00081155")
		res.Stored = append(res.Stored, uid)
		if _, ok := item["00081196"]; ok {
			res.Warnings = append(res.Warnings, uid)
		}
	}
	for _, item := range ds.Items("00081198") {
		res.Failed = append(res.Failed, item.String("00081155"))
	}
	return res, nil
}

// Dataset is one DICOM JSON (PS3.18 F.2) object.
type Dataset map[string]Attr

// Attr is one DICOM JSON attribute.
type Attr struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value,omitempty"`
}

// decodeDataset accepts an object or a one-element array of objects.
func decodeDataset(b []byte) (Dataset, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var arr []Dataset
		if err := json.Unmarshal(b, &arr); err != nil {
			return nil, err
		}
		if len(arr) != 1 {
			return nil, fmt.Errorf("%d datasets, want 1", len(arr))
		}
		return arr[0], nil
	}
	var ds Dataset
	err := json.Unmarshal(b, &ds)
	return ds, err
}

// String returns the first value of tag as a string ("" if absent).
func (d Dataset) String(tag string) string {
	a, ok := d[tag]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(a.Value[0], &s) == nil {
		return s
	}
	return strings.Trim(string(a.Value[0]), `"`)
}

// Int returns the first value of tag as an int (-1 if absent or not a number).
func (d Dataset) Int(tag string) int {
	a, ok := d[tag]
	if !ok || len(a.Value) == 0 {
		return -1
	}
	var n json.Number
	if json.Unmarshal(a.Value[0], &n) == nil {
		if v, err := n.Int64(); err == nil {
			return int(v)
		}
	}
	var s string
	if json.Unmarshal(a.Value[0], &s) == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return v
		}
	}
	return -1
}

// Items returns the items of a sequence attribute.
func (d Dataset) Items(tag string) []Dataset {
	a, ok := d[tag]
	if !ok {
		return nil
	}
	var out []Dataset
	for _, raw := range a.Value {
		var item Dataset
		if json.Unmarshal(raw, &item) == nil {
			out = append(out, item)
		}
	}
	return out
}

// Query runs a QIDO-RS GET of path (e.g. "/studies?limit=100") and returns
// the datasets (an empty answer, 204, is no datasets).
func (c *Client) Query(ctx context.Context, path string) ([]Dataset, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Root+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPError{"GET", c.Root + path, resp.StatusCode, string(b)}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var out []Dataset
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("QIDO-RS %s: %w: %.300s", path, err, b)
	}
	return out, nil
}

// Retrieve runs a WADO-RS GET of path (e.g. "/studies/1.2.3") asking for
// multipart/related application/dicom and returns the parts' bodies.
func (c *Client) Retrieve(ctx context.Context, path string) ([][]byte, error) {
	var out [][]byte
	err := c.RetrieveEach(ctx, path, func(b []byte) error {
		out = append(out, b)
		return nil
	})
	return out, err
}

// RetrieveEach is Retrieve handing each part to fn as it arrives.
func (c *Client) RetrieveEach(ctx context.Context, path string, fn func([]byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Root+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", `multipart/related; type="application/dicom"`)
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &HTTPError{"GET", c.Root + path, resp.StatusCode, string(b)}
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return fmt.Errorf("WADO-RS %s: Content-Type %q: %w", path, resp.Header.Get("Content-Type"), err)
	}
	if mt != "multipart/related" || params["boundary"] == "" {
		return fmt.Errorf("WADO-RS %s: Content-Type %q, want multipart/related with a boundary", path, resp.Header.Get("Content-Type"))
	}
	// 256 KiB reads: with mime/multipart's default 4 KiB the client's own
	// parsing dominates a whole-study latency measurement.
	mr := multipart.NewReader(bufio.NewReaderSize(resp.Body, 256<<10), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("WADO-RS %s: %w", path, err)
		}
		if ct := p.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/dicom") {
			return fmt.Errorf("WADO-RS %s: part Content-Type %q", path, ct)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return fmt.Errorf("WADO-RS %s: %w", path, err)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
}
