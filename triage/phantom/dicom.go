package phantom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The DICOM files are encoded here, element by element, rather than with
// github.com/suyashkumar/dicom's writer: about a hundred lines give
// byte-for-byte control (the files of a seed are identical on every run
// and platform, which the tests check), no per-frame conversion of the
// pixels into the library's frame type, and no question of what the
// library does with VRs, padding or the group length.

// UIDs and codes.
const (
	CTImageStorage         = "1.2.840.10008.5.1.4.1.1.2"
	ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	// implementationUID is 2.25 and the 128 bits of the UUID
	// 6d6f7068-6174-4e50-8000-726164747269 (fixed; names this writer).
	implementationUID = "2.25.145464476391618357661154902662953857641"
)

// StudyDescription is the Study Description of every phantom series.
const StudyDescription = "CT HEAD WO CONTRAST (synthetic phantom)"

// RescaleIntercept of the written series: stored = HU + 1024, slope 1,
// as signed 16-bit integers (Pixel Representation 1) of 0 to 4095.
const RescaleIntercept = -1024

// SeriesMeta holds the identifying attributes of a written series; zero
// fields are derived from the phantom's seed.
type SeriesMeta struct {
	PatientName     string    // default PHANTOM^<seed>
	PatientID       string    // default PH<seed>
	AccessionNumber string    // default A<seed>
	StudyID         string    // default the seed mod 10^16
	StudyTime       time.Time // default 2026-01-05 08:00 UTC plus seed mod 10000 minutes
	SeriesNumber    int       // default 2
	// SeriesDescription defaults to e.g. "AXIAL 5mm (synthetic)".
	SeriesDescription string
}

// ErrWrite wraps the errors of WriteSeries.
var ErrWrite = errors.New("phantom: writing the DICOM series")

// UIDs returns the Study, Series and Frame of Reference Instance UIDs and
// the SOP Instance UIDs of the slices (in slice order) of the phantom's
// series: 2.25 UIDs of 128 bits from the seeded generator.
func (p *Phantom) UIDs() (study, series, frame string, instances []string) {
	rng := rand.New(rand.NewPCG(p.Seed, 0x756964))
	uid := func() string {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], rng.Uint64())
		binary.BigEndian.PutUint64(b[8:], rng.Uint64())
		return "2.25." + new(big.Int).SetBytes(b[:]).String()
	}
	study, series, frame = uid(), uid(), uid()
	for range p.Size[0] {
		instances = append(instances, uid())
	}
	return study, series, frame, instances
}

// SliceFileName is the name of slice d's file in the series folder.
func SliceFileName(d int) string { return fmt.Sprintf("IM%04d.dcm", d+1) }

