package volume

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/radtriage/radtriage/dicomio"
	"github.com/radtriage/radtriage/internal/testenv"
)

// TestUnpackInt16MatchesInt32 checks the int16 path of Assemble against
// the naive conversion (Pixels.Int32, and the padding value for stored
// values in the padding range) on every bit layout it takes, and that it
// declines the layouts whose values may not fit an int16.
func TestUnpackInt16MatchesInt32(t *testing.T) {
	for _, tc := range []struct {
		alloc, stored, high int
		signed              bool
		pad                 bool
	}{
		{16, 16, 15, true, false},
		{16, 16, 15, true, true},
		{16, 12, 11, false, false},
		{16, 12, 11, false, true},
		{16, 12, 15, false, false},
		{16, 15, 14, false, false},
		{16, 10, 13, false, false},
		{16, 12, 11, true, true},
		{16, 10, 13, true, false},
		{16, 1, 0, false, false},
		{8, 8, 7, false, false},
		{8, 8, 7, true, true},
		{8, 6, 6, true, false},
		{8, 4, 3, false, true},
	} {
		name := fmt.Sprintf("%d-%d-%d-signed%v-pad%v", tc.alloc, tc.stored, tc.high, tc.signed, tc.pad)
		t.Run(name, func(t *testing.T) {
			// 13×7 pixels: an odd count, so that the word loop has a tail.
			const rows, cols = 13, 7
			n := rows * cols
			px := &dicomio.Pixels{Rows: rows, Columns: cols, Samples: 1, Frames: 2, BitsAllocated: tc.alloc,
				BitsStored: tc.stored, HighBit: tc.high, Signed: tc.signed, Data: make([]byte, 2*n*tc.alloc/8)}
			for i := range px.Data {
				px.Data[i] = byte(i*7919 + i/3)
			}
			const padLo, padHi, padStored = -3, 40, -1111
			for frame := range 2 {
				got := make([]int16, n)
				if !unpackInt16(got, px, frame, tc.pad, padLo, padHi, padStored) {
					t.Fatal("unpackInt16 declined a layout that fits an int16")
				}
				want := make([]int32, n)
				must(t, px.Int32(frame, want))
				for i, w := range want {
					if tc.pad && w >= padLo && w <= padHi {
						w = padStored
					}
					if int32(got[i]) != w {
						t.Fatalf("frame %d value %d: int16 path gives %d, Int32 %d", frame, i, got[i], w)
					}
				}
			}
		})
	}
	for _, tc := range []struct {
		name                string
		alloc, stored, high int
		signed              bool
	}{
		{"unsigned 16-bit", 16, 16, 15, false},
		{"32-bit containers", 32, 16, 15, true},
		{"high bit beyond the container", 16, 12, 16, true},
		{"more bits stored than high bit allows", 16, 12, 10, true},
	} {
		px := &dicomio.Pixels{Rows: 2, Columns: 2, Samples: 1, Frames: 1, BitsAllocated: tc.alloc,
			BitsStored: tc.stored, HighBit: tc.high, Signed: tc.signed, Data: make([]byte, 4*tc.alloc/8)}
		if unpackInt16(make([]int16, 4), px, 0, false, 0, 0, 0) {
			t.Errorf("%s: unpackInt16 took a layout whose values may not fit an int16", tc.name)
		}
	}
}

// storedStack builds a CT stack of four 8×6 slices 1 mm apart whose
// stored values are base + 10·k + i − j, with the given rescale.
func storedStack(t *testing.T, base int32, slope, intercept float64, edit func(k int, s *slice)) *Stack {
	t.Helper()
	sy := newSynth("CT")
	var ss []*slice
	for k := range 4 {
		s := sy.slice(fmt.Sprintf("I%d", k), [3]float64{0, 0, float64(k)}, func(i, j int) int32 {
			return base + int32(10*k+i-j)
		})
		s.slope, s.intercept = slope, intercept
		if edit != nil {
			edit(k, s)
		}
		ss = append(ss, s)
	}
	_, st := oneStack(t, ss)
	return st
}

// wantValues is the naive conversion of storedStack's voxels.
func wantValues(v *Volume, base int32, slope, intercept float64) []float32 {
	want := make([]float32, 0, v.Voxels())
	for k := range v.Size[2] {
		for j := range v.Size[1] {
			for i := range v.Size[0] {
				want = append(want, float32(float64(base+int32(10*k+i-j))*slope+intercept))
			}
		}
	}
	return want
}

