package volume

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/radtriage/radtriage/dicomio"
)

// LoadOptions tune LoadDir. The zero value is the default.
type LoadOptions struct {
	// KeepBytes bounds the total size of the files LoadDir keeps in
	// memory for Assemble, so that each file is read once. Files beyond
	// the bound are read again by Assemble. 0 means 1 GiB; a negative value
	// keeps nothing. Files with little-endian native 16-bit greyscale
	// pixel data, in an fs.FS whose files implement io.ReaderAt (as
	// os.DirFS's do), are never kept: LoadDir reads only their header
	// (dicomio.ReadHeader) and Assemble reads each frame's bytes straight
	// into the volume.
	KeepBytes int64
	// Workers is the number of files read and parsed at once; 0 means
	// GOMAXPROCS.
	Workers int
	// HeadersOnly parses headers without decoding pixel data; Assemble
	// decodes (and re-reads) the files. By default LoadDir decodes each
	// file's pixel data as it parses it (one parse per file; native data
	// costs nothing more, compressed data is decompressed once), keeping
	// the result within KeepBytes for Assemble, and reports pixel data that
	// cannot be decoded at once (WarnUndecodable). Files read by header
	// alone (see KeepBytes) are read so in both modes: once the header is
	// accepted, their pixel data cannot fail to decode.
	HeadersOnly bool
}

// Skipped is a file LoadDir did not use, with the reason as a sentence.
type Skipped struct {
	Path   string // path within the fs.FS
	Reason string
}

// Collection is what LoadDir found: the image series, and the files it
// skipped.
type Collection struct {
	Series  []*Series // ordered by Study Instance UID, Series Number, Series Instance UID
	Skipped []Skipped // ordered by path
}

// LoadDir reads every file of fsys (recursively), keeping DICOM image
// instances grouped by series; non-DICOM files and non-image objects (e.g.
// a DICOMDIR or Philips DIRFILE, a structured report) are skipped and listed
// in Skipped with the reason, as are colour images and classic
// multi-frame images without per-frame positions. Each series is split into
// stacks of consistent geometry (see Series and Stack). Files are read and
// parsed in parallel, each once; pixel data is decoded as it is parsed
// unless opts.HeadersOnly (see LoadOptions), except that little-endian
// native 16-bit greyscale files of an fs.FS with io.ReaderAt files are
// read by header alone, their pixels read by Assemble; pixels are compared
// between two slices found at one position (duplicate detection, which
// reads them then).
//
// Errors are only those of walking fsys; unreadable files are Skipped.
func LoadDir(fsys fs.FS, opts LoadOptions) (*Collection, error) {
	var paths []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the folder: %w", err)
	}
	slices.Sort(paths)

	keep := opts.KeepBytes
	if keep == 0 {
		keep = 1 << 30
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}

	results := make([]loaded, len(paths))
	var (
		mu   sync.Mutex
		kept int64
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range min(workers, max(len(paths), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = loadFile(fsys, paths[i], opts.HeadersOnly, func(n int64) bool {
					mu.Lock()
					defer mu.Unlock()
					if keep <= 0 || kept+n > keep {
						return false
					}
					kept += n
					return true
				})
			}
		}()
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()

	c := &Collection{}
	bySeries := map[string][]*slice{}
	var order []string
	for i, r := range results {
		if r.skip != "" {
			c.Skipped = append(c.Skipped, Skipped{Path: paths[i], Reason: r.skip})
			continue
		}
		ss, skip := instanceSlices(r.in, r.file)
		if skip != "" {
			c.Skipped = append(c.Skipped, Skipped{Path: paths[i], Reason: skip})
			continue
		}
		uid := r.in.SeriesInstanceUID
		if _, ok := bySeries[uid]; !ok {
			order = append(order, uid)
		}
		bySeries[uid] = append(bySeries[uid], ss...)
	}
	for _, uid := range order {
		c.Series = append(c.Series, buildSeries(bySeries[uid]))
	}
	slices.SortStableFunc(c.Series, func(a, b *Series) int {
		if a.StudyUID != b.StudyUID {
			return strings.Compare(a.StudyUID, b.StudyUID)
		}
		if a.Number != b.Number {
			return a.Number - b.Number
		}
		return strings.Compare(a.UID, b.UID)
	})
	return c, nil
}

