package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/radtriage/radtriage/kernels/internal/par"
)

// confPrep checks Rescale, Resample, Flip, CropPad, Activate and Binary
// against naive loops written here and against PyTorch
// (testdata/golden_prep.py), then their errors and the buffer pool.
//
// Tolerances (absolute + relative×|want|): Flip and CropPad copy, so they
// are exact; Binary 1e-6 relative (float32 IEEE arithmetic); Rescale 1e-5
// + 1e-5 (float32 against float64); Resample of values within ±100 2e-4 +
// 1e-5 (float32 weights against float64); activations 1e-6 + 1e-6.
//
// Resample's edge rule, which the naive loop spells out (refResample): in
// linear mode a sample coordinate x inside [-ResampleEdge,
// size-1+ResampleEdge] on every axis is clamped to [0, size-1] and
// interpolated from in-volume voxels; any other point takes the fill. The
// PyTorch goldens are grid_sample(align_corners=True, padding_mode=
// "border") with the points outside that range set to the fill. In
// nearest mode the voxel floor(x+0.5) must exist on every axis.
func confPrep(t *testing.T, b Backend) {
	runChecks(t, b, []backendCheck{
		{"golden", prepGoldens},
		{"rescale", prepRescale},
		{"resample", prepResample},
		{"flip", prepFlip},
		{"croppad", prepCropPad},
		{"activate", prepActivate},
		{"binary", prepBinary},
		{"errors", prepErrors},
		{"pool", prepPool},
		{"allocs", prepAllocs},
	})
}

func randFloats(rng *rand.Rand, n int, lo, hi float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = lo + (hi-lo)*rng.Float32()
	}
	return out
}

func uploadI16(t *testing.T, b Backend, data []int16) *Buffer {
	t.Helper()
	buf := allocOf(t, b, Int16, len(data))
	if err := b.Upload(buf, data); err != nil {
		t.Fatal(err)
	}
	return buf
}

func prepGoldens(t *testing.T, b Backend) {
	for name, g := range readGoldens(t, "prep") {
		t.Run(name, func(t *testing.T) {
			switch g.Op {
			case "Rescale":
				var dtype string
				var slope, icept, centre, width float32
				var clip bool
				g.params(t, "dtype", &dtype, "slope", &slope, "intercept", &icept, "center", &centre,
					"width", &width, "clip", &clip)
				src, want := g.tensor(t, "src").Data, g.tensor(t, "out").Data
				var sb *Buffer
				if dtype == "int16" {
					s := make([]int16, len(src))
					for i, v := range src {
						s[i] = int16(v)
					}
					sb = uploadI16(t, b, s)
				} else {
					sb = upload(t, b, src)
				}
				dst := alloc(t, b, len(src))
				if err := b.Rescale(dst, sb, len(src), slope, icept, Window{centre, width, clip}); err != nil {
					t.Fatal(err)
				}
				closeTo(t, name, download(t, b, dst, len(want)), want, 1e-5, 1e-5)
			case "Resample":
				var ss, ds [3]int
				var m AxisMap
				var mode string
				var fill float32
				g.params(t, "srcSize", &ss, "dstSize", &ds, "scale", &m.Scale, "offset", &m.Offset, "mode", &mode,
					"fill", &fill)
				interp := Linear
				if mode == "nearest" {
					interp = Nearest
				}
				src, want := g.tensor(t, "src").Data, g.tensor(t, "out").Data
				checkOp(t, b, name, want, 2e-4, 1e-5, func(dst *Buffer) error {
					return b.Resample(dst, upload(t, b, src), ds, ss, m, interp, fill)
				})
			case "Flip":
				var n, c int
				var size [3]int
				var axes [3]bool
				g.params(t, "n", &n, "c", &c, "size", &size, "axes", &axes)
				src, want := g.tensor(t, "src").Data, g.tensor(t, "out").Data
				checkOp(t, b, name, want, 0, 0, func(dst *Buffer) error {
					return b.Flip(dst, upload(t, b, src), n, c, size, axes)
				})
			case "CropPad":
				var n, c int
				var ss, ds, off [3]int
				var fill float32
				g.params(t, "n", &n, "c", &c, "srcSize", &ss, "dstSize", &ds, "offset", &off, "fill", &fill)
				src, want := g.tensor(t, "src").Data, g.tensor(t, "out").Data
				checkOp(t, b, name, want, 0, 0, func(dst *Buffer) error {
					return b.CropPad(dst, upload(t, b, src), n, c, ss, ds, off, fill)
				})
			case "Activate":
				var alpha float32
				g.param(t, "alpha", &alpha)
				src := g.tensor(t, "src").Data
				sb := upload(t, b, src)
				for _, c := range []struct {
					key string
					act Activation
				}{
					{"relu", Activation{Kind: ActReLU}},
					{"leaky", Activation{Kind: ActLeakyReLU, Alpha: alpha}},
					{"sigmoid", Activation{Kind: ActSigmoid}},
				} {
					checkOp(t, b, name+" "+c.key, g.tensor(t, c.key).Data, 1e-6, 1e-6, func(dst *Buffer) error {
						return b.Activate(dst, sb, len(src), c.act)
					})
				}
			case "Binary":
				var as, bs, os []int
				g.params(t, "aShape", &as, "bShape", &bs, "outShape", &os)
				ab, bb := upload(t, b, g.tensor(t, "a").Data), upload(t, b, g.tensor(t, "b").Data)
				for op, key := range map[BinOp]string{OpAdd: "add", OpSub: "sub", OpMul: "mul", OpDiv: "div"} {
					want := g.tensor(t, key).Data
					checkOp(t, b, name+" "+key, want, 0, 1e-6, func(dst *Buffer) error {
						return b.Binary(op, dst, ab, bb, os, as, bs)
					})
				}
			default:
				t.Fatalf("unknown op %q", g.Op)
			}
		})
	}
}

