package dicomio

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// Media types of DICOMweb bodies (PS3.18 §8.7).
const (
	MediaTypeDICOM       = "application/dicom"
	MediaTypeDICOMJSON   = "application/dicom+json"
	MediaTypeOctetStream = "application/octet-stream"
	MediaTypeMultipart   = "multipart/related"
)

// maxBoundaryLen bounds a multipart boundary. RFC 2046 §5.1.1 says 70
// characters, but Orthanc's DICOMweb client sends "<uuid>-<uuid>" (73), so
// radtriage accepts longer ones up to a bound that keeps the reader's
// look-ahead small.
const maxBoundaryLen = 256

// ErrNoBoundary reports a multipart/related Content-Type without a usable
// boundary parameter: the body cannot be split (HTTP 400).
var ErrNoBoundary = errors.New("multipart/related Content-Type has no valid boundary parameter")

// MediaTypeError reports a request body whose media type radtriage does
// not accept: not multipart/related, or multipart/related of a root type
// other than application/dicom (HTTP 415).
type MediaTypeError struct {
	MediaType string // the request's media type, as sent
	Type      string // its "type" parameter, if any
}

func (e *MediaTypeError) Error() string {
	if e.MediaType != MediaTypeMultipart {
		return fmt.Sprintf("unsupported media type %q: expected multipart/related; type=%q", e.MediaType, MediaTypeDICOM)
	}
	return fmt.Sprintf("unsupported multipart/related type %q: expected %q", e.Type, MediaTypeDICOM)
}

// MultipartError reports a multipart body that breaks: a missing or
// malformed boundary line, bad part headers, or a body that ends inside a
// part. Err is the underlying cause (for a body cut by a size limit, a
// *http.MaxBytesError that callers can find with errors.As).
type MultipartError struct {
	Err error
}

func (e *MultipartError) Error() string { return "malformed multipart body: " + e.Err.Error() }
func (e *MultipartError) Unwrap() error { return e.Err }

// multipartBufSize is the read buffer under a multipart body.
const multipartBufSize = 256 << 10

// MultipartReader reads the parts of a DICOMweb multipart/related body one
// at a time, without buffering them: each Part is a reader on the body
// itself, valid until the next call to NextPart.
type MultipartReader struct {
	mr       *multipart.Reader
	rootType string // the "type" parameter; "" when absent
	cur      *multipart.Part
	err      error // sticky
}

// NewMultipartReader checks contentType (the request's Content-Type) and
// returns a reader over body. It accepts multipart/related with
// type="application/dicom", or with no type parameter (each part must then
// say application/dicom itself). Other media types give a *MediaTypeError;
// a missing, empty or over-long (more than 256 characters) boundary gives
// ErrNoBoundary.
func NewMultipartReader(body io.Reader, contentType string) (*MultipartReader, error) {
	mediaType, params, err := ParseMediaType(contentType)
	if err != nil {
		if contentType == "" {
			return nil, &MediaTypeError{MediaType: ""}
		}
		// A Content-Type we cannot parse at all: a malformed multipart
		// header when it names multipart/related, else unsupported.
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), MediaTypeMultipart) {
			return nil, fmt.Errorf("%w: %v", ErrNoBoundary, err)
		}
		return nil, &MediaTypeError{MediaType: contentType}
	}
	if mediaType != MediaTypeMultipart {
		return nil, &MediaTypeError{MediaType: mediaType}
	}
	typ := strings.ToLower(strings.TrimSpace(params["type"]))
	if typ != "" && typ != MediaTypeDICOM {
		return nil, &MediaTypeError{MediaType: mediaType, Type: params["type"]}
	}
	boundary := params["boundary"]
	if boundary == "" || len(boundary) > maxBoundaryLen {
		return nil, ErrNoBoundary
	}
	// mime/multipart reads through a 4 KiB bufio.Reader unless it is given
	// a larger one, which it then uses as is: with 4 KiB, a 512 KiB CT
	// slice costs ~130 read and ~130 write system calls on its way to disk.
	br := bufio.NewReaderSize(body, multipartBufSize)
	return &MultipartReader{mr: multipart.NewReader(br, boundary), rootType: typ}, nil
}

// ParseMediaType parses a Content-Type or Accept entry as
// mime.ParseMediaType does (media type and parameter names lower case),
// and, where that fails, leniently: DICOMweb clients commonly send
// type=application/dicom without the quotes RFC 2045 asks for around a
// "/". The lenient form splits on ";" outside quotes and "=" and strips
// one pair of quotes.
func ParseMediaType(v string) (mediaType string, params map[string]string, err error) {
	mediaType, params, err = mime.ParseMediaType(v)
	if err == nil {
		return mediaType, params, nil
	}
	segs := splitUnquoted(v, ';')
	mediaType = strings.ToLower(strings.TrimSpace(segs[0]))
	if i := strings.IndexByte(mediaType, '/'); i <= 0 || i == len(mediaType)-1 || strings.ContainsAny(mediaType, " \t\"=,") {
		return "", nil, err
	}
	params = make(map[string]string, len(segs)-1)
	for _, seg := range segs[1:] {
		seg = strings.TrimSpace(seg)
		if seg == "" {
			continue
		}
		k, val, ok := strings.Cut(seg, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return "", nil, err
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = strings.ReplaceAll(val[1:len(val)-1], `\"`, `"`)
		}
		if _, dup := params[k]; dup {
			return "", nil, err
		}
		params[k] = val
	}
	return mediaType, params, nil
}