// skipReason turns a read error into the sentence of a Skipped entry.
func skipReason(err error) string {
	if rj := dicomio.AsReject(err); rj != nil {
		if rj.Err != nil {
			return fmt.Sprintf("not a usable DICOM instance: %s (%v)", rj.Reason, rj.Err)
		}
		return "not a usable DICOM instance: " + rj.Reason
	}
	return "not a usable DICOM instance: " + err.Error()
}

// sopName names a few SOP classes in skip reasons.
func sopName(uid string) string {
	switch {
	case strings.HasPrefix(uid, "1.2.840.10008.5.1.4.1.1.88."):
		return "a structured report"
	case uid == "1.2.840.10008.5.1.4.1.1.66.4":
		return "a segmentation"
	case uid == "":
		return "no SOP Class"
	}
	return "SOP Class " + uid
}

// loaded is the outcome of loadFile.
type loaded struct {
	file *fileData
	in   *dicomio.Instance
	skip string
}

// loadFile reads and parses one file, decoding its pixel data unless
// headersOnly. keep reserves room for n bytes in memory. A file that
// loadHeader can read is read by header alone.
func loadFile(fsys fs.FS, p string, headersOnly bool, keep func(n int64) bool) loaded {
	if l, ok := loadHeader(fsys, p); ok {
		return l
	}
	data, err := fs.ReadFile(fsys, p)
	if err != nil {
		return loaded{skip: fmt.Sprintf("the file could not be read: %v", err)}
	}
	f := &fileData{fsys: fsys, path: p}
	var in *dicomio.Instance
	if headersOnly {
		if in, err = dicomio.ReadInstanceBytes(data); err != nil {
			return loaded{skip: skipReason(err)}
		}
		if !in.HasPixelData || in.Rows == 0 || in.Columns == 0 {
			return loaded{skip: "not an image: the instance has no Pixel Data (" + sopName(in.SOPClassUID) + ")"}
		}
		if keep(int64(len(data))) {
			f.data = data
		}
		return loaded{file: f, in: in}
	}
	in, px, err := dicomio.DecodePixels(data)
	switch {
	case in == nil:
		return loaded{skip: skipReason(err)}
	case errors.Is(err, dicomio.ErrNoPixelData) || in.Rows == 0 || in.Columns == 0:
		return loaded{skip: "not an image: the instance has no Pixel Data (" + sopName(in.SOPClassUID) + ")"}
	case err != nil:
		f.err = err
		return loaded{file: f, in: in}
	}
	n := int64(len(data))
	if in.Encapsulated {
		n += int64(len(px.Data))
	}
	if keep(n) {
		f.px = px
	}
	return loaded{file: f, in: in}
}

// loadHeader reads one file by its header alone (dicomio.ReadHeader) when
// fsys's file implements io.ReaderAt and its pixel data is little-endian
// native greyscale in 16-bit containers with a valid bit layout, whose
// decoding is then only a read. ok is false when the file must be read
// whole instead (another form of pixel data, a deflated syntax, a read
// error, which the whole read reports).
func loadHeader(fsys fs.FS, p string) (l loaded, ok bool) {
	f, err := fsys.Open(p)
	if err != nil {
		return loaded{}, false
	}
	defer f.Close()
	ra, isRA := f.(io.ReaderAt)
	if !isRA {
		return loaded{}, false
	}
	fi, err := f.Stat()
	if err != nil {
		return loaded{}, false
	}
	in, loc, err := dicomio.ReadHeader(ra, fi.Size())
	switch {
	case dicomio.AsReject(err) != nil:
		return loaded{skip: skipReason(err)}, true
	case err != nil:
		return loaded{}, false
	case !directLayout(loc) || in.Rows == 0 || in.Columns == 0:
		return loaded{}, false
	}
	return loaded{file: &fileData{fsys: fsys, path: p, loc: loc, photometric: in.PhotometricInterpretation}, in: in}, true
}