// refRescale is Rescale in float64.
func refRescale(src []float64, slope, icept float32, w Window) []float32 {
	out := make([]float32, len(src))
	for i, v := range src {
		x := v*float64(slope) + float64(icept)
		if w.Width != 0 {
			x = (x - (float64(w.Center) - float64(w.Width)/2)) / float64(w.Width)
			if w.Clip {
				x = min(max(x, 0), 1)
			}
		}
		out[i] = float32(x)
	}
	return out
}

func prepRescale(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(11, 1))
	const n = 70001 // several parallel chunks
	i16 := make([]int16, n)
	f64i, f64f := make([]float64, n), make([]float64, n)
	f32 := randFloats(rng, n, -2000, 3000)
	for i := range i16 {
		i16[i] = int16(rng.IntN(65536) - 32768)
		f64i[i] = float64(i16[i])
		f64f[i] = float64(f32[i])
	}
	ib, fb := uploadI16(t, b, i16), upload(t, b, f32)
	for _, c := range []struct {
		slope, icept float32
		w            Window
	}{
		{1, -1024, Window{40, 400, true}},
		{1, 0, Window{}},
		{0.25, 7, Window{-500, 2000, false}},
		{2.5, -3, Window{100, 1, true}},
	} {
		name := fmt.Sprintf("slope %v intercept %v window %+v", c.slope, c.icept, c.w)
		checkOp(t, b, "int16 "+name, refRescale(f64i, c.slope, c.icept, c.w), 1e-5, 1e-5, func(dst *Buffer) error {
			return b.Rescale(dst, ib, n, c.slope, c.icept, c.w)
		})
		want := refRescale(f64f, c.slope, c.icept, c.w)
		checkOp(t, b, "float32 "+name, want, 1e-5, 1e-5, func(dst *Buffer) error {
			return b.Rescale(dst, fb, n, c.slope, c.icept, c.w)
		})
		// In place, on a prefix (n need not be the buffer's length).
		inp := upload(t, b, f32)
		if err := b.Rescale(inp, inp, n-5, c.slope, c.icept, c.w); err != nil {
			t.Fatal(err)
		}
		got := download(t, b, inp, n)
		closeTo(t, "in place "+name, got[:n-5], want[:n-5], 1e-5, 1e-5)
		closeTo(t, "in place tail "+name, got[n-5:], f32[n-5:], 0, 0)
	}
	// Every int16 value, in a volume large enough for a CPU lookup table.
	big := make([]int16, 1<<20+3)
	bigF := make([]float64, len(big))
	for i := range big {
		big[i] = int16(uint16(i * 7))
		bigF[i] = float64(big[i])
	}
	bb, bd := uploadI16(t, b, big), alloc(t, b, len(big))
	for _, w := range []Window{{40, 400, true}, {-600, 1500, false}, {}} {
		if err := b.Rescale(bd, bb, len(big), 0.5, -1024, w); err != nil {
			t.Fatal(err)
		}
		closeTo(t, fmt.Sprintf("all int16, window %+v", w), download(t, b, bd, len(big)), refRescale(bigF, 0.5, -1024, w), 1e-5, 1e-5)
	}
	// The identity rescale of float32 is exact.
	checkOp(t, b, "identity", f32, 0, 0, func(dst *Buffer) error {
		return b.Rescale(dst, fb, n, 1, 0, Window{})
	})
}