// SplitAccept splits an Accept header into its media ranges: on commas
// outside double-quoted parameter values (a transfer-syntax or type value
// may be quoted). Each entry parses with ParseMediaType.
func SplitAccept(h string) []string { return splitUnquoted(h, ',') }

// splitUnquoted splits s on sep outside double quotes.
func splitUnquoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case sep:
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// Part is one part of a DICOMweb multipart body. Read it as an io.Reader.
type Part struct {
	// ContentType is the part's media type (lower case, without
	// parameters); the request's type parameter when the part has none.
	ContentType string
	// TransferSyntax is the part's transfer-syntax parameter, if any.
	TransferSyntax string
	// Location is the part's Content-Location header, if any.
	Location string
	// Refusal is empty for an application/dicom part; otherwise it says
	// why the part cannot be stored (wrong media type, unsupported
	// Content-Transfer-Encoding). The caller refuses that part alone.
	Refusal string

	r io.Reader
}

func (p *Part) Read(b []byte) (int, error) { return p.r.Read(b) }

// NextPart returns the next part, or io.EOF after the closing boundary.
// Any other error is a *MultipartError and ends the body; the parts read
// before it are unaffected.
func (m *MultipartReader) NextPart() (*Part, error) {
	if m.err != nil {
		return nil, m.err
	}
	if m.cur != nil {
		m.cur.Close() // drains the previous part
		m.cur = nil
	}
	p, err := m.mr.NextRawPart()
	if err != nil {
		if err == io.EOF {
			m.err = io.EOF
		} else {
			m.err = &MultipartError{Err: err}
		}
		return nil, m.err
	}
	m.cur = p
	part := &Part{r: &partReader{p: p, m: m}, Location: p.Header.Get("Content-Location")}
	part.ContentType, part.TransferSyntax, part.Refusal = m.classify(p.Header)
	return part, nil
}

// Err returns the error that broke the body (a *MultipartError), if any,
// including one met while a caller was reading a part.
func (m *MultipartReader) Err() error {
	if m.err == io.EOF {
		return nil
	}
	return m.err
}

func (m *MultipartReader) classify(h textproto.MIMEHeader) (mediaType, ts, refusal string) {
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "", "binary", "8bit", "7bit":
	default:
		return "", "", fmt.Sprintf("unsupported Content-Transfer-Encoding %q (send binary)", cte)
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		if m.rootType == "" {
			return "", "", "part has no Content-Type and the request names no type parameter"
		}
		return m.rootType, "", ""
	}
	mt, params, err := ParseMediaType(ct)
	if err != nil {
		return "", "", fmt.Sprintf("part Content-Type %q cannot be parsed: %v", ct, err)
	}
	if mt != MediaTypeDICOM {
		return mt, "", fmt.Sprintf("part media type %q is not %s", mt, MediaTypeDICOM)
	}
	return mt, params["transfer-syntax"], ""
}

// partReader turns a failure of the body inside a part into a
// *MultipartError, so a caller can tell a broken body from a bad instance.
type partReader struct {
	p *multipart.Part
	m *MultipartReader
}

func (r *partReader) Read(b []byte) (int, error) {
	n, err := r.p.Read(b)
	if err != nil && err != io.EOF {
		var me *MultipartError
		if !errors.As(err, &me) {
			err = &MultipartError{Err: err}
		}
		if r.m.err == nil {
			r.m.err = err
		}
	}
	return n, err
}

// MultipartWriter writes a multipart/related body of one root type, as
// WADO-RS responses and STOW-RS clients need.
type MultipartWriter struct {
	mw       *multipart.Writer
	rootType string
}

// NewMultipartWriter returns a writer of multipart/related parts of
// rootType (for example application/dicom) to w, with a random boundary.
func NewMultipartWriter(w io.Writer, rootType string) *MultipartWriter {
	mw := multipart.NewWriter(w)
	var b [16]byte
	rand.Read(b[:])
	// Token characters only, so the boundary never needs quoting.
	if err := mw.SetBoundary("radtriage-" + hex.EncodeToString(b[:])); err != nil {
		panic("dicomio: invalid multipart boundary")
	}
	return &MultipartWriter{mw: mw, rootType: rootType}
}

// ContentType is the Content-Type header value for the body:
// multipart/related; type="<root type>"; boundary=<boundary>.
func (m *MultipartWriter) ContentType() string {
	return fmt.Sprintf("%s; type=%q; boundary=%s", MediaTypeMultipart, m.rootType, m.mw.Boundary())
}

// Boundary returns the boundary.
func (m *MultipartWriter) Boundary() string { return m.mw.Boundary() }

// CreatePart starts a part with the given Content-Type (and, when not
// empty, Content-Location) and returns a writer for its body.
func (m *MultipartWriter) CreatePart(contentType, location string) (io.Writer, error) {
	h := make(textproto.MIMEHeader, 2)
	h.Set("Content-Type", contentType)
	if location != "" {
		h.Set("Content-Location", location)
	}
	return m.mw.CreatePart(h)
}

// Close writes the closing boundary.
func (m *MultipartWriter) Close() error { return m.mw.Close() }

// PartContentType formats a part media type with an optional
// transfer-syntax parameter: application/dicom; transfer-syntax=1.2.840.10008.1.2.1.
func PartContentType(mediaType, transferSyntax string) string {
	if transferSyntax == "" {
		return mediaType
	}
	return mediaType + "; transfer-syntax=" + transferSyntax
}