// directLayout reports a native pixel layout whose frames are read
// straight into memory: one sample of a 16-bit little-endian container,
// 1 ≤ BitsStored ≤ HighBit+1 ≤ 16, on a little-endian host.
func directLayout(loc *dicomio.PixelLocation) bool {
	return littleEndian && loc.Samples == 1 && loc.BitsAllocated == 16 && !loc.BigEndian &&
		loc.BitsStored >= 1 && loc.BitsStored <= loc.HighBit+1 && loc.HighBit < 16 &&
		loc.FrameSize == 2*int64(loc.Rows)*int64(loc.Columns)
}

// fileData is one file of the folder: where to read it and, when LoadDir
// kept them, its bytes or decoded pixels, or the error decoding gave.
type fileData struct {
	fsys fs.FS
	path string
	loc  *dicomio.PixelLocation // read by header alone: where its frames are
	// photometric is the Photometric Interpretation of a file read by
	// header alone.
	photometric string
	data        []byte          // nil when not kept
	px          *dicomio.Pixels // decoded at load, nil when not kept
	err         error           // decoding failed at load
}

// decode returns the file's pixel data, reading and decoding it when
// LoadDir did not keep it.
func (f *fileData) decode() (*dicomio.Pixels, error) {
	if f.err != nil {
		return nil, f.err
	}
	if f.px != nil {
		return f.px, f.check(f.px)
	}
	if f.loc != nil {
		return f.readPixels()
	}
	data := f.data
	if data == nil {
		var err error
		if data, err = fs.ReadFile(f.fsys, f.path); err != nil {
			return nil, fmt.Errorf("%s could not be read again: %w", f.path, err)
		}
	}
	_, px, err := dicomio.DecodePixels(data)
	if err != nil {
		return nil, err
	}
	return px, f.check(px)
}

// readPixels reads the native pixel data of a file read by header alone.
func (f *fileData) readPixels() (*dicomio.Pixels, error) {
	loc := f.loc
	data := make([]byte, loc.Length)
	h, err := f.open()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := f.readAt(h, data, loc.Offset); err != nil {
		return nil, err
	}
	return &dicomio.Pixels{
		Rows: loc.Rows, Columns: loc.Columns, Samples: loc.Samples, Frames: loc.Frames,
		BitsAllocated: loc.BitsAllocated, BitsStored: loc.BitsStored, HighBit: loc.HighBit,
		Signed: loc.Signed, Photometric: f.photometric, Data: data,
	}, nil
}

// open opens the file again for reads at offsets.
func (f *fileData) open() (fs.File, error) {
	h, err := f.fsys.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("%s could not be opened again: %w", f.path, err)
	}
	return h, nil
}

// readAt fills dst from h, the file opened again, at offset off; a file
// that has become shorter is an error.
func (f *fileData) readAt(h fs.File, dst []byte, off int64) error {
	ra, ok := h.(io.ReaderAt)
	if !ok {
		return fmt.Errorf("%s can no longer be read at an offset", f.path)
	}
	n, err := ra.ReadAt(dst, off)
	if n == len(dst) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s could not be read again (%d of %d pixel bytes at offset %d): %w", f.path, n, len(dst), off, err)
}

func (f *fileData) check(px *dicomio.Pixels) error {
	if px.Samples != 1 {
		return fmt.Errorf("%s has %d samples per pixel (%s); only greyscale images make volumes", f.path, px.Samples, px.Photometric)
	}
	return nil
}

// fileSource gives the stored values of one frame of a file.
type fileSource struct {
	file  *fileData
	frame int
}

func (s fileSource) int32s(dst []int32) error {
	px, err := s.file.decode()
	if err != nil {
		return err
	}
	if s.frame >= px.Frames {
		return fmt.Errorf("%s has %d frames, not %d", s.file.path, px.Frames, s.frame+1)
	}
	if len(dst) != px.Rows*px.Columns {
		return fmt.Errorf("%s holds %d×%d pixels, not the %d its header declares", s.file.path, px.Columns, px.Rows, len(dst))
	}
	return px.Int32(s.frame, dst)
}

