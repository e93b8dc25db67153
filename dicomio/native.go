package dicomio

import (
	"errors"
	"fmt"
)

// This file decodes native (uncompressed) pixel data (PS3.5 §8.1) into
// the canonical layout of Pixels: little-endian containers, samples
// interleaved, 1-bit data unpacked to bytes. It also holds the sample
// extraction loops behind Pixels.Int32 and Pixels.Float32.

// decodeNative decodes the native Pixel Data element px of an instance
// whose image pixel module is in (already validated against the data
// length by instance()). frames are 1-based, all when nil.
func decodeNative(px *element, ts transferSyntax, in *Instance, frames []int) (*Pixels, error) {
	want, err := nativeLength(in)
	if err != nil {
		return nil, err
	}
	if uint64(len(px.value)) < want {
		return nil, fmt.Errorf("Pixel Data holds %d bytes but the image needs %d", len(px.value), want)
	}
	raw := px.value[:want:want]
	if in.BitsAllocated == 1 {
		return decodeBitmap(raw, ts, px.vr, in, frames)
	}
	if err := checkBits(in.BitsAllocated, in.BitsStored, in.HighBit); err != nil {
		return nil, fmt.Errorf("native pixel data cannot be decoded: %w", err)
	}
	if in.PlanarConfiguration == 1 && in.SamplesPerPixel > 1 {
		// Fine: converted below. Planar Configuration is ignored for
		// single-sample images, where it has no meaning.
	} else if in.PlanarConfiguration != 0 && in.SamplesPerPixel > 1 {
		return nil, fmt.Errorf("planar configuration %d is neither 0 nor 1", in.PlanarConfiguration)
	}
	nf := in.NumberOfFrames
	if frames != nil {
		nf = len(frames)
	}
	p := newPixels(in, nf)
	fs := p.FrameSize()
	size := in.BitsAllocated / 8
	// The byte-swap unit: the container size, except that 8-bit samples
	// in an OW value were written as 16-bit words (PS3.5 §7.3, Annex A.3).
	swap := 0
	if ts.bigEndian {
		swap = size
		if size == 1 && px.vr == "OW" {
			swap = 2
		}
		if swap == 1 {
			swap = 0
		}
	}
	planar := in.PlanarConfiguration == 1 && in.SamplesPerPixel > 1
	if swap == 0 && !planar {
		if frames == nil {
			p.Data = raw
			return p, nil
		}
		p.Data = make([]byte, nf*fs)
		for i, f := range frames {
			copy(p.Data[i*fs:], raw[(f-1)*fs:f*fs])
		}
		return p, nil
	}
	p.Data = make([]byte, nf*fs)
	var scratch []byte
	if swap != 0 && planar {
		scratch = make([]byte, fs)
	}
	for i := range nf {
		f := i + 1
		if frames != nil {
			f = frames[i]
		}
		src := raw[(f-1)*fs : f*fs]
		dst := p.Data[i*fs : (i+1)*fs]
		switch {
		case swap != 0 && planar:
			swapBytes(scratch, src, swap)
			planarToInterleaved(dst, scratch, in.SamplesPerPixel, size)
		case swap != 0:
			swapBytes(dst, src, swap)
		default:
			planarToInterleaved(dst, src, in.SamplesPerPixel, size)
		}
	}
	return p, nil
}

// swapBytes copies src to dst reversing the bytes of each unit-byte word
// (2 or 4).
func swapBytes(dst, src []byte, unit int) {
	switch unit {
	case 2:
		for i := 0; i+1 < len(src); i += 2 {
			s := src[i : i+2 : i+2]
			d := dst[i : i+2 : i+2]
			d[0], d[1] = s[1], s[0]
		}
	case 4:
		for i := 0; i+3 < len(src); i += 4 {
			s := src[i : i+4 : i+4]
			d := dst[i : i+4 : i+4]
			d[0], d[1], d[2], d[3] = s[3], s[2], s[1], s[0]
		}
	default:
		copy(dst, src)
	}
}

// planarToInterleaved turns one frame stored colour-by-plane (Planar
// Configuration 1: all of sample 0, then all of sample 1, …) into
// interleaved samples. size is the container size in bytes.
func planarToInterleaved(dst, src []byte, samples, size int) {
	plane := len(src) / samples
	n := plane / size // pixels
	if size == 1 && samples == 3 {
		r, g, b := src[:n], src[n:2*n], src[2*n:3*n]
		dst = dst[:3*n]
		for i := range n {
			d := dst[3*i : 3*i+3 : 3*i+3]
			d[0], d[1], d[2] = r[i], g[i], b[i]
		}
		return
	}
	for s := range samples {
		pl := src[s*plane : (s+1)*plane]
		for i := range n {
			copy(dst[(i*samples+s)*size:(i*samples+s+1)*size], pl[i*size:(i+1)*size])
		}
	}
}