// refResample is Resample voxel by voxel, in float64 (see confPrep for the
// edge rule).
func refResample(src []float32, ss, ds [3]int, m AxisMap, mode Interp, fill float32) []float32 {
	out := make([]float32, Voxels(ds))
	for z := 0; z < ds[0]; z++ {
		for y := 0; y < ds[1]; y++ {
			for x := 0; x < ds[2]; x++ {
				p := [3]int{z, y, x}
				var i0, i1 [3]int
				var f [3]float64
				inside := true
				for a := 0; a < 3; a++ {
					c := m.Offset[a] + m.Scale[a]*float64(p[a])
					if mode == Nearest {
						r := math.Floor(c + 0.5)
						if r < 0 || r > float64(ss[a]-1) {
							inside = false
							break
						}
						i0[a], i1[a] = int(r), int(r)
						continue
					}
					if c < -ResampleEdge || c > float64(ss[a]-1)+ResampleEdge {
						inside = false
						break
					}
					c = min(max(c, 0), float64(ss[a]-1))
					i := int(math.Floor(c))
					if i > ss[a]-2 {
						i = max(ss[a]-2, 0)
					}
					i0[a], i1[a], f[a] = i, min(i+1, ss[a]-1), c-float64(i)
				}
				o := (z*ds[1]+y)*ds[2] + x
				if !inside {
					out[o] = fill
					continue
				}
				v := 0.0
				for corner := 0; corner < 8; corner++ {
					w := 1.0
					var q [3]int
					for a := 0; a < 3; a++ {
						if corner>>(2-a)&1 == 1 {
							q[a], w = i1[a], w*f[a]
						} else {
							q[a], w = i0[a], w*(1-f[a])
						}
					}
					v += w * float64(src[(q[0]*ss[1]+q[1])*ss[2]+q[2]])
				}
				out[o] = float32(v)
			}
		}
	}
	return out
}