// WriteSeries writes the phantom as a CT Image Storage series in Explicit
// VR Little Endian, one file per slice (SliceFileName), into dir, which
// it creates if need be.
func WriteSeries(dir string, p *Phantom, meta SeriesMeta) error {
	D, H, W := p.Size[0], p.Size[1], p.Size[2]
	if len(p.HU) != D*H*W || H > math.MaxUint16 || W > math.MaxUint16 {
		return fmt.Errorf("%w: %d values for size %v", ErrWrite, len(p.HU), p.Size)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	meta.defaults(p)
	study, series, frame, inst := p.UIDs()
	date, tm := meta.StudyTime.Format("20060102"), meta.StudyTime.Format("150405")
	var enc encoder
	for d := range D {
		enc.buf = enc.buf[:0]
		pos := p.Position(float64(d), 0, 0)
		enc.buf = append(enc.buf, make([]byte, 128)...)
		enc.buf = append(enc.buf, "DICM"...)
		// File meta: the group length, then the group.
		glAt := len(enc.buf)
		enc.u32(0x00020000, 0)
		start := len(enc.buf)
		enc.el(0x00020001, "OB", []byte{0, 1})
		enc.str(0x00020002, "UI", CTImageStorage)
		enc.str(0x00020003, "UI", inst[d])
		enc.str(0x00020010, "UI", ExplicitVRLittleEndian)
		enc.str(0x00020012, "UI", implementationUID)
		enc.str(0x00020013, "SH", "RADTRIAGE")
		binary.LittleEndian.PutUint32(enc.buf[glAt+8:], uint32(len(enc.buf)-start))

		enc.str(0x00080008, "CS", `ORIGINAL\PRIMARY\AXIAL`)
		enc.str(0x00080016, "UI", CTImageStorage)
		enc.str(0x00080018, "UI", inst[d])
		enc.str(0x00080020, "DA", date)
		enc.str(0x00080021, "DA", date)
		enc.str(0x00080023, "DA", date)
		enc.str(0x00080030, "TM", tm)
		enc.str(0x00080031, "TM", tm)
		enc.str(0x00080033, "TM", tm)
		enc.str(0x00080050, "SH", meta.AccessionNumber)
		enc.str(0x00080060, "CS", "CT")
		enc.str(0x00080070, "LO", "radtriage")
		enc.str(0x00080090, "PN", "")
		enc.str(0x00081030, "LO", StudyDescription)
		enc.str(0x0008103E, "LO", meta.SeriesDescription)
		enc.str(0x00100010, "PN", meta.PatientName)
		enc.str(0x00100020, "LO", meta.PatientID)
		enc.str(0x00100030, "DA", "")
		enc.str(0x00100040, "CS", "O")
		enc.str(0x00180015, "CS", "HEAD")
		enc.str(0x00180050, "DS", ds(p.Spacing[0]))
		enc.str(0x00180060, "DS", "120")
		enc.str(0x00180088, "DS", ds(p.Spacing[0]))
		enc.str(0x00185100, "CS", "HFS")
		enc.str(0x0020000D, "UI", study)
		enc.str(0x0020000E, "UI", series)
		enc.str(0x00200010, "SH", meta.StudyID)
		enc.str(0x00200011, "IS", strconv.Itoa(meta.SeriesNumber))
		enc.str(0x00200012, "IS", "1")
		enc.str(0x00200013, "IS", strconv.Itoa(d+1))
		enc.str(0x00200032, "DS", ds(pos[0], pos[1], pos[2]))
		enc.str(0x00200037, "DS", `1\0\0\0\1\0`)
		enc.str(0x00200052, "UI", frame)
		enc.str(0x00201040, "LO", "")
		enc.str(0x00201041, "DS", ds(pos[2]))
		enc.u16(0x00280002, 1)
		enc.str(0x00280004, "CS", "MONOCHROME2")
		enc.u16(0x00280010, uint16(H))
		enc.u16(0x00280011, uint16(W))
		enc.str(0x00280030, "DS", ds(p.Spacing[1], p.Spacing[2]))
		enc.u16(0x00280100, 16)
		enc.u16(0x00280101, 16)
		enc.u16(0x00280102, 15)
		enc.u16(0x00280103, 1)
		enc.str(0x00281050, "DS", "40")
		enc.str(0x00281051, "DS", "80")
		enc.str(0x00281052, "DS", strconv.Itoa(RescaleIntercept))
		enc.str(0x00281053, "DS", "1")
		enc.str(0x00281054, "LO", "HU")
		enc.header(0x7FE00010, "OW", 2*H*W)
		for _, v := range p.HU[d*H*W : (d+1)*H*W] {
			enc.buf = binary.LittleEndian.AppendUint16(enc.buf, uint16(int16(int32(v)-RescaleIntercept)))
		}
		if err := os.WriteFile(filepath.Join(dir, SliceFileName(d)), enc.buf, 0o644); err != nil {
			return fmt.Errorf("%w: %w", ErrWrite, err)
		}
	}
	return nil
}

func (m *SeriesMeta) defaults(p *Phantom) {
	s := strconv.FormatUint(p.Seed, 10)
	if m.PatientName == "" {
		m.PatientName = "PHANTOM^" + s
	}
	if m.PatientID == "" {
		m.PatientID = "PH" + s
	}
	if m.AccessionNumber == "" {
		m.AccessionNumber = "A" + s
	}
	if m.StudyID == "" {
		m.StudyID = strconv.FormatUint(p.Seed%1e16, 10)
	}
	if m.StudyTime.IsZero() {
		m.StudyTime = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC).Add(time.Duration(p.Seed%10000) * time.Minute)
	}
	if m.SeriesNumber == 0 {
		m.SeriesNumber = 2
	}
	if m.SeriesDescription == "" {
		m.SeriesDescription = "AXIAL " + ds(p.Spacing[0]) + "mm (synthetic)"
	}
}

// ds formats decimal strings of at most 16 characters each, joined by
// backslashes.
func ds(xs ...float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		if x == 0 {
			x = 0 // no "-0"
		}
		s := strconv.FormatFloat(x, 'f', -1, 64)
		for prec := 15; len(s) > 16 && prec >= 0; prec-- {
			s = strconv.FormatFloat(x, 'f', prec, 64)
		}
		parts[i] = s
	}
	return strings.Join(parts, `\`)
}

// encoder appends Explicit VR Little Endian elements (PS3.5 §7.1.2).
type encoder struct{ buf []byte }

func (e *encoder) header(tag uint32, vr string, n int) {
	e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(tag>>16))
	e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(tag))
	e.buf = append(e.buf, vr...)
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		e.buf = append(e.buf, 0, 0)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(n))
	default:
		e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(n))
	}
}

func (e *encoder) el(tag uint32, vr string, v []byte) {
	e.header(tag, vr, len(v))
	e.buf = append(e.buf, v...)
}

// str writes a string value padded to even length (UI with NUL, others
// with a space).
func (e *encoder) str(tag uint32, vr, s string) {
	n := len(s) + len(s)%2
	e.header(tag, vr, n)
	e.buf = append(e.buf, s...)
	if len(s)%2 == 1 {
		if vr == "UI" {
			e.buf = append(e.buf, 0)
		} else {
			e.buf = append(e.buf, ' ')
		}
	}
}

func (e *encoder) u16(tag uint32, v uint16) {
	e.header(tag, "US", 2)
	e.buf = binary.LittleEndian.AppendUint16(e.buf, v)
}

func (e *encoder) u32(tag uint32, v uint32) {
	e.header(tag, "UL", 4)
	e.buf = binary.LittleEndian.AppendUint32(e.buf, v)
}
