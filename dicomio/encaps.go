package dicomio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/radtriage/radtriage/dicomio/codec"
)

// This file rebuilds the frames of encapsulated pixel data (PS3.5 §A.4)
// from its fragments and hands each to the transfer syntax's decoder.

const (
	tagExtendedOffsetTable        = 0x7FE00001
	tagExtendedOffsetTableLengths = 0x7FE00002

	uidEncapsulatedUncompressed = "1.2.840.10008.1.2.1.98"
	uidRLELossless              = "1.2.840.10008.1.2.5"
)

// decodeEncapsulated decodes the 1-based frames (all when nil) of an
// instance with encapsulated pixel data.
func decodeEncapsulated(d *instanceData, in *Instance, frames []int) (*Pixels, error) {
	var dec codec.Decoder
	uncompressed := d.tsUID == uidEncapsulatedUncompressed
	if !uncompressed {
		var ok bool
		if dec, ok = codec.Lookup(d.tsUID); !ok {
			return nil, unsupportedSyntax(d.tsUID, d.ts.name)
		}
	}
	if in.BitsAllocated == 1 {
		return nil, fmt.Errorf("1-bit pixel data in %s cannot be decoded: %w", d.ts.name, codec.ErrUnsupported)
	}
	if err := checkBits(in.BitsAllocated, in.BitsStored, in.HighBit); err != nil {
		return nil, fmt.Errorf("pixel data in %s cannot be decoded: %w", d.ts.name, err)
	}
	var eot, eotLen []byte
	for i := range d.elems {
		switch d.elems[i].tag {
		case tagExtendedOffsetTable:
			eot = d.elems[i].value
		case tagExtendedOffsetTableLengths:
			eotLen = d.elems[i].value
		}
	}
	all, err := splitFrames(d.pixel.offsets, eot, eotLen, d.pixel.fragments, in.NumberOfFrames, d.tsUID)
	if err != nil {
		return nil, fmt.Errorf("encapsulated pixel data in %s: %w", d.ts.name, err)
	}
	nf := in.NumberOfFrames
	if frames != nil {
		nf = len(frames)
	}
	p := newPixels(in, nf)
	fs := p.FrameSize()
	f := codec.Frame{
		Rows: in.Rows, Columns: in.Columns, Samples: in.SamplesPerPixel,
		BitsAllocated: in.BitsAllocated, BitsStored: in.BitsStored, Signed: p.Signed,
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("pixel data in %s cannot be decoded: %w", d.ts.name, err)
	}
	if !uncompressed && d.tsUID != uidRLELossless {
		// Image codecs return the sample value in the container's low
		// BitsStored bits (package codec's contract), wherever High Bit
		// put it in the native form; RLE and the uncompressed syntax carry
		// the native containers byte for byte.
		p.HighBit = p.BitsStored - 1
	}
	planar := in.PlanarConfiguration == 1 && in.SamplesPerPixel > 1
	p.Data = make([]byte, nf*fs)
	err = parallelFrames(nf, fs, func(i int) error {
		n := i + 1
		if frames != nil {
			n = frames[i]
		}
		src := all[n-1]
		dst := p.Data[i*fs : (i+1)*fs]
		if uncompressed {
			// Each frame's fragments hold its native little-endian bytes
			// (PS3.5 §A.4.11); a trailing pad byte is allowed.
			if len(src) != fs && !(fs%2 == 1 && len(src) == fs+1) {
				return fmt.Errorf("frame %d of %d in %s holds %d bytes, not %d", n, in.NumberOfFrames, d.ts.name, len(src), fs)
			}
			if planar {
				planarToInterleaved(dst, src[:fs], in.SamplesPerPixel, in.BitsAllocated/8)
			} else {
				copy(dst, src)
			}
			return nil
		}
		if err := dec.Decode(dst, src, f); err != nil {
			return fmt.Errorf("decoding frame %d of %d in %s with %s: %w", n, in.NumberOfFrames, d.ts.name, dec.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// fragment is one fragment item and where its header starts, counted
// from the first fragment item's tag (the origin of offset tables).
type fragment struct {
	at   uint64
	data []byte
}

// splitFrames returns the bytes of each of nframes frames from the Basic
// Offset Table bot (the offset table item's value), the Extended Offset
// Table eot with its lengths eotLen, and the fragments after the offset
// table item. A frame in one fragment aliases it; a frame spanning several
// is a new concatenation.
//
// The rules (PS3.5 §A.4): with a non-empty Basic Offset Table, frame i
// starts at the fragment item at byte offset bot[i]; else with an
// Extended Offset Table, each frame is the single fragment at eot[i],
// eotLen[i] bytes long; else one frame takes every fragment, as many
// fragments as frames take one each, and otherwise a new frame starts at
// each fragment that begins with the syntax's codestream start marker
// (JPEG and JPEG-LS SOI FFD8, JPEG 2000 SOC FF4F). Every table is checked:
// as many entries as frames, first offset 0, strictly increasing, each on
// a fragment item boundary inside the data. A frame with no bytes is an
// error.
func splitFrames(bot, eot, eotLen []byte, frags [][]byte, nframes int, tsUID string) ([][]byte, error) {
	if nframes < 1 {
		return nil, fmt.Errorf("number of frames %d is not positive", nframes)
	}
	if len(frags) == 0 {
		return nil, errors.New("there are no fragments")
	}
	fr := make([]fragment, len(frags))
	var pos uint64
	for i, f := range frags {
		fr[i] = fragment{at: pos, data: f}
		pos += 8 + uint64(len(f))
	}
	var out [][]byte
	var err error
	switch {
	case len(bot) > 0:
		out, err = framesFromBOT(bot, fr, nframes, pos)
	case len(eot) > 0 || len(eotLen) > 0:
		out, err = framesFromEOT(eot, eotLen, fr, nframes, pos)
	case nframes == 1:
		out = [][]byte{concat(fr)}
	case len(fr) == nframes:
		out = make([][]byte, nframes)
		for i, f := range fr {
			out[i] = f.data
		}
	default:
		out, err = framesFromMarkers(fr, nframes, tsUID)
	}
	if err != nil {
		return nil, err
	}
	for i, f := range out {
		if len(f) == 0 {
			return nil, fmt.Errorf("frame %d of %d has no bytes (empty fragments)", i+1, nframes)
		}
	}
	return out, nil
}

// concat joins fragments' data; one fragment is returned as is.
func concat(fr []fragment) []byte {
	if len(fr) == 1 {
		return fr[0].data
	}
	n := 0
	for _, f := range fr {
		n += len(f.data)
	}
	out := make([]byte, 0, n)
	for _, f := range fr {
		out = append(out, f.data...)
	}
	return out
}

// fragmentAt returns the index of the fragment whose item starts at off.
func fragmentAt(fr []fragment, off uint64) (int, bool) {
	lo, hi := 0, len(fr)
	for lo < hi {
		m := (lo + hi) / 2
		if fr[m].at < off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(fr) && fr[lo].at == off
}

// framesFromBOT splits fragments with a Basic Offset Table (32-bit little
// endian offsets). end is the byte length of all fragment items.
func framesFromBOT(bot []byte, fr []fragment, nframes int, end uint64) ([][]byte, error) {
	if len(bot)%4 != 0 {
		return nil, fmt.Errorf("the Basic Offset Table is %d bytes long, not a multiple of 4", len(bot))
	}
	if n := len(bot) / 4; n != nframes {
		return nil, fmt.Errorf("the Basic Offset Table has %d entries but Number of Frames is %d", n, nframes)
	}
	starts := make([]int, nframes+1)
	var prev uint64
	for i := range nframes {
		off := uint64(binary.LittleEndian.Uint32(bot[4*i:]))
		if err := checkOffset("Basic Offset Table", i, off, prev, end); err != nil {
			return nil, err
		}
		k, ok := fragmentAt(fr, off)
		if !ok {
			return nil, fmt.Errorf("the Basic Offset Table entry %d (%d) is not the start of a fragment item", i+1, off)
		}
		starts[i], prev = k, off
	}
	starts[nframes] = len(fr)
	out := make([][]byte, nframes)
	for i := range nframes {
		out[i] = concat(fr[starts[i]:starts[i+1]])
	}
	return out, nil
}

// checkOffset checks entry i (0-based) of an offset table: the first is
// 0, later ones strictly increase, and each lies before end.
func checkOffset(table string, i int, off, prev, end uint64) error {
	switch {
	case i == 0 && off != 0:
		return fmt.Errorf("the %s's first offset is %d, not 0", table, off)
	case i > 0 && off <= prev:
		return fmt.Errorf("the %s's offsets are not increasing: entry %d is %d after %d", table, i+1, off, prev)
	case off >= end:
		return fmt.Errorf("the %s's entry %d (%d) points past the end of the pixel data (%d bytes of fragment items)", table, i+1, off, end)
	}
	return nil
}

// framesFromEOT splits fragments with an Extended Offset Table (64-bit
// little-endian offsets, with the frames' lengths in eotLen; PS3.3
// C.7.6.3.1.8), where each frame is exactly one fragment.
func framesFromEOT(eot, eotLen []byte, fr []fragment, nframes int, end uint64) ([][]byte, error) {
	if len(eot)%8 != 0 || len(eotLen)%8 != 0 {
		return nil, fmt.Errorf("the Extended Offset Table (%d bytes) or its lengths (%d bytes) is not a multiple of 8 bytes", len(eot), len(eotLen))
	}
	if len(eot) != len(eotLen) {
		return nil, fmt.Errorf("the Extended Offset Table has %d entries but Extended Offset Table Lengths has %d", len(eot)/8, len(eotLen)/8)
	}
	if n := len(eot) / 8; n != nframes {
		return nil, fmt.Errorf("the Extended Offset Table has %d entries but Number of Frames is %d", n, nframes)
	}
	out := make([][]byte, nframes)
	var prev uint64
	for i := range nframes {
		off := binary.LittleEndian.Uint64(eot[8*i:])
		n := binary.LittleEndian.Uint64(eotLen[8*i:])
		if err := checkOffset("Extended Offset Table", i, off, prev, end); err != nil {
			return nil, err
		}
		k, ok := fragmentAt(fr, off)
		if !ok {
			return nil, fmt.Errorf("the Extended Offset Table entry %d (%d) is not the start of a fragment item", i+1, off)
		}
		if n != uint64(len(fr[k].data)) {
			return nil, fmt.Errorf("the Extended Offset Table gives frame %d a length of %d bytes but its fragment holds %d", i+1, n, len(fr[k].data))
		}
		out[i], prev = fr[k].data, off
	}
	return out, nil
}

// framesFromMarkers splits fragments where one starts with the syntax's
// codestream start marker; the first fragment must.
func framesFromMarkers(fr []fragment, nframes int, tsUID string) ([][]byte, error) {
	var marker []byte
	name := transferSyntaxes[tsUID].name
	switch {
	case tsUID == uidRLELossless || tsUID == uidEncapsulatedUncompressed:
		return nil, fmt.Errorf("%d fragments for %d frames without an offset table: each frame of this syntax must be one fragment", len(fr), nframes)
	case strings.HasPrefix(name, "JPEG 2000") || strings.HasPrefix(name, "High-Throughput JPEG 2000"):
		marker = []byte{0xFF, 0x4F} // JPEG 2000 SOC
	case strings.HasPrefix(name, "JPEG ") && !strings.HasPrefix(name, "JPEG XL"), strings.HasPrefix(name, "JPEG-LS"):
		marker = []byte{0xFF, 0xD8} // JPEG and JPEG-LS SOI
	default:
		return nil, fmt.Errorf("%d fragments for %d frames without an offset table, and frames of this syntax cannot be told apart", len(fr), nframes)
	}
	var out [][]byte
	start := -1
	for i, f := range fr {
		if bytes.HasPrefix(f.data, marker) {
			if start >= 0 {
				out = append(out, concat(fr[start:i]))
			}
			start = i
		} else if start < 0 {
			return nil, fmt.Errorf("the first fragment does not start with the codestream marker %X", marker)
		}
	}
	out = append(out, concat(fr[start:]))
	if len(out) != nframes {
		return nil, fmt.Errorf("%d fragments hold %d codestreams (by start marker) but Number of Frames is %d", len(fr), len(out), nframes)
	}
	return out, nil
}