func prepResample(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(12, 1))
	type tc struct {
		name   string
		ss, ds [3]int
		m      AxisMap
		mode   Interp
	}
	cases := []tc{
		{"nearest ties round up", [3]int{5, 6, 7}, [3]int{9, 11, 13}, AxisMap{Scale: [3]float64{0.5, 0.5, 0.5}}, Nearest},
		{"linear half steps", [3]int{5, 6, 7}, [3]int{9, 11, 13}, AxisMap{Scale: [3]float64{0.5, 0.5, 0.5}}, Linear},
		{"size-1 axes", [3]int{1, 6, 1}, [3]int{3, 5, 2}, AxisMap{Scale: [3]float64{0, 1.2, 0}, Offset: [3]float64{0, -0.5, 0}}, Linear},
		// The last points land 1e-9 beyond the edge: still inside.
		{"edge tolerance", [3]int{4, 5, 6}, [3]int{7, 9, 11}, AxisMap{
			Scale:  [3]float64{(3 + 2e-9) / 6, (4 + 2e-9) / 8, (5 + 2e-9) / 10},
			Offset: [3]float64{-1e-9, -1e-9, -1e-9}}, Linear},
		{"all outside", [3]int{3, 3, 3}, [3]int{2, 3, 4}, AxisMap{Scale: [3]float64{1, 1, 1}, Offset: [3]float64{5, 0, 0}}, Linear},
		{"huge map", [3]int{3, 3, 3}, [3]int{2, 3, 4}, AxisMap{Scale: [3]float64{1e300, 1, 1}, Offset: [3]float64{-1e308, 0, 0}}, Nearest},
	}
	for i := 0; i < 8; i++ {
		var c tc
		c.name = fmt.Sprintf("random %d", i)
		for a := 0; a < 3; a++ {
			c.ss[a], c.ds[a] = 2+rng.IntN(12), 1+rng.IntN(14)
			c.m.Scale[a] = (rng.Float64()*2 - 0.6) * 1.4
			c.m.Offset[a] = rng.Float64()*float64(c.ss[a]+2) - 1.5
		}
		c.mode = Interp(i % 2)
		cases = append(cases, c)
	}
	// Large enough for several parallel slices.
	cases = append(cases, tc{"large", [3]int{20, 33, 41}, [3]int{25, 30, 37},
		AxisMap{Scale: [3]float64{0.8, 1.1, 1.13}, Offset: [3]float64{-0.6, 0.3, -1.1}}, Linear})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := randFloats(rng, Voxels(c.ss), -100, 100)
			const fill = -1024
			want := refResample(src, c.ss, c.ds, c.m, c.mode, fill)
			dst := alloc(t, b, len(want))
			if err := b.Resample(dst, upload(t, b, src), c.ds, c.ss, c.m, c.mode, fill); err != nil {
				t.Fatal(err)
			}
			got := download(t, b, dst, len(want))
			closeTo(t, c.name, got, want, 2e-4, 1e-5)
			// The fill is never blended.
			for i := range got {
				if (want[i] == fill) != (got[i] == fill) {
					t.Fatalf("voxel %d: got %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
	// Resampling onto the same grid is the identity, exactly.
	for _, mode := range []Interp{Linear, Nearest} {
		ss := [3]int{7, 9, 11}
		src := randFloats(rng, Voxels(ss), -100, 100)
		checkOp(t, b, fmt.Sprintf("identity (mode %d)", mode), src, 0, 0, func(dst *Buffer) error {
			return b.Resample(dst, upload(t, b, src), ss, ss, AxisMap{Scale: [3]float64{1, 1, 1}}, mode, 0)
		})
	}
}

// refFlip is Flip voxel by voxel.
func refFlip(src []float32, n, c int, s [3]int, axes [3]bool) []float32 {
	out := make([]float32, len(src))
	vox := Voxels(s)
	for v := 0; v < n*c; v++ {
		for z := 0; z < s[0]; z++ {
			for y := 0; y < s[1]; y++ {
				for x := 0; x < s[2]; x++ {
					q := [3]int{z, y, x}
					for a := 0; a < 3; a++ {
						if axes[a] {
							q[a] = s[a] - 1 - q[a]
						}
					}
					out[v*vox+(z*s[1]+y)*s[2]+x] = src[v*vox+(q[0]*s[1]+q[1])*s[2]+q[2]]
				}
			}
		}
	}
	return out
}

func prepFlip(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(13, 1))
	for _, s := range [][3]int{{3, 5, 7}, {1, 4, 9}, {33, 31, 37}} {
		src := randFloats(rng, 2*3*Voxels(s), -1, 1)
		sb := upload(t, b, src)
		for m := 0; m < 8; m++ {
			axes := [3]bool{m&4 != 0, m&2 != 0, m&1 != 0}
			checkOp(t, b, fmt.Sprintf("flip %v %v", s, axes), refFlip(src, 2, 3, s, axes), 0, 0, func(dst *Buffer) error {
				return b.Flip(dst, sb, 2, 3, s, axes)
			})
		}
	}
}

// refCropPad is CropPad voxel by voxel.
func refCropPad(src []float32, n, c int, ss, ds, off [3]int, fill float32) []float32 {
	out := make([]float32, n*c*Voxels(ds))
	for v := 0; v < n*c; v++ {
		for z := 0; z < ds[0]; z++ {
			for y := 0; y < ds[1]; y++ {
				for x := 0; x < ds[2]; x++ {
					q := [3]int{z + off[0], y + off[1], x + off[2]}
					val := fill
					if q[0] >= 0 && q[0] < ss[0] && q[1] >= 0 && q[1] < ss[1] && q[2] >= 0 && q[2] < ss[2] {
						val = src[v*Voxels(ss)+(q[0]*ss[1]+q[1])*ss[2]+q[2]]
					}
					out[v*Voxels(ds)+(z*ds[1]+y)*ds[2]+x] = val
				}
			}
		}
	}
	return out
}

func prepCropPad(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(14, 1))
	ss := [3]int{5, 6, 7}
	src := randFloats(rng, 2*3*Voxels(ss), -1, 1)
	sb := upload(t, b, src)
	for _, c := range []struct{ ds, off [3]int }{
		{[3]int{5, 6, 7}, [3]int{}},
		{[3]int{4, 9, 5}, [3]int{-2, 1, 3}},
		{[3]int{9, 10, 11}, [3]int{-2, -2, -2}},
		{[3]int{2, 3, 4}, [3]int{3, 3, 3}},
		{[3]int{3, 3, 3}, [3]int{0, 0, 9}},    // x entirely outside
		{[3]int{3, 3, 3}, [3]int{-7, 0, 0}},   // z entirely outside
		{[3]int{6, 1, 12}, [3]int{-1, 5, -3}}, // pad x on both sides
	} {
		want := refCropPad(src, 2, 3, ss, c.ds, c.off, 2.5)
		checkOp(t, b, fmt.Sprintf("crop/pad to %v at %v", c.ds, c.off), want, 0, 0, func(dst *Buffer) error {
			return b.CropPad(dst, sb, 2, 3, ss, c.ds, c.off, 2.5)
		})
	}
	// Large enough for several parallel slices.
	ls, ld, off := [3]int{40, 41, 43}, [3]int{37, 45, 39}, [3]int{2, -3, 1}
	lsrc := randFloats(rng, 2*Voxels(ls), -1, 1)
	want := refCropPad(lsrc, 1, 2, ls, ld, off, 0)
	checkOp(t, b, "large crop/pad", want, 0, 0, func(dst *Buffer) error {
		return b.CropPad(dst, upload(t, b, lsrc), 1, 2, ls, ld, off, 0)
	})
}

