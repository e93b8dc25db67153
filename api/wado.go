package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/store"
)

// WADO-RS (PS3.18 §10.4).
//
//   - GET /studies/{study}[/series/{series}[/instances/{sop}]]: the stored
//     instances, byte for byte, as multipart/related; type="application/dicom",
//     one part per instance with Content-Type application/dicom;
//     transfer-syntax=<stored syntax> and Content-Location. Accepted:
//     no Accept, */*, multipart/related with type application/dicom (or
//     none) and transfer-syntax absent, "*" or the stored syntax of every
//     instance; at instance level also a bare application/dicom (answered
//     with the single file). radtriage does not transcode, so any other
//     transfer syntax or type is 406 (PS3.18 §8.7.3.5).
//   - .../metadata: application/dicom+json array, one object per instance,
//     bulk data (Pixel Data among it) as BulkDataURI pointing at
//     .../instances/{sop}/bulkdata/{tag}.
//   - .../instances/{sop}/bulkdata/7FE00010: the pixel data value as
//     multipart/related; type="application/octet-stream" (or bare
//     application/octet-stream when that is what the client accepts).
//   - .../instances/{sop}/frames/{list}: 1-based comma list; native pixel
//     data only, multipart/related; type="application/octet-stream" with
//     one part per frame (bare application/octet-stream for one frame when
//     that is all the client accepts). Frames of encapsulated (compressed)
//     pixel data are decoded (dicomio.DecodeFrames) and served the same
//     way, colour samples interleaved; a syntax this build cannot decode
//     (JPEG 2000 or JPEG-LS without the cgo codecs, MPEG, ...) is 406. A
//     frame number beyond NumberOfFrames is 404; 0 or garbage is 400.
//
// UIDs in the path are validated before any lookup (400); unknown
// resources are 404.

// pathUIDs validates the UIDs of the path and returns the query they make.
func pathUIDs(c *gin.Context) (store.Query, error) {
	var q store.Query
	for _, p := range []struct{ name, label string }{{"study", "Study"}, {"series", "Series"}, {"sop", "SOP"}} {
		uid := c.Param(p.name)
		if uid == "" {
			continue
		}
		if err := dicomio.ValidateUID(uid); err != nil {
			return q, errorf(http.StatusBadRequest, "invalid %s Instance UID in path: %v", p.label, err)
		}
		switch p.name {
		case "study":
			q.StudyInstanceUIDs = []string{uid}
		case "series":
			q.SeriesInstanceUIDs = []string{uid}
		case "sop":
			q.SOPInstanceUIDs = []string{uid}
		}
	}
	return q, nil
}

// findInstances returns the instances the path names, or a 404 error.
func (s *server) findInstances(c *gin.Context) ([]store.InstanceRecord, error) {
	q, err := pathUIDs(c)
	if err != nil {
		return nil, err
	}
	recs, err := s.archive.FindInstances(c.Request.Context(), q)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errorf(http.StatusNotFound, "%s: no such resource", c.Request.URL.EscapedPath())
	}
	return recs, nil
}

func recURL(base string, r *store.InstanceRecord) string {
	return instanceURL(base, r.Series.Study.StudyInstanceUID, r.Series.SeriesInstanceUID, r.SOPInstanceUID)
}

