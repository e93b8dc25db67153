package volume

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/internal/testenv"
)

// obliqueVolume is a small 4D volume with rotated, non-square voxels and
// values that are a rescale of int16 integers.
func obliqueVolume(slope, inter float64) *Volume {
	v := &Volume{
		Size:      [4]int{5, 4, 3, 2},
		Spacing:   [3]float64{0.7, 0.9, 2.5},
		Origin:    [3]float64{-12.5, 30.25, 101},
		Slope:     slope,
		Intercept: inter,
	}
	// Rotation of 20° about LPS z, then 10° about x.
	c1, s1 := math.Cos(20*math.Pi/180), math.Sin(20*math.Pi/180)
	c2, s2 := math.Cos(10*math.Pi/180), math.Sin(10*math.Pi/180)
	v.Axes[0] = [3]float64{c1, s1, 0}
	v.Axes[1] = [3]float64{-s1 * c2, c1 * c2, s2}
	v.Axes[2] = niftiCross(v.Axes[0], v.Axes[1])
	v.Data = make([]float32, 5*4*3*2)
	for i := range v.Data {
		stored := float64((i*37)%3000 - 1500)
		v.Data[i] = float32(stored*slope + inter)
		if slope == 0 {
			v.Data[i] = float32(i)*0.37 - 4
		}
	}
	return v
}

func niftiCross(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

// niftiPosition is the LPS position of voxel (i, j, k).
func niftiPosition(v *Volume, i, j, k int) [3]float64 {
	m := v.Affine()
	var p [3]float64
	for r := range 3 {
		p[r] = m[r][0]*float64(i) + m[r][1]*float64(j) + m[r][2]*float64(k) + m[r][3]
	}
	return p
}

func TestNIfTIRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		slope     float64
		inter     float64
		opts      NIfTIOptions
		gz        bool
		datatype  int16
		wantSlope float64
	}{
		{name: "int16 flipped", slope: 1, inter: -1024, datatype: niftiInt16, wantSlope: 1},
		{name: "int16 scaled keep rows", slope: 0.5, inter: 3, opts: NIfTIOptions{KeepRowOrder: true}, datatype: niftiInt16, wantSlope: 0.5},
		{name: "forced float", slope: 1, inter: -1024, opts: NIfTIOptions{Float32: true}, datatype: niftiFloat32},
		{name: "float", slope: 0, datatype: niftiFloat32},
		{name: "gzip", slope: 2, inter: 1, gz: true, datatype: niftiInt16, wantSlope: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := obliqueVolume(tt.slope, tt.inter)
			tt.opts.Description = "radtriage test"
			tt.opts.AuxFile = "a series description longer than 23 bytes"
			tt.opts.RepetitionTime = 2
			var buf bytes.Buffer
			if tt.gz {
				zw := gzip.NewWriter(&buf)
				if err := WriteNIfTI(zw, v, tt.opts); err != nil {
					t.Fatal(err)
				}
				zw.Close()
			} else if err := WriteNIfTI(&buf, v, tt.opts); err != nil {
				t.Fatal(err)
			}
			got, h, err := readNIfTI(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if h.Datatype != tt.datatype {
				t.Errorf("datatype %d, want %d", h.Datatype, tt.datatype)
			}
			if got.Slope != tt.wantSlope {
				t.Errorf("Slope %v, want %v", got.Slope, tt.wantSlope)
			}
			if h.AuxFile != "a series description lo" {
				t.Errorf("aux_file %q, want the first 23 bytes", h.AuxFile)
			}
			if h.Descrip != "radtriage test" || h.Pixdim[4] != 2 || h.Dim[0] != 4 || h.XYZTUnits != 10 {
				t.Errorf("header descrip %q pixdim[4] %v dim[0] %d xyzt_units %d", h.Descrip, h.Pixdim[4], h.Dim[0], h.XYZTUnits)
			}
			if got.Size != v.Size {
				t.Fatalf("size %v, want %v", got.Size, v.Size)
			}
			// The file may hold the rows in the other order; every voxel
			// must keep its value and its position.
			ny := v.Size[1]
			for tt4 := range v.Size[3] {
				for k := range v.Size[2] {
					for j := range ny {
						jj := ny - 1 - j
						if tt.opts.KeepRowOrder {
							jj = j
						}
						for i := range v.Size[0] {
							want := v.Data[i+v.Size[0]*(j+ny*(k+v.Size[2]*tt4))]
							g := got.Data[i+v.Size[0]*(jj+ny*(k+v.Size[2]*tt4))]
							if g != want {
								t.Fatalf("voxel (%d,%d,%d,%d) = %v, want %v", i, j, k, tt4, g, want)
							}
							p, q := niftiPosition(v, i, j, k), niftiPosition(got, i, jj, k)
							for r := range 3 {
								if math.Abs(p[r]-q[r]) > 1e-4 {
									t.Fatalf("voxel (%d,%d,%d) at %v, want %v", i, j, k, q, p)
								}
							}
						}
					}
				}
			}
			// qform and sform agree.
			qf, sf := h.QForm(), h.SForm()
			for r := range 3 {
				for c := range 4 {
					if math.Abs(qf[r][c]-sf[r][c]) > 1e-4 {
						t.Fatalf("qform %v and sform %v differ", qf, sf)
					}
				}
			}
		})
	}
}