func prepActivate(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(15, 1))
	const n = 70003
	src := randFloats(rng, n, -8, 8)
	sb := upload(t, b, src)
	for _, act := range []Activation{{}, {Kind: ActReLU}, {Kind: ActLeakyReLU, Alpha: 0.01}, {Kind: ActLeakyReLU, Alpha: 0.3}, {Kind: ActSigmoid}} {
		want := make([]float32, n)
		for i, v := range src {
			want[i] = act.Apply(v)
		}
		checkOp(t, b, fmt.Sprintf("activate %+v", act), want, 1e-6, 1e-6, func(dst *Buffer) error {
			return b.Activate(dst, sb, n, act)
		})
		inp := upload(t, b, src)
		if err := b.Activate(inp, inp, n, act); err != nil {
			t.Fatal(err)
		}
		closeTo(t, fmt.Sprintf("activate %+v in place", act), download(t, b, inp, n), want, 1e-6, 1e-6)
	}
}

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

// refBinary is Binary over every output multi-index.
func refBinary(op BinOp, a, b []float32, os, as, bs []int) []float32 {
	pad := func(s []int) []int {
		r := make([]int, len(os))
		for i := range r {
			r[i] = 1
		}
		copy(r[len(os)-len(s):], s)
		return r
	}
	pa, pb := pad(as), pad(bs)
	out := make([]float32, prod(os))
	idx := make([]int, len(os))
	for o := range out {
		r := o
		for i := len(os) - 1; i >= 0; i-- {
			idx[i] = r % os[i]
			r /= os[i]
		}
		ai, bi := 0, 0
		for i := range os {
			ai = ai*pa[i] + min(idx[i], pa[i]-1)
			bi = bi*pb[i] + min(idx[i], pb[i]-1)
		}
		x, y := a[ai], b[bi]
		switch op {
		case OpAdd:
			out[o] = x + y
		case OpSub:
			out[o] = x - y
		case OpMul:
			out[o] = x * y
		case OpDiv:
			out[o] = x / y
		}
	}
	return out
}

func prepBinary(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(16, 1))
	nz := func(n int) []float32 { // away from zero, for the division
		v := randFloats(rng, n, 0.5, 2)
		for i := range v {
			if rng.IntN(2) == 0 {
				v[i] = -v[i]
			}
		}
		return v
	}
	for _, c := range []struct{ out, a, b []int }{
		{[]int{2, 3, 5, 7, 9}, []int{2, 3, 5, 7, 9}, []int{2, 3, 5, 7, 9}},
		{[]int{2, 3, 5, 7, 9}, []int{2, 3, 5, 7, 9}, []int{1}},
		{[]int{2, 3, 5, 7, 9}, []int{1}, []int{2, 3, 5, 7, 9}},
		{[]int{2, 3, 5, 7, 9}, []int{2, 3, 5, 7, 9}, []int{3, 1, 1, 1}},
		{[]int{2, 3, 5, 7, 9}, []int{3, 1, 1, 1}, []int{2, 3, 5, 7, 9}},
		{[]int{2, 3, 5, 7, 9}, []int{2, 3, 5, 7, 9}, []int{2, 1, 5, 7, 9}},
		{[]int{2, 3, 5, 7, 9}, []int{2, 3, 5, 7, 9}, []int{2, 3, 1, 1, 1}},
		{[]int{2, 3, 17, 19, 23}, []int{2, 3, 17, 19, 23}, []int{3, 1, 1, 1}}, // chunks start mid-row
		{[]int{2, 3, 17, 19, 23}, []int{2, 3, 17, 19, 23}, []int{2, 3, 17, 19, 23}},
		{[]int{60, 40, 31}, []int{60, 1, 31}, []int{1, 40, 1}},
		{[]int{2, 3, 4, 5}, []int{2, 1, 4, 1}, []int{3, 1, 5}},
		{[]int{2, 3, 2, 3, 5, 4}, []int{2, 1, 2, 3, 1, 4}, []int{1, 3, 1, 3, 5, 1}},
		{[]int{1, 1, 1}, []int{1}, []int{1, 1}},
		{[]int{3000, 2}, []int{3000, 1}, []int{2}},
		{[]int{7}, []int{7}, []int{}},
	} {
		av, bv := randFloats(rng, prod(c.a), -3, 3), nz(prod(c.b))
		ab, bb := upload(t, b, av), upload(t, b, bv)
		for op := OpAdd; op <= OpDiv; op++ {
			name := fmt.Sprintf("op %d %v %v → %v", op, c.a, c.b, c.out)
			want := refBinary(op, av, bv, c.out, c.a, c.b)
			dst := alloc(t, b, len(want))
			if err := b.Binary(op, dst, ab, bb, c.out, c.a, c.b); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			closeTo(t, name, download(t, b, dst, len(want)), want, 0, 1e-6)
			// In place into whichever operand has the output's shape.
			if prod(c.a) == len(want) {
				inp := upload(t, b, av)
				if err := b.Binary(op, inp, inp, bb, c.out, c.a, c.b); err != nil {
					t.Fatalf("%s in place: %v", name, err)
				}
				closeTo(t, name+" in place", download(t, b, inp, len(want)), want, 0, 1e-6)
			}
			if prod(c.b) == len(want) {
				inp := upload(t, b, bv)
				if err := b.Binary(op, inp, ab, inp, c.out, c.a, c.b); err != nil {
					t.Fatalf("%s in place of b: %v", name, err)
				}
				closeTo(t, name+" in place of b", download(t, b, inp, len(want)), want, 0, 1e-6)
			}
		}
	}
	// a op a, one buffer twice.
	av := randFloats(rng, 100, 1, 2)
	ab := upload(t, b, av)
	if err := b.Binary(OpDiv, ab, ab, ab, []int{100}, []int{100}, []int{100}); err != nil {
		t.Fatal(err)
	}
	closeTo(t, "a/a in place", download(t, b, ab, 100), refBinary(OpDiv, av, av, []int{100}, []int{100}, []int{100}), 0, 0)
}