func (s *server) retrieve(c *gin.Context) {
	recs, err := s.findInstances(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	var syntaxes []string
	for _, r := range recs {
		syntaxes = append(syntaxes, r.TransferSyntaxUID)
	}
	rep := negotiateInstances(c.GetHeader("Accept"), syntaxes, c.Param("sop") != "")
	if rep == notAcceptable {
		s.abortWithError(c, errorf(http.StatusNotAcceptable,
			"cannot satisfy Accept %q: radtriage serves instances as stored (transfer syntax %s) without transcoding; accept multipart/related; type=\"application/dicom\"; transfer-syntax=*",
			c.GetHeader("Accept"), strings.Join(uniq(syntaxes), ", ")))
		return
	}
	ctx := c.Request.Context()
	base := baseURL(c.Request)

	// Open the first instance before answering so that a failure is still
	// a status code; later failures can only cut the connection.
	first, err := s.archive.Open(ctx, recs[0])
	if err != nil {
		s.abortWithError(c, fmt.Errorf("opening instance %s: %w", recs[0].SOPInstanceUID, err))
		return
	}
	if rep == singleRep {
		defer first.Close()
		c.Header("Content-Type", dicomio.PartContentType(dicomio.MediaTypeDICOM, recs[0].TransferSyntaxUID))
		if recs[0].Size > 0 {
			c.Header("Content-Length", strconv.FormatInt(recs[0].Size, 10))
		}
		c.Status(http.StatusOK)
		if _, err := io.Copy(c.Writer, first); err != nil {
			s.cut(c, "WADO-RS: sending instance", recs[0].SOPInstanceUID, err)
		}
		return
	}

	// The multipart framing (boundaries and part headers) is laid out in
	// memory first, so the body has an exact Content-Length: the response
	// is then not chunked, and net/http hands each file to the connection
	// with sendfile(2) instead of copying it through user space.
	var frame bytes.Buffer
	mw := dicomio.NewMultipartWriter(&frame, dicomio.MediaTypeDICOM)
	heads := make([][]byte, len(recs))
	total := int64(0)
	for i := range recs {
		if _, err := mw.CreatePart(dicomio.PartContentType(dicomio.MediaTypeDICOM, recs[i].TransferSyntaxUID), recURL(base, &recs[i])); err != nil {
			first.Close()
			s.abortWithError(c, err)
			return
		}
		heads[i] = bytes.Clone(frame.Bytes())
		frame.Reset()
		total += int64(len(heads[i])) + recs[i].Size
	}
	if err := mw.Close(); err != nil {
		first.Close()
		s.abortWithError(c, err)
		return
	}
	tail := frame.Bytes()
	total += int64(len(tail))

	c.Header("Content-Type", mw.ContentType())
	c.Header("Content-Length", strconv.FormatInt(total, 10))
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	var w io.Writer = c.Writer
	if u, ok := c.Writer.(interface{ Unwrap() http.ResponseWriter }); ok {
		w = u.Unwrap() // net/http's writer: io.ReaderFrom with sendfile
	}
	for i := range recs {
		rc := first
		if i > 0 {
			rc, err = s.archive.Open(ctx, recs[i])
			if err != nil {
				s.cut(c, "WADO-RS: opening instance", recs[i].SOPInstanceUID, err)
			}
		}
		_, err = w.Write(heads[i])
		if err == nil {
			err = sendExactly(w, rc, recs[i].Size)
		}
		rc.Close()
		if err != nil {
			s.cut(c, "WADO-RS: sending instance", recs[i].SOPInstanceUID, err)
		}
	}
	if _, err := w.Write(tail); err != nil {
		s.cut(c, "WADO-RS: closing multipart body", "", err)
	}
}

// sendExactly copies exactly size bytes of an instance from rc to w, and
// fails (so the connection is cut rather than the declared length broken)
// when the stored file is not the size the index holds.
func sendExactly(w io.Writer, rc io.ReadSeekCloser, size int64) error {
	if f, ok := rc.(interface{ Stat() (os.FileInfo, error) }); ok {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Size() != size {
			return fmt.Errorf("stored file is %d bytes, the index says %d", fi.Size(), size)
		}
	}
	n, err := io.Copy(w, io.LimitReader(rc, size))
	if err == nil && n != size {
		err = fmt.Errorf("sent %d of %d bytes", n, size)
	}
	return err
}

// cut logs a failure in a response already under way and aborts the
// connection, so the client sees a broken body rather than a short one
// that looks complete.
func (s *server) cut(c *gin.Context, msg, sop string, err error) {
	if c.Request.Context().Err() == nil {
		s.log.ErrorContext(c.Request.Context(), msg, "sop_instance_uid", sop, "err", err)
	}
	panic(http.ErrAbortHandler)
}

func uniq(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (s *server) metadata(c *gin.Context) {
	mediaType, ok := negotiateJSON(c.GetHeader("Accept"))
	if !ok {
		s.abortWithError(c, errorf(http.StatusNotAcceptable, "metadata is served as application/dicom+json or application/json only"))
		return
	}
	recs, err := s.findInstances(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	ctx := c.Request.Context()
	base := baseURL(c.Request)
	// Each instance's object is built in a buffer (metadata is small:
	// bulk data is referenced, not inlined), so a failure on the first
	// one is still a status code.
	var buf bytes.Buffer
	for i := range recs {
		buf.Reset()
		if i == 0 {
			buf.WriteByte('[')
		} else {
			buf.WriteByte(',')
		}
		err := s.instanceMetadata(c, &buf, base, &recs[i])
		if err != nil {
			if i == 0 {
				s.abortWithError(c, err)
				return
			}
			s.cut(c, "WADO-RS: metadata", recs[i].SOPInstanceUID, err)
		}
		if i == len(recs)-1 {
			buf.WriteByte(']')
		}
		if i == 0 {
			c.Header("Content-Type", mediaType)
			c.Status(http.StatusOK)
		}
		if _, err := c.Writer.Write(buf.Bytes()); err != nil {
			s.cut(c, "WADO-RS: sending metadata", recs[i].SOPInstanceUID, err)
		}
		if ctx.Err() != nil {
			panic(http.ErrAbortHandler)
		}
	}
}

func (s *server) instanceMetadata(c *gin.Context, w io.Writer, base string, rec *store.InstanceRecord) error {
	rc, err := s.archive.Open(c.Request.Context(), *rec)
	if err != nil {
		return fmt.Errorf("opening instance %s: %w", rec.SOPInstanceUID, err)
	}
	defer rc.Close()
	prefix := recURL(base, rec) + "/bulkdata/"
	bulkURI := func(tag string) string { return prefix + url.PathEscape(tag) }
	if err := dicomio.WriteMetadataJSON(w, rc, rec.Size, bulkURI); err != nil {
		return fmt.Errorf("metadata of instance %s: %w", rec.SOPInstanceUID, err)
	}
	return nil
}

const pixelDataTag = "7FE00010"

func (s *server) bulkdata(c *gin.Context) {
	tag := strings.ToUpper(c.Param("tag"))
	if len(tag) != 8 || !isHex(tag) {
		s.abortWithError(c, errorf(http.StatusBadRequest, "bulk data tag %q: want 8 hex digits", c.Param("tag")))
		return
	}
	recs, err := s.findInstances(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	rec := &recs[0]
	if tag != pixelDataTag || rec.Rows == 0 {
		s.abortWithError(c, errorf(http.StatusNotFound, "instance %s: no bulk data for tag %s (radtriage serves Pixel Data, 7FE00010)", rec.SOPInstanceUID, tag))
		return
	}
	rep := negotiateOctets(c.GetHeader("Accept"), true, false)
	if rep == notAcceptable {
		s.abortWithError(c, errorf(http.StatusNotAcceptable, "bulk data is served as multipart/related; type=\"application/octet-stream\" or application/octet-stream"))
		return
	}
	rc, err := s.archive.Open(c.Request.Context(), *rec)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	defer rc.Close()
	data, err := dicomio.PixelDataBytes(rc, rec.Size)
	if err != nil {
		s.abortWithError(c, fmt.Errorf("pixel data of instance %s: %w", rec.SOPInstanceUID, err))
		return
	}
	ct := dicomio.MediaTypeOctetStream
	if rec.TransferSyntaxUID == explicitVRBigEndian {
		data = littleEndian(data, rec.BitsAllocated)
	}
	if !nativeSyntax(rec.TransferSyntaxUID) {
		ct = dicomio.PartContentType(ct, rec.TransferSyntaxUID)
	}
	s.writeOctets(c, rep, ct, recURL(baseURL(c.Request), rec)+"/bulkdata/"+tag, [][]byte{data})
}

// nativeSyntax reports the uncompressed transfer syntaxes.
func nativeSyntax(ts string) bool {
	switch ts {
	case "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99":
		return true
	}
	return false
}

func (s *server) frames(c *gin.Context) {
	var nums []int
	for _, f := range strings.Split(c.Param("frames"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			s.abortWithError(c, errorf(http.StatusBadRequest, "frame list %q: want 1-based frame numbers separated by commas", c.Param("frames")))
			return
		}
		nums = append(nums, n)
	}
	recs, err := s.findInstances(c)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	rec := &recs[0]
	rep := negotiateOctets(c.GetHeader("Accept"), len(nums) == 1, true)
	if rep == notAcceptable {
		s.abortWithError(c, errorf(http.StatusNotAcceptable,
			"frames are served uncompressed as multipart/related; type=\"application/octet-stream\" (transfer-syntax %s or *), or application/octet-stream for one frame", explicitVRLittleEndian))
		return
	}
	if rec.Rows == 0 {
		s.abortWithError(c, errorf(http.StatusNotFound, "instance %s has no pixel data", rec.SOPInstanceUID))
		return
	}
	rc, err := s.archive.Open(c.Request.Context(), *rec)
	if err != nil {
		s.abortWithError(c, err)
		return
	}
	defer rc.Close()
	var frames [][]byte
	switch {
	case rec.BitsAllocated == 1:
		frames, err = bitFrames(rc, rec, nums)
	case nativeSyntax(rec.TransferSyntaxUID):
		frames, err = dicomio.NativeFrames(rc, rec.Size, nums)
	default:
		frames, err = decodedFrames(rc, rec, nums)
	}
	if err != nil {
		s.abortWithError(c, fmt.Errorf("frames %s of instance %s (transfer syntax %s): %w", c.Param("frames"), rec.SOPInstanceUID, rec.TransferSyntaxUID, err))
		return
	}
	if rec.TransferSyntaxUID == explicitVRBigEndian {
		for i := range frames {
			frames[i] = littleEndian(frames[i], rec.BitsAllocated)
		}
	}
	s.writeOctets(c, rep, dicomio.PartContentType(dicomio.MediaTypeOctetStream, explicitVRLittleEndian), recURL(baseURL(c.Request), rec)+"/frames/"+c.Param("frames"), frames)
}

const explicitVRBigEndian = "1.2.840.10008.1.2.2"

// decodedFrames decodes the given frames of an instance with encapsulated
// (compressed) pixel data into the uncompressed octet-stream form:
// little endian samples in Bits Allocated containers, colour interleaved.
// A syntax this build cannot decode is dicomio.ErrUnsupportedTransferSyntax
// (406).
func decodedFrames(r io.Reader, rec *store.InstanceRecord, nums []int) ([][]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, rec.Size))
	if err != nil {
		return nil, err
	}
	_, px, err := dicomio.DecodeFrames(data, nums)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(nums))
	for i := range out {
		out[i] = px.Frame(i)
	}
	return out, nil
}

// bitFrames cuts 1-bit frames (Bits Allocated 1, one sample per pixel)
// out of the pixel data, which packs them without padding between
// frames; each frame comes back packed from bit 0 of its first byte
// (PS3.5 §8.1.1, PS3.18 §8.7.3.5.2).
func bitFrames(r io.Reader, rec *store.InstanceRecord, nums []int) ([][]byte, error) {
	data, err := dicomio.PixelDataBytes(r, rec.Size)
	if err != nil {
		return nil, err
	}
	if !nativeSyntax(rec.TransferSyntaxUID) {
		return nil, fmt.Errorf("%w (transfer syntax %s)", dicomio.ErrNotNative, rec.TransferSyntaxUID)
	}
	nframes := max(rec.NumberOfFrames, 1)
	bits := rec.Rows * rec.Columns
	if bits == 0 || len(data)*8 < bits*nframes {
		return nil, fmt.Errorf("1-bit pixel data of %d bytes is shorter than %d frames of %dx%d", len(data), nframes, rec.Rows, rec.Columns)
	}
	out := make([][]byte, len(nums))
	for i, f := range nums {
		if f < 1 || f > nframes {
			return nil, fmt.Errorf("frame %d of %d: %w", f, nframes, dicomio.ErrFrameRange)
		}
		frame := make([]byte, (bits+7)/8)
		start := (f - 1) * bits
		for k := 0; k < bits; k++ {
			b := start + k
			if data[b/8]>>(b%8)&1 != 0 {
				frame[k/8] |= 1 << (k % 8)
			}
		}
		out[i] = frame
	}
	return out, nil
}

// littleEndian returns big endian samples of bits bits as little endian
// (a copy; the input may share memory with the stored instance).
func littleEndian(b []byte, bits int) []byte {
	size := bits / 8
	if size < 2 {
		return b
	}
	out := make([]byte, len(b))
	for i := 0; i+size <= len(b); i += size {
		for k := 0; k < size; k++ {
			out[i+k] = b[i+size-1-k]
		}
	}
	return out
}

// writeOctets answers byte values as multipart/related;
// type="application/octet-stream" or, for one value, a bare body.
func (s *server) writeOctets(c *gin.Context, rep representation, partType, location string, values [][]byte) {
	if rep == singleRep && len(values) == 1 {
		c.Header("Content-Location", location)
		c.Data(http.StatusOK, dicomio.MediaTypeOctetStream, values[0])
		return
	}
	mw := dicomio.NewMultipartWriter(c.Writer, dicomio.MediaTypeOctetStream)
	c.Header("Content-Type", mw.ContentType())
	c.Status(http.StatusOK)
	for _, v := range values {
		pw, err := mw.CreatePart(partType, "")
		if err == nil {
			_, err = pw.Write(v)
		}
		if err != nil {
			s.cut(c, "WADO-RS: sending bulk data", "", err)
		}
	}
	if err := mw.Close(); err != nil {
		s.cut(c, "WADO-RS: closing multipart", "", err)
	}
}
