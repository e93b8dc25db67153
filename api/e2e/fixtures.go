package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Instance is one DICOM Part 10 file with the UIDs the tests track.
type Instance struct {
	Name   string // source file name
	Study  string
	Series string
	SOP    string
	Bytes  []byte
}

// Tags found by ReadUID.
var (
	TagStudyInstanceUID  = [2]uint16{0x0020, 0x000D}
	TagSeriesInstanceUID = [2]uint16{0x0020, 0x000E}
	TagSOPInstanceUID    = [2]uint16{0x0008, 0x0018}
)

// LoadSeries reads every DICOM Part 10 file ("DICM" at 128) with study,
// series and SOP Instance UIDs from dir, sorted by file name. Files that
// are not images of a study (the Philips DIRFILE) are skipped.
func LoadSeries(dir string) ([]Instance, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Instance
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		inst, ok := ParseInstance(b)
		if !ok {
			continue
		}
		inst.Name = e.Name()
		out = append(out, inst)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("e2e: no DICOM instances in %s", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ParseInstance finds the study, series and SOP Instance UIDs of an
// explicit-VR little-endian Part 10 file; ok is false if any is missing.
func ParseInstance(b []byte) (inst Instance, ok bool) {
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		return inst, false
	}
	inst.Study, _, _ = ReadUID(b, TagStudyInstanceUID)
	inst.Series, _, _ = ReadUID(b, TagSeriesInstanceUID)
	inst.SOP, _, _ = ReadUID(b, TagSOPInstanceUID)
	inst.Bytes = b
	return inst, inst.Study != "" && inst.Series != "" && inst.SOP != ""
}

// ReadUID returns the value of the first explicit-VR little-endian UI
// element with tag after the preamble, its value offset and its padded
// length. It is a byte search, good enough for the known fixtures and for
// files written by the code under test from them, not a DICOM parser.
func ReadUID(b []byte, tag [2]uint16) (uid string, off, n int) {
	var pat [6]byte
	binary.LittleEndian.PutUint16(pat[0:], tag[0])
	binary.LittleEndian.PutUint16(pat[2:], tag[1])
	pat[4], pat[5] = 'U', 'I'
	start := 132
	if len(b) < start {
		return "", 0, 0
	}
	i := bytes.Index(b[start:], pat[:])
	if i < 0 {
		return "", 0, 0
	}
	i += start
	if i+8 > len(b) {
		return "", 0, 0
	}
	n = int(binary.LittleEndian.Uint16(b[i+6:]))
	off = i + 8
	if off+n > len(b) || n > 64 {
		return "", 0, 0
	}
	return strings.TrimRight(string(b[off:off+n]), "\x00 "), off, n
}

// NewUID returns a UID of exactly n characters under the 2.25 root
// (2.25.<decimal digits>, random, no leading zero).
func NewUID(n int) string {
	if n < 7 {
		panic("e2e: NewUID length too short")
	}
	digits := n - len("2.25.")
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)
	min := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits-1)), nil)
	span := new(big.Int).Sub(max, min)
	v, err := rand.Int(rand.Reader, span)
	if err != nil {
		panic(err)
	}
	v.Add(v, min)
	return "2.25." + v.String()
}

// Freshen returns a copy of the series with new study, series and SOP
// Instance UIDs. Each new UID has the length of the one it replaces and
// every occurrence of the old value is patched in place, so the file keeps
// its exact layout, element lengths and group lengths (meta header
// MediaStorageSOPInstanceUID included).
func Freshen(series []Instance) []Instance {
	study := map[string]string{}
	ser := map[string]string{}
	out := make([]Instance, len(series))
	for i, in := range series {
		if _, ok := study[in.Study]; !ok {
			study[in.Study] = NewUID(len(in.Study))
		}
		if _, ok := ser[in.Series]; !ok {
			ser[in.Series] = NewUID(len(in.Series))
		}
		sop := NewUID(len(in.SOP))
		b := bytes.Clone(in.Bytes)
		b = bytes.ReplaceAll(b, []byte(in.Study), []byte(study[in.Study]))
		b = bytes.ReplaceAll(b, []byte(in.Series), []byte(ser[in.Series]))
		b = bytes.ReplaceAll(b, []byte(in.SOP), []byte(sop))
		out[i] = Instance{Name: in.Name, Study: study[in.Study], Series: ser[in.Series], SOP: sop, Bytes: b}
	}
	return out
}

// FreshenOne returns in with a new SOP Instance UID and the given study
// and series UIDs (each the same length as the one it replaces).
func FreshenOne(in Instance, study, series string) Instance {
	sop := NewUID(len(in.SOP))
	b := bytes.Clone(in.Bytes)
	b = bytes.ReplaceAll(b, []byte(in.Study), []byte(study))
	b = bytes.ReplaceAll(b, []byte(in.Series), []byte(series))
	b = bytes.ReplaceAll(b, []byte(in.SOP), []byte(sop))
	return Instance{Name: in.Name, Study: study, Series: series, SOP: sop, Bytes: b}
}