// TestNIfTIQuaternionMatchesDcm2niix recomputes, from each dcm2niix
// reference's sform, the niftiQuaternion and qfac and compares them with what
// dcm2niix wrote, and checks the reader's qform against the sform.
func TestNIfTIQuaternionMatchesDcm2niix(t *testing.T) {
	dir := testenv.SharedDICOM(t)
	files := []string{"ct-head-5mm.ref/ct-head-5mm.nii.gz"}
	for _, pat := range []string{"enhanced/Ref/*.nii", "transfer-syntaxes/Ref/*.nii"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range m {
			rel, _ := filepath.Rel(dir, f)
			files = append(files, rel)
		}
	}
	for _, rel := range files {
		t.Run(rel, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h, err := ReadNIfTIHeader(f)
			if err != nil {
				t.Fatal(err)
			}
			b, c, d, qfac := niftiQuaternion(h.SForm())
			if float32(qfac) != h.Pixdim[0] {
				t.Errorf("qfac %v, dcm2niix wrote %v", qfac, h.Pixdim[0])
			}
			want := [3]float64{float64(h.Quatern[0]), float64(h.Quatern[1]), float64(h.Quatern[2])}
			got := [3]float64{b, c, d}
			// q and -q are the same rotation (a ≈ 0 can go either way).
			same, opposite := true, true
			for i := range 3 {
				same = same && math.Abs(got[i]-want[i]) < 1e-5
				opposite = opposite && math.Abs(got[i]+want[i]) < 1e-5
			}
			if !same && !opposite {
				t.Errorf("niftiQuaternion %v, dcm2niix wrote %v", got, want)
			}
			qf, sf := h.QForm(), h.SForm()
			for r := range 3 {
				for c := range 4 {
					if math.Abs(qf[r][c]-sf[r][c]) > 1e-4 {
						t.Fatalf("qform %v and sform %v differ at [%d][%d]", qf, sf, r, c)
					}
				}
			}
		})
	}
}