// decodeBitmap unpacks 1-bit pixel data (PS3.5 §8.1.1: pixels packed
// into bytes least significant bit first, frames following each other
// without byte alignment) to one byte per sample, 0 or 1.
func decodeBitmap(raw []byte, ts transferSyntax, vr string, in *Instance, frames []int) (*Pixels, error) {
	if in.BitsStored != 1 || in.HighBit != 0 {
		return nil, fmt.Errorf("1-bit pixel data needs bits stored 1 and high bit 0, not %d and %d", in.BitsStored, in.HighBit)
	}
	if in.PixelRepresentation != 0 {
		return nil, errors.New("1-bit pixel data cannot be signed (pixel representation 1)")
	}
	if ts.bigEndian && vr == "OW" {
		// OW words were byte swapped on writing; undo it first.
		sw := make([]byte, len(raw))
		swapBytes(sw, raw, 2)
		if len(raw)%2 == 1 {
			sw[len(raw)-1] = raw[len(raw)-1]
		}
		raw = sw
	}
	nf := in.NumberOfFrames
	if frames != nil {
		nf = len(frames)
	}
	p := newPixels(in, nf)
	p.BitsAllocated, p.BitsStored, p.HighBit = 8, 1, 0
	fs := p.FrameSize() // samples per frame, one byte each
	p.Data = make([]byte, nf*fs)
	if frames == nil {
		unpackBits(p.Data, raw, 0)
		return p, nil
	}
	for i, f := range frames {
		unpackBits(p.Data[i*fs:(i+1)*fs], raw, (f-1)*fs)
	}
	return p, nil
}

// unpackBits writes len(dst) bits of src, starting at bit index first
// (bit k of the stream is bit k%8 of byte k/8), one per byte.
func unpackBits(dst, src []byte, first int) {
	i := 0
	// Leading bits up to a byte boundary.
	for ; i < len(dst) && (first+i)%8 != 0; i++ {
		k := first + i
		dst[i] = src[k>>3] >> (k & 7) & 1
	}
	// Whole bytes.
	b := (first + i) >> 3
	for ; i+8 <= len(dst); i += 8 {
		v := src[b]
		d := dst[i : i+8 : i+8]
		d[0], d[1], d[2], d[3] = v&1, v>>1&1, v>>2&1, v>>3&1
		d[4], d[5], d[6], d[7] = v>>4&1, v>>5&1, v>>6&1, v>>7
		b++
	}
	// Trailing bits.
	for ; i < len(dst); i++ {
		k := first + i
		dst[i] = src[k>>3] >> (k & 7) & 1
	}
}

// unpackInt32 extracts one value per size-byte little-endian container of
// src into dst: (c << lsh) >> rsh, the right shift arithmetic when
// signed. One loop per container size; no per-sample calls.
func unpackInt32(dst []int32, src []byte, size int, lsh, rsh uint, signed bool) {
	switch size {
	case 1:
		src = src[:len(dst)]
		if signed {
			for i, c := range src {
				dst[i] = int32(uint32(c)<<lsh) >> rsh
			}
		} else {
			for i, c := range src {
				dst[i] = int32(uint32(c) << lsh >> rsh)
			}
		}
	case 2:
		src = src[:2*len(dst)]
		if signed {
			for i := range dst {
				s := src[2*i : 2*i+2 : 2*i+2]
				dst[i] = int32((uint32(s[0])|uint32(s[1])<<8)<<lsh) >> rsh
			}
		} else {
			for i := range dst {
				s := src[2*i : 2*i+2 : 2*i+2]
				dst[i] = int32((uint32(s[0]) | uint32(s[1])<<8) << lsh >> rsh)
			}
		}
	case 4:
		src = src[:4*len(dst)]
		if signed {
			for i := range dst {
				s := src[4*i : 4*i+4 : 4*i+4]
				dst[i] = int32((uint32(s[0])|uint32(s[1])<<8|uint32(s[2])<<16|uint32(s[3])<<24)<<lsh) >> rsh
			}
		} else {
			for i := range dst {
				s := src[4*i : 4*i+4 : 4*i+4]
				dst[i] = int32((uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24) << lsh >> rsh)
			}
		}
	default:
		panic("dicomio: container size is not 1, 2 or 4 bytes")
	}
}

// unpackFloat32 is unpackInt32 followed by v*slope+intercept in float64,
// in the same loop. Unsigned values go through uint32, so 32-bit unsigned
// values keep their magnitude.
func unpackFloat32(dst []float32, src []byte, size int, lsh, rsh uint, signed bool, slope, intercept float64) {
	switch size {
	case 1:
		src = src[:len(dst)]
		if signed {
			for i, c := range src {
				dst[i] = float32(float64(int32(uint32(c)<<lsh)>>rsh)*slope + intercept)
			}
		} else {
			for i, c := range src {
				dst[i] = float32(float64(uint32(c)<<lsh>>rsh)*slope + intercept)
			}
		}
	case 2:
		src = src[:2*len(dst)]
		if signed {
			for i := range dst {
				s := src[2*i : 2*i+2 : 2*i+2]
				dst[i] = float32(float64(int32((uint32(s[0])|uint32(s[1])<<8)<<lsh)>>rsh)*slope + intercept)
			}
		} else {
			for i := range dst {
				s := src[2*i : 2*i+2 : 2*i+2]
				dst[i] = float32(float64((uint32(s[0])|uint32(s[1])<<8)<<lsh>>rsh)*slope + intercept)
			}
		}
	case 4:
		src = src[:4*len(dst)]
		if signed {
			for i := range dst {
				s := src[4*i : 4*i+4 : 4*i+4]
				dst[i] = float32(float64(int32((uint32(s[0])|uint32(s[1])<<8|uint32(s[2])<<16|uint32(s[3])<<24)<<lsh)>>rsh)*slope + intercept)
			}
		} else {
			for i := range dst {
				s := src[4*i : 4*i+4 : 4*i+4]
				dst[i] = float32(float64((uint32(s[0])|uint32(s[1])<<8|uint32(s[2])<<16|uint32(s[3])<<24)<<lsh>>rsh)*slope + intercept)
			}
		}
	default:
		panic("dicomio: container size is not 1, 2 or 4 bytes")
	}
}