// TestAssembleStored checks that Assemble keeps the stored integers when
// they give every voxel exactly, that Values then equals the naive
// conversion, and each fallback to float32 values.
func TestAssembleStored(t *testing.T) {
	t.Run("shared rescale", func(t *testing.T) {
		st := storedStack(t, -30000, 0.5, -7.25, nil)
		v := assemble(t, st, AssembleOptions{})
		if v.Stored == nil || v.Slope != 0.5 || v.Intercept != -7.25 {
			t.Fatalf("Stored kept %v, slope %v intercept %v", v.Stored != nil, v.Slope, v.Intercept)
		}
		if v.Stored[0] != -30000 || v.Stored[len(v.Stored)-1] != -30000+30+7-5 {
			t.Errorf("stored values %d … %d", v.Stored[0], v.Stored[len(v.Stored)-1])
		}
		if want := wantValues(v, -30000, 0.5, -7.25); !slices.Equal(v.Values(), want) {
			t.Errorf("Values %v, want %v", v.Values()[:8], want[:8])
		}
	})
	t.Run("padding", func(t *testing.T) {
		st := storedStack(t, 100, 1, -1024, func(k int, s *slice) {
			s.padding, s.padLo, s.padHi = true, 100, 101 // voxels (0,0) and (1,0) of slice 0
		})
		v := assemble(t, st, AssembleOptions{})
		if v.Stored == nil {
			t.Fatal("Stored not kept for a padding value that is a stored integer")
		}
		if v.Stored[0] != 0 || v.Values()[0] != PaddingHU || v.Values()[1] != PaddingHU || v.Values()[2] != 102-1024 {
			t.Errorf("padding voxels: stored %d, values %v", v.Stored[0], v.Values()[:3])
		}
	})
	t.Run("padding not a stored integer", func(t *testing.T) {
		st := storedStack(t, 100, 3, 0, func(k int, s *slice) {
			s.padding, s.padLo, s.padHi = true, 100, 100
		})
		v := assemble(t, st, AssembleOptions{})
		if v.Stored != nil || v.Slope != 0 || v.Data[0] != PaddingHU || v.Data[1] != 303 {
			t.Errorf("Stored kept %v, slope %v, values %v", v.Stored != nil, v.Slope, v.Data[:2])
		}
	})
	t.Run("differing rescale", func(t *testing.T) {
		st := storedStack(t, 0, 1, 0, func(k int, s *slice) {
			if k == 2 {
				s.slope = 2
			}
		})
		v := assemble(t, st, AssembleOptions{})
		if v.Stored != nil || v.Slope != 0 || v.Data == nil {
			t.Fatalf("Stored kept %v, slope %v for slices of different rescale", v.Stored != nil, v.Slope)
		}
		if got, want := v.Data[2*48+1], float32(2*21); got != want {
			t.Errorf("slice 2 voxel 1 = %v, want %v", got, want)
		}
	})
	t.Run("beyond int16", func(t *testing.T) {
		st := storedStack(t, 40000, 1, -1024, func(k int, s *slice) { s.signed, s.bits = false, 16 })
		v := assemble(t, st, AssembleOptions{})
		if v.Stored != nil || v.Data == nil || v.Slope != 1 {
			t.Fatalf("Stored kept %v, slope %v for values beyond int16", v.Stored != nil, v.Slope)
		}
		if want := wantValues(v, 40000, 1, -1024); !slices.Equal(v.Data, want) {
			t.Errorf("values %v, want %v", v.Data[:8], want[:8])
		}
	})
	t.Run("resampled", func(t *testing.T) {
		st := storedStack(t, 0, 1, 0, func(k int, s *slice) {
			if k == 3 {
				s.pos[2] = 4 // a gap
			}
		})
		v := assemble(t, st, AssembleOptions{})
		// 0, 1, 2, 4 mm: ceil((4 − 2/2)/1) = 3 slices, as dcm2niix's _Eq_.
		if v.Stored != nil || v.Slope != 0 || v.Size[2] != 3 {
			t.Errorf("Stored kept %v, slope %v, %d slices for a resampled stack", v.Stored != nil, v.Slope, v.Size[2])
		}
	})
	t.Run("tilt", func(t *testing.T) {
		tilted := func(k int, s *slice) {
			s.iop = [6]float64{1, 0, 0, 0, math.Cos(0.2), -math.Sin(0.2)}
			s.pos = [3]float64{0, 0, 2 * float64(k)}
			s.in = &dicomio.Instance{Modality: "CT", SeriesInstanceUID: "1.2.3"}
			s.in.GantryDetectorTilt = 11.46
		}
		st := storedStack(t, 0, 1, -1024, tilted)
		if !st.Tilted {
			t.Fatal("the stack is not tilted")
		}
		if v := assemble(t, st, AssembleOptions{}); v.Stored != nil || v.Slope != 0 {
			t.Errorf("shear corrected: Stored kept %v, slope %v", v.Stored != nil, v.Slope)
		}
		v := assemble(t, storedStack(t, 0, 1, -1024, tilted), AssembleOptions{TiltAffine: true})
		if v.Stored == nil || v.Slope != 1 {
			t.Fatalf("sheared affine: Stored kept %v, slope %v", v.Stored != nil, v.Slope)
		}
		if want := wantValues(v, 0, 1, -1024); !slices.Equal(v.Values(), want) {
			t.Errorf("values %v, want %v", v.Values()[:8], want[:8])
		}
	})
}