// wantErr fails t unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

func prepErrors(t *testing.T, b Backend) {
	f := alloc(t, b, 1000)
	g := alloc(t, b, 1000)
	small := alloc(t, b, 10)
	u8, i16 := allocOf(t, b, Uint8, 1000), allocOf(t, b, Int16, 1000)
	foreign, freed := badBuffers(t, b, 1000)
	s := [3]int{5, 5, 5}
	one := AxisMap{Scale: [3]float64{1, 1, 1}}
	w := Window{40, 400, true}
	shape := []int{1000}

	// Buffers that are not this backend's live buffers.
	for _, c := range []struct {
		name string
		buf  *Buffer
	}{{"nil", nil}, {"another backend's", foreign}, {"freed", freed}} {
		wantErr(t, "rescale from "+c.name, b.Rescale(f, c.buf, 100, 1, 0, w), ErrBackend)
		wantErr(t, "rescale into "+c.name, b.Rescale(c.buf, f, 100, 1, 0, w), ErrBackend)
		wantErr(t, "resample from "+c.name, b.Resample(f, c.buf, s, s, one, Linear, 0), ErrBackend)
		wantErr(t, "resample into "+c.name, b.Resample(c.buf, f, s, s, one, Linear, 0), ErrBackend)
		wantErr(t, "flip from "+c.name, b.Flip(f, c.buf, 1, 1, s, [3]bool{true}), ErrBackend)
		wantErr(t, "flip into "+c.name, b.Flip(c.buf, f, 1, 1, s, [3]bool{true}), ErrBackend)
		wantErr(t, "crop/pad from "+c.name, b.CropPad(f, c.buf, 1, 1, s, s, [3]int{}, 0), ErrBackend)
		wantErr(t, "crop/pad into "+c.name, b.CropPad(c.buf, f, 1, 1, s, s, [3]int{}, 0), ErrBackend)
		wantErr(t, "activate from "+c.name, b.Activate(f, c.buf, 100, Activation{}), ErrBackend)
		wantErr(t, "activate into "+c.name, b.Activate(c.buf, f, 100, Activation{}), ErrBackend)
		wantErr(t, "binary a "+c.name, b.Binary(OpAdd, f, c.buf, g, shape, shape, shape), ErrBackend)
		wantErr(t, "binary b "+c.name, b.Binary(OpAdd, f, g, c.buf, shape, shape, shape), ErrBackend)
		wantErr(t, "binary into "+c.name, b.Binary(OpAdd, c.buf, f, g, shape, shape, shape), ErrBackend)
	}

	for _, c := range []struct {
		name string
		err  error
	}{
		// Too short.
		{"rescale source too short", b.Rescale(f, small, 100, 1, 0, w)},
		{"rescale destination too short", b.Rescale(small, f, 100, 1, 0, w)},
		{"rescale negative count", b.Rescale(f, g, -1, 1, 0, w)},
		{"resample source too short", b.Resample(f, small, s, s, one, Linear, 0)},
		{"resample destination too short", b.Resample(small, f, s, s, one, Linear, 0)},
		{"flip too short", b.Flip(f, small, 1, 1, s, [3]bool{})},
		{"flip channels too many", b.Flip(g, f, 2, 5, s, [3]bool{})},
		{"crop/pad destination too short", b.CropPad(small, f, 1, 1, s, s, [3]int{}, 0)},
		{"crop/pad source too short", b.CropPad(f, small, 1, 1, s, [3]int{2, 2, 2}, [3]int{}, 0)},
		{"activate too short", b.Activate(f, small, 100, Activation{})},
		{"binary a too short", b.Binary(OpAdd, f, small, g, shape, shape, shape)},
		{"binary b too short", b.Binary(OpAdd, f, g, small, shape, shape, shape)},
		// Wrong types.
		{"rescale from uint8", b.Rescale(f, u8, 100, 1, 0, w)},
		{"rescale into int16", b.Rescale(i16, f, 100, 1, 0, w)},
		{"resample int16", b.Resample(f, i16, s, s, one, Linear, 0)},
		{"flip uint8", b.Flip(u8, f, 1, 1, s, [3]bool{})},
		{"crop/pad int16", b.CropPad(f, i16, 1, 1, s, s, [3]int{}, 0)},
		{"activate int16", b.Activate(i16, f, 100, Activation{})},
		{"binary int16", b.Binary(OpAdd, f, i16, g, shape, shape, shape)},
		// Bad parameters.
		{"resample zero size", b.Resample(f, g, [3]int{0, 5, 5}, s, one, Linear, 0)},
		{"resample negative source size", b.Resample(f, g, s, [3]int{5, -5, 5}, one, Linear, 0)},
		{"resample mode", b.Resample(f, g, s, s, one, Interp(9), 0)},
		{"resample NaN map", b.Resample(f, g, s, s, AxisMap{Scale: [3]float64{1, math.NaN(), 1}}, Linear, 0)},
		{"resample infinite map", b.Resample(f, g, s, s, AxisMap{Scale: [3]float64{1, 1, 1}, Offset: [3]float64{math.Inf(1), 0, 0}}, Linear, 0)},
		{"flip zero batch", b.Flip(f, g, 0, 1, s, [3]bool{})},
		{"flip zero size", b.Flip(f, g, 1, 1, [3]int{5, 0, 5}, [3]bool{})},
		{"crop/pad zero size", b.CropPad(f, g, 1, 1, s, [3]int{5, 5, 0}, [3]int{}, 0)},
		{"crop/pad zero channels", b.CropPad(f, g, 1, 0, s, s, [3]int{}, 0)},
		{"crop/pad overflowing size", b.CropPad(f, g, 1, 1, s, [3]int{1 << 40, 1 << 40, 1 << 40}, [3]int{}, 0)},
		{"activate kind", b.Activate(f, g, 100, Activation{Kind: ActKind(99)})},
		{"activate negative count", b.Activate(f, g, -3, Activation{})},
		{"binary op", b.Binary(BinOp(0), f, g, g, shape, shape, shape)},
		{"binary op 9", b.Binary(BinOp(9), f, g, g, shape, shape, shape)},
		{"binary shapes do not broadcast", b.Binary(OpAdd, f, g, g, []int{2, 3}, []int{2, 3}, []int{3, 2})},
		{"binary wrong output", b.Binary(OpAdd, f, g, g, []int{2, 4}, []int{2, 3}, []int{1})},
		{"binary output smaller than broadcast", b.Binary(OpAdd, f, g, g, []int{1, 3}, []int{2, 3}, []int{1})},
		{"binary 7 dims", b.Binary(OpAdd, f, g, g, []int{1, 1, 1, 1, 1, 1, 2}, []int{2}, []int{2})},
		{"binary zero dim", b.Binary(OpAdd, f, g, g, []int{0, 3}, []int{0, 3}, []int{3})},
		{"binary negative dim", b.Binary(OpAdd, f, g, g, []int{-2, 3}, []int{-2, 3}, []int{3})},
		{"binary destination too short", b.Binary(OpAdd, small, f, g, shape, shape, shape)},
		{"binary in place into a broadcast a", b.Binary(OpAdd, small, small, g, []int{4, 2}, []int{1, 2}, []int{4, 1})},
		{"binary in place into a broadcast b", b.Binary(OpAdd, small, g, small, []int{4, 2}, []int{4, 1}, []int{1, 2})},
	} {
		wantErr(t, c.name, c.err, ErrShape)
	}
}