// errNoGeometry marks an instance without the attributes that place it.
var errNoGeometry = errors.New("no geometry")

// instanceSlices turns one instance into its slices: one for a single-frame
// image, one per frame for a multi-frame image with per-frame geometry. A
// non-empty skip says why the file gives none.
func instanceSlices(in *dicomio.Instance, f *fileData) (out []*slice, skip string) {
	if in.SamplesPerPixel > 1 {
		return nil, fmt.Sprintf("a colour image (%s, %d samples per pixel): volumes are greyscale", in.PhotometricInterpretation, in.SamplesPerPixel)
	}
	n := max(in.NumberOfFrames, 1)
	base := slice{
		file:      f,
		in:        in,
		rows:      in.Rows,
		cols:      in.Columns,
		thickness: in.SliceThickness,
		slope:     in.RescaleSlope,
		intercept: in.RescaleIntercept,
		philipsSS: in.PhilipsScaleSlope,
		signed:    in.PixelRepresentation == 1,
		bits:      in.BitsStored,
		imageType: in.ImageType,
		echo:      float64(in.EchoNumbers),
		time:      timeKey{in.AcquisitionNumber, in.TemporalPositionIdentifier, 0},
	}
	if base.slope == 0 {
		base.slope = 1
	}
	if lo, hi, ok := in.PaddingValues(); ok && in.Modality == "CT" {
		base.padding, base.padLo, base.padHi = true, lo, hi
	}
	if len(in.Frames) > 0 {
		if len(in.Frames) != n {
			return nil, fmt.Sprintf("the multi-frame image declares %d frames but has %d per-frame functional group items", n, len(in.Frames))
		}
		for i, fr := range in.Frames {
			s := base
			s.frame = i
			s.src = fileSource{file: f, frame: i}
			s.name = fmt.Sprintf("%s frame %d", f.path, i+1)
			s.geomOK = setGeometry(&s, fr.ImagePositionPatient, fr.ImageOrientationPatient, fr.PixelSpacing) == nil
			if fr.SliceThickness != 0 {
				s.thickness = fr.SliceThickness
			}
			if fr.HasRescale {
				s.slope, s.intercept = fr.RescaleSlope, fr.RescaleIntercept
			}
			if fr.PhilipsScaleSlope != 0 {
				s.philipsSS = fr.PhilipsScaleSlope
			}
			if len(fr.FrameType) > 0 {
				s.imageType = fr.FrameType
			}
			if fr.EffectiveEchoTime != 0 {
				s.echo = fr.EffectiveEchoTime
			}
			s.time[2] = fr.TemporalPositionIndex
			s.stackID = fr.StackID
			out = append(out, &s)
		}
		return out, ""
	}
	if n > 1 {
		// A classic multi-frame image (e.g. NM, US, or an MR/CT without
		// functional groups) has no per-frame positions: it is not a
		// volume this package can place.
		return nil, fmt.Sprintf("a multi-frame image (%d frames) without per-frame functional groups: its frames cannot be placed in space", n)
	}
	s := base
	s.src = fileSource{file: f}
	s.name = f.path
	s.geomOK = setGeometry(&s, in.ImagePositionPatient, in.ImageOrientationPatient, in.PixelSpacing) == nil
	return []*slice{&s}, ""
}

// setGeometry copies position, orientation and spacing into s, checking
// them.
func setGeometry(s *slice, ipp, iop, ps []float64) error {
	if len(ipp) != 3 || len(iop) != 6 || len(ps) != 2 || ps[0] <= 0 || ps[1] <= 0 {
		return errNoGeometry
	}
	copy(s.pos[:], ipp)
	copy(s.iop[:], iop)
	s.ps = [2]float64{ps[0], ps[1]}
	r, c := vec(iop[0:3]), vec(iop[3:6])
	if norm(r) < 0.5 || norm(c) < 0.5 || norm(cross(unit(r), unit(c))) < 0.5 {
		return errNoGeometry // not direction cosines, or row ∥ column
	}
	return nil
}