// validNIfTI is a small file that ReadNIfTI accepts.
func validNIfTI(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := WriteNIfTI(&buf, obliqueVolume(1, -1024), NIfTIOptions{}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadNIfTIBigEndian(t *testing.T) {
	v := obliqueVolume(0.5, 10)
	var le bytes.Buffer
	if err := WriteNIfTI(&le, v, NIfTIOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := decodeNIfTIHeader(le.Bytes()[:niftiHeaderSize])
	if err != nil {
		t.Fatal(err)
	}
	h.ByteOrder = binary.BigEndian
	be := make([]byte, le.Len())
	h.encode(be[:niftiVoxOffset])
	for i := niftiVoxOffset; i < le.Len(); i += 2 {
		be[i], be[i+1] = le.Bytes()[i+1], le.Bytes()[i]
	}
	a, err := ReadNIfTI(bytes.NewReader(le.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadNIfTI(bytes.NewReader(be))
	if err != nil {
		t.Fatal(err)
	}
	if a.Origin != b.Origin || a.Axes != b.Axes || a.Spacing != b.Spacing {
		t.Errorf("big-endian geometry %v %v %v, little-endian %v %v %v", b.Origin, b.Axes, b.Spacing, a.Origin, a.Axes, a.Spacing)
	}
	for i := range a.Data {
		if a.Data[i] != b.Data[i] {
			t.Fatalf("voxel %d: big-endian %v, little-endian %v", i, b.Data[i], a.Data[i])
		}
	}
}

// TestReadNIfTIDatatypes writes each supported datatype by hand and
// checks the scaled values.
func TestReadNIfTIDatatypes(t *testing.T) {
	raw := []float64{-3, 0, 1, 7, 100, 127}
	for dt, bits := range niftiBitpix {
		h, err := decodeNIfTIHeader(validNIfTI(t)[:niftiHeaderSize])
		if err != nil {
			t.Fatal(err)
		}
		h.Dim = [8]int16{3, 3, 2, 1, 1, 1, 1, 1}
		h.Datatype, h.Bitpix = dt, bits
		h.SclSlope, h.SclInter = 2, 1
		buf := make([]byte, niftiVoxOffset+len(raw)*int(bits/8))
		h.encode(buf)
		unsigned := dt == niftiUint8 || dt == niftiUint16
		for i, x := range raw {
			if unsigned && x < 0 {
				raw[i], x = 3, 3
			}
			p := buf[niftiVoxOffset+i*int(bits/8):]
			switch dt {
			case niftiUint8, niftiInt8:
				p[0] = byte(int8(x))
			case niftiInt16, niftiUint16:
				binary.LittleEndian.PutUint16(p, uint16(int16(x)))
			case niftiInt32:
				binary.LittleEndian.PutUint32(p, uint32(int32(x)))
			case niftiFloat32:
				binary.LittleEndian.PutUint32(p, math.Float32bits(float32(x)))
			case niftiFloat64:
				binary.LittleEndian.PutUint64(p, math.Float64bits(x))
			}
		}
		v, err := ReadNIfTI(bytes.NewReader(buf))
		if err != nil {
			t.Fatalf("datatype %d: %v", dt, err)
		}
		for i, x := range raw {
			if want := float32(2*x + 1); v.Data[i] != want {
				t.Errorf("datatype %d voxel %d = %v, want %v", dt, i, v.Data[i], want)
			}
		}
	}
}

func TestReadNIfTIRejects(t *testing.T) {
	good := validNIfTI(t)
	put16 := func(off int, x int16) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint16(b[off:], uint16(x)); return b }
	}
	putf := func(off int, x float32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], math.Float32bits(x)); return b }
	}
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"empty", func(b []byte) []byte { return nil }, "shorter than the 348-byte header"},
		{"short header", func(b []byte) []byte { return b[:200] }, "shorter than the 348-byte header"},
		{"sizeof_hdr", func(b []byte) []byte { b[0] = 0x5d; return b }, "sizeof_hdr"},
		{"magic", func(b []byte) []byte { copy(b[344:], "abc\x00"); return b }, "magic"},
		{"ni1", func(b []byte) []byte { copy(b[344:], "ni1\x00"); return b }, "separate .img"},
		{"dim0 zero", put16(40, 0), "dim[0] is 0"},
		{"dim0 eight", put16(40, 8), "dim[0] is 8"},
		{"negative dim", put16(44, -4), "dim[2] is -4"},
		{"dim5", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[40:], 5)
			binary.LittleEndian.PutUint16(b[50:], 2)
			return b
		}, "dim[5] is 2"},
		{"absurd size", func(b []byte) []byte {
			for i := 1; i <= 4; i++ {
				binary.LittleEndian.PutUint16(b[40+2*i:], 30000)
			}
			return b
		}, "too large"},
		{"datatype", put16(70, 128), "unsupported NIfTI datatype 128"},
		{"bitpix", put16(72, 8), "bitpix is 8"},
		{"vox_offset small", putf(108, 100), "vox_offset is 100"},
		{"vox_offset fraction", putf(108, 352.5), "vox_offset is 352.5"},
		{"vox_offset NaN", putf(108, float32(math.NaN())), "vox_offset is NaN"},
		{"vox_offset beyond file", putf(108, 1<<20), "ends before vox_offset"},
		{"truncated data", func(b []byte) []byte { return b[:len(b)-1] }, "truncated"},
		{"degenerate affine", func(b []byte) []byte {
			for off := 280; off < 328; off += 4 {
				binary.LittleEndian.PutUint32(b[off:], 0)
			}
			return b
		}, "column 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(bytes.Clone(good))
			_, err := ReadNIfTI(bytes.NewReader(b))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// The same refusals through gzip.
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(good[:len(good)-10])
	zw.Close()
	if _, err := ReadNIfTI(&zb); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated gzip: error %v, want one containing \"truncated\"", err)
	}
	if _, err := ReadNIfTI(bytes.NewReader([]byte{0x1f, 0x8b, 1, 2, 3})); err == nil {
		t.Fatal("corrupt gzip: no error")
	}
	// A wrong CRC-32 in the gzip trailer.
	zb.Reset()
	zw = gzip.NewWriter(&zb)
	zw.Write(good)
	zw.Close()
	bad := bytes.Clone(zb.Bytes())
	bad[len(bad)-8] ^= 0xff
	if _, err := ReadNIfTI(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("bad gzip CRC: error %v, want a checksum error", err)
	}
}

func TestWriteNIfTIRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Volume)
		want   string
	}{
		{"data length", func(v *Volume) { v.Data = v.Data[1:] }, "holds 119 values"},
		{"zero size", func(v *Volume) { v.Size[3] = 0 }, "dimension 3"},
		{"huge size", func(v *Volume) { v.Size[0] = 40000 }, "dimension 0"},
		{"spacing", func(v *Volume) { v.Spacing[2] = 0 }, "spacing 2"},
		{"NaN spacing", func(v *Volume) { v.Spacing[1] = math.NaN() }, "spacing 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := obliqueVolume(1, 0)
			tt.mutate(v)
			err := WriteNIfTI(&bytes.Buffer{}, v, NIfTIOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if err := WriteNIfTI(&bytes.Buffer{}, nil, NIfTIOptions{}); err == nil {
		t.Fatal("nil volume: no error")
	}
}

// TestWriteNIfTIDatatypeChoice checks INT16, UINT16, INT32 and the
// FLOAT32 fallback when a voxel is not a rescaled integer.
func TestWriteNIfTIDatatypeChoice(t *testing.T) {
	tests := []struct {
		name   string
		values []float32
		slope  float64
		want   int16
	}{
		{"int16", []float32{-32768, 0, 32767}, 1, niftiInt16},
		{"uint16", []float32{0, 40000, 65535}, 1, niftiUint16},
		{"int32", []float32{-1, 70000}, 1, niftiInt32},
		{"not integers", []float32{0.25, 1}, 1, niftiFloat32},
		{"scaled int16", []float32{-3, 0.5, 1000}, 0.5, niftiInt16},
		{"not a rescale", []float32{0.3, 1}, 0.5, niftiFloat32},
		{"int32 beyond 2^24", []float32{1 << 25, 0}, 1, niftiInt32},
		{"beyond int32", []float32{1e10, 0}, 1, niftiFloat32},
		{"NaN", []float32{float32(math.NaN()), 0}, 1, niftiFloat32},
		{"no slope", []float32{1, 2}, 0, niftiFloat32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &Volume{Size: [4]int{len(tt.values), 1, 1, 1}, Spacing: [3]float64{1, 1, 1}, Data: tt.values, Slope: tt.slope}
			v.Axes = [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
			var buf bytes.Buffer
			if err := WriteNIfTI(&buf, v, NIfTIOptions{}); err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{"WriteNIfTI": buf.Bytes()}
			// The file writers take other paths (streaming for .nii,
			// parallel gzip for .nii.gz): the same result.
			for _, name := range []string{"x.nii", "x.nii.gz"} {
				p := filepath.Join(t.TempDir(), name)
				if err := WriteNIfTIFile(p, v, NIfTIOptions{}); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				files[name] = b
			}
			for name, b := range files {
				got, h, err := readNIfTI(bytes.NewReader(b))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if h.Datatype != tt.want {
					t.Errorf("%s: datatype %d, want %d", name, h.Datatype, tt.want)
				}
				for i, x := range tt.values {
					if got.Data[i] != x && !(x != x && got.Data[i] != got.Data[i]) {
						t.Errorf("%s: voxel %d = %v, want %v", name, i, got.Data[i], x)
					}
				}
			}
		})
	}
}

func TestNIfTIFileGzip(t *testing.T) {
	v := obliqueVolume(1, -1024)
	dir := t.TempDir()
	for _, name := range []string{"a.nii", "a.nii.gz"} {
		p := filepath.Join(dir, name)
		if err := WriteNIfTIFile(p, v, NIfTIOptions{}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if gz := len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b; gz != strings.HasSuffix(name, ".gz") {
			t.Errorf("%s: gzip-compressed is %v", name, gz)
		}
		got, err := ReadNIfTIFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != v.Size || len(got.Data) != len(v.Data) {
			t.Errorf("%s: size %v, want %v", name, got.Size, v.Size)
		}
	}
	if err := WriteNIfTIFile(filepath.Join(dir, "bad.nii"), &Volume{}, NIfTIOptions{}); err == nil {
		t.Error("empty volume: no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.nii")); !os.IsNotExist(err) {
		t.Error("a failed write left its file behind")
	}
}

func FuzzReadNIfTI(f *testing.F) {
	good := validNIfTI(f)
	f.Add(good)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(good)
	zw.Close()
	f.Add(zb.Bytes())
	f.Add(good[:niftiHeaderSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ReadNIfTI(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(v.Data) != v.Size[0]*v.Size[1]*v.Size[2]*v.Size[3] {
			t.Fatalf("size %v with %d values", v.Size, len(v.Data))
		}
		// What was read can be written again unless its geometry is
		// unusable (a zero spacing cannot come back from a reader).
		var out bytes.Buffer
		if err := WriteNIfTI(&out, v, NIfTIOptions{}); err != nil && !strings.Contains(err.Error(), "dimension") {
			t.Fatalf("re-writing a volume that was read: %v", err)
		}
	})
}