// TestNIfTIStoredSameAsValues checks that writing a volume from Stored
// gives the very bytes of writing the same volume from its float32
// values, for rescales that the header's float32 scl_slope/scl_inter
// give back exactly and for some that they do not (the writer then falls
// back to FLOAT32 as it does from Data), plain and gzip-compressed.
func TestNIfTIStoredSameAsValues(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		slope, inter float64
		lo, hi       int16
	}{
		{1, -1024, -2000, 3000},
		{1, 0, math.MinInt16, math.MaxInt16},
		{0.5, -7.25, -300, 300},
		{1.2798534798534797, 0, 0, 4095},
		{0.1, 0.3, -100, 100},
		{3e-7, 1e6, -5, 5},
	} {
		stored := make([]int16, 9*7*5)
		for i := range stored {
			stored[i] = tc.lo + int16((int(tc.hi)-int(tc.lo))*i/(len(stored)-1))
		}
		v := &Volume{Size: [4]int{9, 7, 5, 1}, Spacing: [3]float64{0.5, 0.75, 2}, Axes: [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}},
			Slope: tc.slope, Intercept: tc.inter, StoredSigned: true, StoredBits: 16, Stored: stored}
		ref := *v
		ref.Stored = nil
		ref.Data = slices.Clone((&Volume{Slope: tc.slope, Intercept: tc.inter, Stored: stored}).Values())
		for _, ext := range []string{".nii", ".nii.gz"} {
			for _, opts := range []NIfTIOptions{{}, {KeepRowOrder: true}, {Float32: true}} {
				name := fmt.Sprintf("slope %g inter %g %s %+v", tc.slope, tc.inter, ext, opts)
				a, b := filepath.Join(dir, "stored"+ext), filepath.Join(dir, "values"+ext)
				w := *v // a copy: Values must not be cached between cases
				must(t, WriteNIfTIFile(a, &w, opts))
				must(t, WriteNIfTIFile(b, &ref, opts))
				ga, err := os.ReadFile(a)
				must(t, err)
				gb, err := os.ReadFile(b)
				must(t, err)
				if !bytes.Equal(ga, gb) {
					t.Errorf("%s: the file written from Stored differs from the one written from the values", name)
				}
				back, err := ReadNIfTIFile(a)
				must(t, err)
				if opts.KeepRowOrder && !slices.Equal(back.Data, ref.Data) {
					t.Errorf("%s: read back values differ", name)
				}
			}
		}
	}
}

// BenchmarkNIfTIStored writes ../shared/dicom/ct-head-5mm (assembled
// once) as .nii, from Stored (INT16 rows copied) and from float32 values
// (each checked against its stored integer).
func BenchmarkNIfTIStored(b *testing.B) {
	c, err := LoadDir(os.DirFS(filepath.Join(testenv.SharedDICOM(b), "ct-head-5mm")), LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	v, err := c.Series[0].Stacks[0].Assemble(AssembleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if v.Stored == nil {
		b.Fatal("ct-head-5mm assembled without Stored")
	}
	floats := *v
	floats.Data = slices.Clone(v.Values())
	floats.Stored = nil
	v.Data = nil
	out := filepath.Join(b.TempDir(), "x.nii")
	for _, bc := range []struct {
		name string
		v    *Volume
	}{{"stored", v}, {"float32", &floats}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(2 * v.Voxels()))
			for b.Loop() {
				if err := WriteNIfTIFile(out, bc.v, NIfTIOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