// prepPool checks the pool's steady state (checkPoolSteady) over every
// element type, at sizes around the pool's classes.
func prepPool(t *testing.T, b Backend) {
	checkPoolSteady(t, b, []DType{Float32, Int16, Uint8}, []int{1000, 4097, 70000, 70001, 333333})
}

// prepAllocs checks, on the CPU backend, that repeated operations on
// pooled buffers make no heap allocations of their own.
// testing.AllocsPerRun runs with GOMAXPROCS 1, where par.For calls the
// loop body directly; with more threads par.For itself allocates (its
// WaitGroup, counter and goroutine closures), which is measured and
// logged, and the kernels must not add to it.
func prepAllocs(t *testing.T, b Backend) {
	if !strings.HasPrefix(b.Name(), "cpu") {
		t.Skip("heap allocations are counted on the CPU backend")
	}
	if poolDrops() {
		t.Skip("sync.Pool drops items (the race detector does so at random): allocations are not steady")
	}
	rng := rand.New(rand.NewPCG(17, 1))
	ss, ds := [3]int{24, 40, 40}, [3]int{48, 30, 30} // several slices per worker
	n := Voxels(ss)
	src := upload(t, b, randFloats(rng, n, -1000, 1000))
	dst := alloc(t, b, 2*n)
	tmp := alloc(t, b, n)
	ch := alloc(t, b, 4)
	i16 := uploadI16(t, b, make([]int16, n))
	bigN := 1<<20 + 1 // an int16 rescale this large uses a lookup table on the CPU
	bigI16, bigDst := uploadI16(t, b, make([]int16, bigN)), alloc(t, b, bigN)
	m := AxisMap{Scale: [3]float64{1.2, 1.2, 1.1}, Offset: [3]float64{-0.5, 0, 0.3}}
	shape, chShape := []int{1, 4, 6, 40, 40}, []int{4, 1, 1, 1}
	ops := []struct {
		name string
		fn   func() error
	}{
		{"Rescale int16", func() error { return b.Rescale(dst, i16, n, 1, -1024, Window{40, 400, true}) }},
		{"Rescale int16 large", func() error { return b.Rescale(bigDst, bigI16, bigN, 1, -1024, Window{40, 400, true}) }},
		{"Rescale float32 in place", func() error { return b.Rescale(tmp, tmp, n, 1, 0, Window{40, 400, false}) }},
		{"Resample", func() error { return b.Resample(dst, src, ds, ss, m, Linear, 0) }},
		{"Resample nearest", func() error { return b.Resample(dst, src, ds, ss, m, Nearest, 0) }},
		{"Flip", func() error { return b.Flip(dst, src, 1, 1, ss, [3]bool{true, false, true}) }},
		{"CropPad", func() error { return b.CropPad(dst, src, 1, 1, ss, ds, [3]int{-1, 2, 3}, 0) }},
		{"Activate", func() error { return b.Activate(dst, src, n, Activation{Kind: ActSigmoid}) }},
		{"Binary same shape", func() error { return b.Binary(OpAdd, dst, src, tmp, shape, shape, shape) }},
		{"Binary per channel in place", func() error { return b.Binary(OpMul, dst, dst, ch, shape, shape, chShape) }},
	}
	for _, op := range ops {
		if err := op.fn(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if a := testing.AllocsPerRun(20, func() { _ = op.fn() }); a != 0 {
			t.Errorf("%s: %v heap allocations per call", op.name, a)
		}
	}

	// With every thread: par.For's own allocations per call, and the
	// kernels' (logged; the kernels must not add to par.For's).
	if par.Workers() < 2 {
		return
	}
	mallocs := func(fn func()) float64 {
		const runs = 50
		fn()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for i := 0; i < runs; i++ {
			fn()
		}
		runtime.ReadMemStats(&m1)
		return float64(m1.Mallocs-m0.Mallocs) / runs
	}
	noop := func(lo, hi int) {}
	base := mallocs(func() { par.For(1<<20, 1024, noop) })
	t.Logf("par.For with %d workers: %.1f heap allocations per call", par.Workers(), base)
	for _, op := range ops {
		a := mallocs(func() { _ = op.fn() })
		t.Logf("%s with %d workers: %.1f heap allocations per call", op.name, par.Workers(), a)
		if a > base+1 { // a margin for the runtime's own noise
			t.Errorf("%s: %.1f heap allocations per call, par.For alone makes %.1f", op.name, a, base)
		}
	}
}

// poolDrops says whether a sync.Pool loses what was just put in it, as
// it does at random under the race detector.
func poolDrops() bool {
	var p sync.Pool
	for i := 0; i < 200; i++ {
		x := new(int)
		p.Put(x)
		if p.Get() != x {
			return true
		}
	}
	return false
}
