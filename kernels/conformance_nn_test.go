package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// confNN checks Pool, GlobalAvgPool, InstanceNorm, BatchNorm, Softmax,
// Concat, Resize and the reductions (Sum, Max, Argmax, CountAbove)
// against naive loops written here (nnRef*), over random data of odd
// sizes, and against the PyTorch goldens (testdata/golden_nn.py), through
// the Backend interface only.
//
// Tolerances (absolute + relative to the expected value): selections
// (max pooling, nearest resize, concat, argmax, max, counts) are exact;
// averages, resizes and batch norm 1e-5 + 1e-5; softmax 1e-6 + 1e-5;
// instance norm 1e-4 + 1e-4 (its float32 output of a normalised value
// near 1 carries the rounding of the mean and scale); Sum 1e-9 of the sum
// of magnitudes.
func confNN(t *testing.T, b Backend) {
	runChecks(t, b, []backendCheck{
		{"pool", confNNPool},
		{"norm", confNNNorm},
		{"softmax", confNNSoftmax},
		{"concat", confNNConcat},
		{"resize", confNNResize},
		{"reduce", confNNReduce},
		{"golden", confNNGolden},
		{"errors", confNNErrors},
	})
}

// nnRand returns n values scale*N(0,1)+offset.
func nnRand(rng *rand.Rand, n int, scale, offset float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64()*scale + offset)
	}
	return x
}

// nnRefPool is the direct definition of ONNX/PyTorch pooling: every tap
// of every window, padded taps skipped; the average divides by the taps
// inside the input, or with CountIncludePad by the window clipped to the
// end of the padded input.
func nnRefPool(x []float32, p PoolSpec, out [3]int) []float32 {
	in := p.In
	y := make([]float32, p.N*p.C*Voxels(out))
	i := 0
	for nc := range p.N * p.C {
		vol := x[nc*Voxels(in):]
		for od := range out[0] {
			for oh := range out[1] {
				for ow := range out[2] {
					o := [3]int{od, oh, ow}
					var st, dl [3]int
					div := 1
					for a := range 3 {
						st[a] = o[a]*max(p.Stride[a], 1) - p.PadBegin[a]
						dl[a] = max(p.Dilation[a], 1)
						div *= min(st[a]+p.Kernel[a], in[a]+p.PadEnd[a]) - st[a]
					}
					m, sum, cnt := math.Inf(-1), 0.0, 0
					for kd := range p.Kernel[0] {
						for kh := range p.Kernel[1] {
							for kw := range p.Kernel[2] {
								d, h, w := st[0]+kd*dl[0], st[1]+kh*dl[1], st[2]+kw*dl[2]
								if d < 0 || d >= in[0] || h < 0 || h >= in[1] || w < 0 || w >= in[2] {
									continue
								}
								v := float64(vol[(d*in[1]+h)*in[2]+w])
								m = max(m, v)
								sum += v
								cnt++
							}
						}
					}
					switch {
					case p.Kind == MaxPool:
						y[i] = float32(m)
					case p.CountIncludePad:
						y[i] = float32(sum / float64(div))
					default:
						y[i] = float32(sum / float64(cnt))
					}
					i++
				}
			}
		}
	}
	return y
}

func confNNPool(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(1, 1))
	v3 := func(a, b, c int) [3]int { return [3]int{a, b, c} }
	cases := []PoolSpec{
		{Kind: MaxPool, N: 2, C: 3, In: v3(8, 6, 10), Kernel: v3(2, 2, 2), Stride: v3(2, 2, 2)},
		{Kind: MaxPool, N: 2, C: 3, In: v3(7, 9, 5), Kernel: v3(3, 3, 3), Stride: v3(2, 2, 2), PadBegin: v3(1, 1, 1), PadEnd: v3(1, 1, 1), CeilMode: true},
		{Kind: MaxPool, N: 1, C: 3, In: v3(9, 7, 11), Kernel: v3(3, 2, 3), Stride: v3(1, 2, 3), Dilation: v3(2, 1, 3), PadBegin: v3(2, 0, 1), PadEnd: v3(0, 1, 2), CeilMode: true},
		{Kind: MaxPool, N: 2, C: 1, In: v3(5, 6, 7), Kernel: v3(1, 3, 2), Stride: v3(1, 1, 1), PadBegin: v3(0, 2, 1), PadEnd: v3(0, 0, 1)},
		{Kind: AvgPool, N: 2, C: 3, In: v3(8, 6, 10), Kernel: v3(2, 2, 2), Stride: v3(2, 2, 2)},
		{Kind: AvgPool, N: 2, C: 3, In: v3(7, 9, 5), Kernel: v3(3, 3, 3), Stride: v3(2, 2, 2), PadBegin: v3(1, 1, 1), PadEnd: v3(1, 1, 1), CeilMode: true},
		{Kind: AvgPool, N: 2, C: 3, In: v3(7, 9, 5), Kernel: v3(3, 3, 3), Stride: v3(2, 2, 2), PadBegin: v3(1, 1, 1), PadEnd: v3(1, 1, 1), CeilMode: true, CountIncludePad: true},
		{Kind: AvgPool, N: 1, C: 2, In: v3(9, 8, 7), Kernel: v3(3, 2, 4), Stride: v3(2, 3, 2), PadBegin: v3(2, 0, 1), PadEnd: v3(0, 1, 3), CeilMode: true, CountIncludePad: true},
		{Kind: AvgPool, N: 1, C: 2, In: v3(9, 8, 7), Kernel: v3(3, 2, 4), Stride: v3(2, 3, 2), PadBegin: v3(2, 0, 1), PadEnd: v3(0, 1, 3), CeilMode: true},
		{Kind: AvgPool, N: 3, C: 1, In: v3(4, 5, 6), Kernel: v3(4, 5, 6)},
	}
	for i, p := range cases {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			out, err := p.Out()
			if err != nil {
				t.Fatal(err)
			}
			x := nnRand(rng, p.N*p.C*Voxels(p.In), 1, 0)
			want := nnRefPool(x, p, out)
			tol := 1e-5
			if p.Kind == MaxPool {
				tol = 0
			}
			checkOp(t, b, "pool", want, tol, tol, func(dst *Buffer) error {
				return b.Pool(dst, upload(t, b, x), p)
			})
		})
	}
}

// nnRefNorm normalises each of rows channels with float64 statistics
// (two passes) or the given mean and variance, then act.
func nnRefNorm(x []float32, rows, ch, spatial int, eps float32, act Activation, scale, bias, mean, variance []float32) []float32 {
	y := make([]float32, len(x))
	for r := range rows {
		c := r % ch
		v := x[r*spatial : (r+1)*spatial]
		var m, s float64
		if mean != nil {
			m, s = float64(mean[c]), float64(variance[c])
		} else {
			for _, e := range v {
				m += float64(e)
			}
			m /= float64(spatial)
			for _, e := range v {
				s += (float64(e) - m) * (float64(e) - m)
			}
			s /= float64(spatial)
		}
		for i, e := range v {
			z := (float64(e)-m)/math.Sqrt(s+float64(eps))*float64(scale[c]) + float64(bias[c])
			y[r*spatial+i] = act.Apply(float32(z))
		}
	}
	return y
}

func confNNNorm(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(2, 2))
	acts := []Activation{{}, {Kind: ActReLU}, {Kind: ActLeakyReLU, Alpha: 0.01}, {Kind: ActSigmoid}, {Kind: ActLeakyReLU, Alpha: -0.5}}
	cases := []struct {
		n, c, spatial  int
		scale, offset  float64
		eps            float32
		act            Activation
		batch, inPlace bool
	}{
		{2, 3, 5 * 7 * 9, 1, 0, 1e-5, acts[2], false, false},
		{1, 2, 70001, 2, -3, 1e-5, acts[1], false, false}, // channels longer than one piece
		{2, 3, 231, 0.1, 500, 1e-5, acts[0], false, false},
		{3, 1, 17, 1, 0, 1e-3, acts[3], false, true},
		{2, 5, 1, 1, 0, 1e-5, acts[0], false, false},  // one voxel: zero variance
		{4, 20, 50, 1, 0, 1e-5, acts[2], false, true}, // many channels
		{2, 3, 5 * 7 * 9, 2, 1, 1e-5, acts[4], true, false},
		{2, 4, 70001, 1, 0, 1e-3, acts[1], true, true},
		{1, 3, 13, 1, 0, 0, acts[3], true, false},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			x := nnRand(rng, tc.n*tc.c*tc.spatial, tc.scale, tc.offset)
			scale, bias := nnRand(rng, tc.c, 1, 0), nnRand(rng, tc.c, 1, 0)
			src := upload(t, b, x)
			dst := alloc(t, b, len(x))
			if tc.inPlace {
				dst = src
			}
			var want []float32
			var err error
			if tc.batch {
				mean, variance := nnRand(rng, tc.c, 1, 0), nnRand(rng, tc.c, 0.5, 0)
				for j := range variance {
					variance[j] = variance[j]*variance[j] + 0.05
				}
				want = nnRefNorm(x, tc.n*tc.c, tc.c, tc.spatial, tc.eps, tc.act, scale, bias, mean, variance)
				err = b.BatchNorm(dst, src, upload(t, b, scale), upload(t, b, bias), upload(t, b, mean), upload(t, b, variance), tc.n, tc.c, tc.spatial, tc.eps, tc.act)
			} else {
				want = nnRefNorm(x, tc.n*tc.c, tc.c, tc.spatial, tc.eps, tc.act, scale, bias, nil, nil)
				err = b.InstanceNorm(dst, src, upload(t, b, scale), upload(t, b, bias), tc.n, tc.c, tc.spatial, tc.eps, tc.act)
			}
			if err != nil {
				t.Fatal(err)
			}
			tol := 1e-4
			if tc.batch {
				tol = 1e-5
			}
			closeTo(t, "norm", download(t, b, dst, len(x)), want, tol, tol)
		})
	}

	t.Run("global average pool", func(t *testing.T) {
		for _, tc := range []struct{ n, c, spatial int }{{2, 3, 5 * 7 * 9}, {1, 2, 70001}, {3, 1, 1}} {
			x := nnRand(rng, tc.n*tc.c*tc.spatial, 3, 1)
			want := make([]float32, tc.n*tc.c)
			for r := range want {
				var s float64
				for _, v := range x[r*tc.spatial : (r+1)*tc.spatial] {
					s += float64(v)
				}
				want[r] = float32(s / float64(tc.spatial))
			}
			checkOp(t, b, "global average pool", want, 1e-6, 1e-6, func(dst *Buffer) error {
				return b.GlobalAvgPool(dst, upload(t, b, x), tc.n, tc.c, tc.spatial)
			})
		}
	})
}

// nnRefSoftmax is the softmax over channels in float64.
func nnRefSoftmax(x []float32, n, c, spatial int) []float32 {
	y := make([]float32, len(x))
	for b := range n {
		for v := range spatial {
			m := math.Inf(-1)
			for j := range c {
				m = max(m, float64(x[(b*c+j)*spatial+v]))
			}
			var s float64
			for j := range c {
				s += math.Exp(float64(x[(b*c+j)*spatial+v]) - m)
			}
			for j := range c {
				i := (b*c+j)*spatial + v
				y[i] = float32(math.Exp(float64(x[i])-m) / s)
			}
		}
	}
	return y
}

func confNNSoftmax(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, tc := range []struct {
		n, c, spatial int
		scale         float64
		inPlace       bool
	}{{2, 3, 5 * 7 * 9, 1, false}, {1, 2, 1500, 100, true}, {3, 1, 17, 1, false}, {2, 7, 513, 30, true}} {
		x := nnRand(rng, tc.n*tc.c*tc.spatial, tc.scale, 0)
		want := nnRefSoftmax(x, tc.n, tc.c, tc.spatial)
		src := upload(t, b, x)
		dst := src
		if !tc.inPlace {
			dst = alloc(t, b, len(x))
		}
		if err := b.Softmax(dst, src, tc.n, tc.c, tc.spatial); err != nil {
			t.Fatal(err)
		}
		closeTo(t, fmt.Sprintf("softmax %v", tc), download(t, b, dst, len(x)), want, 1e-6, 1e-5)
	}
}

func confNNConcat(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, tc := range []struct {
		outer int
		inner []int
	}{{2, []int{3 * 35, 1 * 35, 2 * 35}}, {1, []int{40000, 70001}}, {3, []int{5, 0, 7}}, {4, []int{9}}, {301, []int{1, 2, 1}}, {40, []int{3000, 5}}} {
		var srcs []*Buffer
		var xs [][]float32
		width := 0
		for _, w := range tc.inner {
			x := nnRand(rng, tc.outer*w, 1, 0)
			xs = append(xs, x)
			buf := alloc(t, b, len(x))
			if len(x) > 0 {
				if err := b.Upload(buf, x); err != nil {
					t.Fatal(err)
				}
			}
			srcs = append(srcs, buf)
			width += w
		}
		want := make([]float32, 0, tc.outer*width)
		for o := range tc.outer {
			for i, w := range tc.inner {
				want = append(want, xs[i][o*w:(o+1)*w]...)
			}
		}
		checkOp(t, b, fmt.Sprintf("concat %v", tc), want, 0, 0, func(dst *Buffer) error {
			return b.Concat(dst, srcs, tc.outer, tc.inner)
		})
	}
}

// nnRefCoord is the source coordinate of output index o along one axis,
// written from the ONNX Resize definition (scale is out/in unless sc is
// set).
func nnRefCoord(coord ResizeCoord, o, in, out int, sc float64) float64 {
	scale := float64(out) / float64(in)
	if sc != 0 {
		scale = sc
	}
	x := float64(o)
	switch coord {
	case CoordHalfPixel:
		return (x+0.5)/scale - 0.5
	case CoordPyTorchHalfPixel:
		if out == 1 {
			return 0
		}
		return (x+0.5)/scale - 0.5
	case CoordAlignCorners:
		if out == 1 {
			return 0
		}
		return x * float64(in-1) / float64(out-1)
	}
	return x / scale
}

// nnRefNearest rounds a coordinate by an ONNX nearest_mode and clamps it
// to the input.
func nnRefNearest(mode ResizeNearest, x float64, in int) int {
	f := math.Floor(x)
	tie := x-f == 0.5
	var i float64
	switch mode {
	case NearestRoundPreferFloor:
		i = math.Round(x)
		if tie {
			i = f
		}
	case NearestRoundPreferCeil:
		i = math.Round(x)
		if tie {
			i = f + 1
		}
	case NearestFloor:
		i = f
	case NearestCeil:
		i = math.Ceil(x)
	}
	return int(min(max(i, 0), float64(in-1)))
}

// nnRefResize is the direct ONNX Resize: nearest picks one voxel;
// linear weights the 8 corners around the clamped coordinate.
func nnRefResize(x []float32, r ResizeSpec) []float32 {
	y := make([]float32, r.N*r.C*Voxels(r.Out))
	type tap struct {
		i [2]int
		w [2]float64
	}
	var taps [3][]tap
	for a := range 3 {
		for o := range r.Out[a] {
			c := nnRefCoord(r.Coord, o, r.In[a], r.Out[a], r.Scale[a])
			if r.Mode == Nearest {
				i := nnRefNearest(r.Nearest, c, r.In[a])
				taps[a] = append(taps[a], tap{[2]int{i, i}, [2]float64{1, 0}})
				continue
			}
			c = min(max(c, 0), float64(r.In[a]-1))
			i0 := int(math.Floor(c))
			i1 := min(i0+1, r.In[a]-1)
			l := c - float64(i0)
			taps[a] = append(taps[a], tap{[2]int{i0, i1}, [2]float64{1 - l, l}})
		}
	}
	in := r.In
	k := 0
	for nc := range r.N * r.C {
		vol := x[nc*Voxels(in):]
		for _, td := range taps[0] {
			for _, th := range taps[1] {
				for _, tw := range taps[2] {
					var s float64
					for a := range 2 {
						for b := range 2 {
							for c := range 2 {
								w := td.w[a] * th.w[b] * tw.w[c]
								if w != 0 {
									s += w * float64(vol[(td.i[a]*in[1]+th.i[b])*in[2]+tw.i[c]])
								}
							}
						}
					}
					y[k] = float32(s)
					k++
				}
			}
		}
	}
	return y
}

// confNNResize runs every mode on shapes whose scales are dyadic or
// whose ties fall on exactly representable coordinates, so that a
// backend computing coordinates in float32 must pick the same voxels.
func confNNResize(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(5, 5))
	shapes := []struct {
		in, out [3]int
		scale   [3]float64
	}{
		{[3]int{3, 4, 5}, [3]int{6, 8, 10}, [3]float64{}},
		{[3]int{6, 8, 4}, [3]int{3, 4, 2}, [3]float64{}},
		{[3]int{5, 4, 7}, [3]int{7, 3, 1}, [3]float64{}},
		{[3]int{4, 6, 6}, [3]int{6, 3, 4}, [3]float64{1.5, 0.5, 0.75}},
		{[3]int{3, 5, 4}, [3]int{7, 11, 11}, [3]float64{2.5, 2.25, 2.75}},
		{[3]int{1, 5, 2}, [3]int{3, 5, 1}, [3]float64{}},
	}
	for si, sh := range shapes {
		for coord := CoordHalfPixel; coord <= CoordAsymmetric; coord++ {
			for mode := range 5 {
				r := ResizeSpec{N: 2, C: 3, In: sh.in, Out: sh.out, Scale: sh.scale, Coord: coord}
				if mode == 4 {
					r.Mode = Linear
				} else {
					r.Mode, r.Nearest = Nearest, ResizeNearest(mode)
				}
				t.Run(fmt.Sprintf("shape%d/coord%d/mode%d", si, coord, mode), func(t *testing.T) {
					x := nnRand(rng, r.N*r.C*Voxels(r.In), 1, 0)
					want := nnRefResize(x, r)
					tol := 1e-5
					if r.Mode == Nearest {
						tol = 0
					}
					checkOp(t, b, "resize", want, tol, tol, func(dst *Buffer) error {
						return b.Resize(dst, upload(t, b, x), r)
					})
				})
			}
		}
	}
}

func confNNReduce(t *testing.T, b Backend) {
	rng := rand.New(rand.NewPCG(6, 6))
	for _, n := range []int{1, 7, 1000, 200003} {
		x := nnRand(rng, n, 10, 1)
		src := upload(t, b, x)
		var sum, mag float64
		m := float32(math.Inf(-1))
		var count int64
		for _, v := range x {
			sum += float64(v)
			mag += math.Abs(float64(v))
			m = max(m, v)
			if v > 2.5 {
				count++
			}
		}
		got, err := b.Sum(src, n)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-sum) > 1e-9*mag {
			t.Errorf("Sum of %d = %v, want %v", n, got, sum)
		}
		if got, err := b.Max(src, n); err != nil || got != m {
			t.Errorf("Max of %d = %v, %v; want %v", n, got, err, m)
		}
		if got, err := b.CountAbove(src, n, 2.5); err != nil || got != count {
			t.Errorf("CountAbove of %d = %v, %v; want %v", n, got, err, count)
		}
	}
	if got, err := b.Sum(alloc(t, b, 4), 0); err != nil || got != 0 {
		t.Errorf("Sum of nothing = %v, %v", got, err)
	}

	for _, tc := range []struct{ n, c, spatial int }{{2, 3, 5 * 7 * 9}, {1, 256, 3}, {3, 1, 600}, {1, 5, 1500}} {
		// Rounded values tie often: the first channel wins.
		x := nnRand(rng, tc.n*tc.c*tc.spatial, 1, 0)
		for i := range x {
			x[i] = float32(math.Round(float64(x[i])))
		}
		want := make([]uint8, tc.n*tc.spatial)
		for bi := range tc.n {
			for v := range tc.spatial {
				best := 0
				for j := 1; j < tc.c; j++ {
					if x[(bi*tc.c+j)*tc.spatial+v] > x[(bi*tc.c+best)*tc.spatial+v] {
						best = j
					}
				}
				want[bi*tc.spatial+v] = uint8(best)
			}
		}
		dst := allocOf(t, b, Uint8, len(want))
		if err := b.Argmax(dst, upload(t, b, x), tc.n, tc.c, tc.spatial); err != nil {
			t.Fatal(err)
		}
		got := make([]uint8, len(want))
		if err := b.Download(got, dst); err != nil {
			t.Fatal(err)
		}
		if i := nnFirstDiff(got, want); i >= 0 {
			t.Errorf("Argmax %v: [%d] = %d, want %d", tc, i, got[i], want[i])
		}
	}
}

func nnFirstDiff(a, b []uint8) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// confNNGolden runs every PyTorch case of testdata/golden/nn, and the
// naive references on the same inputs (which checks the references).
func confNNGolden(t *testing.T, b Backend) {
	gs := readGoldens(t, "nn")
	names := make([]string, 0, len(gs))
	for name := range gs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		g := gs[name]
		t.Run(name, func(t *testing.T) {
			// Every case has an input x and output y except concat (x0,
			// x1, x2) and reduce (one output per reduction).
			x, y := g.Tensors["x"], g.Tensors["y"]
			var src *Buffer
			if g.Op != "concat" {
				src = upload(t, b, g.tensor(t, "x").Data)
			}
			if g.Op != "reduce" {
				g.tensor(t, "y")
			}
			switch g.Op {
			case "pool":
				nnGoldenPool(t, b, g, x, y, src)
			case "global_avg_pool":
				checkOp(t, b, name, y.Data, 1e-6, 1e-5, func(dst *Buffer) error {
					return b.GlobalAvgPool(dst, src, x.Shape[0], x.Shape[1], nnSpatial(x))
				})
			case "instance_norm", "batch_norm":
				nnGoldenNorm(t, b, g, x, y, src)
			case "softmax":
				checkOp(t, b, name, y.Data, 1e-6, 1e-5, func(dst *Buffer) error {
					return b.Softmax(dst, src, x.Shape[0], x.Shape[1], nnSpatial(x))
				})
				closeTo(t, name+" (reference)", nnRefSoftmax(x.Data, x.Shape[0], x.Shape[1], nnSpatial(x)), y.Data, 1e-6, 1e-5)
			case "concat":
				var srcs []*Buffer
				var inner []int
				for i := range 3 {
					xi := g.tensor(t, fmt.Sprintf("x%d", i))
					srcs = append(srcs, upload(t, b, xi.Data))
					inner = append(inner, len(xi.Data)/xi.Shape[0])
				}
				checkOp(t, b, name, y.Data, 0, 0, func(dst *Buffer) error {
					return b.Concat(dst, srcs, y.Shape[0], inner)
				})
			case "resize":
				nnGoldenResize(t, b, g, x, y, src)
			case "reduce":
				var threshold float32
				g.param(t, "threshold", &threshold)
				n := len(x.Data)
				sum, err := b.Sum(src, n)
				if want := float64(g.tensor(t, "sum").Data[0]); err != nil || math.Abs(sum-want) > 1e-6*math.Abs(want)+1e-6 {
					t.Errorf("Sum = %v, %v; want %v", sum, err, want)
				}
				m, err := b.Max(src, n)
				if want := g.tensor(t, "max").Data[0]; err != nil || m != want {
					t.Errorf("Max = %v, %v; want %v", m, err, want)
				}
				cnt, err := b.CountAbove(src, n, threshold)
				if want := int64(g.tensor(t, "count").Data[0]); err != nil || cnt != want {
					t.Errorf("CountAbove = %v, %v; want %v", cnt, err, want)
				}
			case "argmax":
				dst := allocOf(t, b, Uint8, len(y.Data))
				if err := b.Argmax(dst, src, x.Shape[0], x.Shape[1], nnSpatial(x)); err != nil {
					t.Fatal(err)
				}
				got := make([]uint8, len(y.Data))
				if err := b.Download(got, dst); err != nil {
					t.Fatal(err)
				}
				want := make([]uint8, len(y.Data))
				for i, v := range y.Data {
					want[i] = uint8(v)
				}
				if i := nnFirstDiff(got, want); i >= 0 {
					t.Errorf("Argmax[%d] = %d, want %d", i, got[i], want[i])
				}
			default:
				t.Fatalf("unknown op %q", g.Op)
			}
		})
	}
}

// nnSpatial is the product of a tensor's dimensions after N and C.
func nnSpatial(x goldenTensor) int {
	n := 1
	for _, d := range x.Shape[2:] {
		n *= d
	}
	return n
}

func nnGoldenPool(t *testing.T, b Backend, g golden, x, y goldenTensor, src *Buffer) {
	var kind string
	p := PoolSpec{N: x.Shape[0], C: x.Shape[1], In: [3]int(x.Shape[2:])}
	g.params(t, "kind", &kind, "kernel", &p.Kernel, "stride", &p.Stride, "dilation", &p.Dilation,
		"pad_begin", &p.PadBegin, "pad_end", &p.PadEnd, "ceil_mode", &p.CeilMode,
		"count_include_pad", &p.CountIncludePad)
	tol := 0.0
	p.Kind = MaxPool
	if kind == "avg" {
		p.Kind, tol = AvgPool, 1e-5
	}
	out, err := p.Out()
	if err != nil {
		t.Fatal(err)
	}
	if out != [3]int(y.Shape[2:]) {
		t.Fatalf("PoolSpec.Out = %v, PyTorch %v", out, y.Shape[2:])
	}
	checkOp(t, b, "pool", y.Data, tol, tol, func(dst *Buffer) error {
		return b.Pool(dst, src, p)
	})
	closeTo(t, "pool (reference)", nnRefPool(x.Data, p, out), y.Data, tol, tol)
}

func nnGoldenNorm(t *testing.T, b Backend, g golden, x, y goldenTensor, src *Buffer) {
	var eps, alpha float32
	var kind string
	g.params(t, "eps", &eps, "act", &kind, "alpha", &alpha)
	act := Activation{Alpha: alpha}
	switch kind {
	case "relu":
		act.Kind = ActReLU
	case "leaky_relu":
		act.Kind = ActLeakyReLU
	case "sigmoid":
		act.Kind = ActSigmoid
	}
	n, c, spatial := x.Shape[0], x.Shape[1], nnSpatial(x)
	scale, bias := g.tensor(t, "scale").Data, g.tensor(t, "bias").Data
	dst := alloc(t, b, len(y.Data))
	var err error
	var ref []float32
	tol := 1e-4
	if g.Op == "batch_norm" {
		mean, variance := g.tensor(t, "mean").Data, g.tensor(t, "var").Data
		err = b.BatchNorm(dst, src, upload(t, b, scale), upload(t, b, bias), upload(t, b, mean), upload(t, b, variance), n, c, spatial, eps, act)
		ref = nnRefNorm(x.Data, n*c, c, spatial, eps, act, scale, bias, mean, variance)
		tol = 1e-5
	} else {
		err = b.InstanceNorm(dst, src, upload(t, b, scale), upload(t, b, bias), n, c, spatial, eps, act)
		ref = nnRefNorm(x.Data, n*c, c, spatial, eps, act, scale, bias, nil, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, g.Op, download(t, b, dst, len(y.Data)), y.Data, tol, tol)
	closeTo(t, g.Op+" (reference)", ref, y.Data, tol, tol)
}

func nnGoldenResize(t *testing.T, b Backend, g golden, x, y goldenTensor, src *Buffer) {
	var mode, coord, nearest string
	r := ResizeSpec{N: x.Shape[0], C: x.Shape[1], In: [3]int(x.Shape[2:])}
	g.params(t, "mode", &mode, "coord", &coord, "nearest", &nearest, "out", &r.Out, "scale", &r.Scale)
	tol := 1e-5
	if mode == "nearest" {
		r.Mode, tol = Nearest, 0
	}
	coords := map[string]ResizeCoord{"half_pixel": CoordHalfPixel, "pytorch_half_pixel": CoordPyTorchHalfPixel,
		"align_corners": CoordAlignCorners, "asymmetric": CoordAsymmetric}
	nearests := map[string]ResizeNearest{"": NearestRoundPreferFloor, "round_prefer_floor": NearestRoundPreferFloor,
		"round_prefer_ceil": NearestRoundPreferCeil, "floor": NearestFloor, "ceil": NearestCeil}
	var ok1, ok2 bool
	r.Coord, ok1 = coords[coord]
	r.Nearest, ok2 = nearests[nearest]
	if !ok1 || !ok2 {
		t.Fatalf("unknown coordinate mode %q or nearest mode %q", coord, nearest)
	}
	checkOp(t, b, "resize", y.Data, tol, tol, func(dst *Buffer) error {
		return b.Resize(dst, src, r)
	})
	closeTo(t, "resize (reference)", nnRefResize(x.Data, r), y.Data, tol, tol)
	if r.Coord == CoordHalfPixel && !slices.Contains(r.Out[:], 1) {
		// pytorch_half_pixel differs from half_pixel only for outputs of
		// length 1.
		r.Coord = CoordPyTorchHalfPixel
		checkOp(t, b, "resize (pytorch_half_pixel)", y.Data, tol, tol, func(dst *Buffer) error {
			return b.Resize(dst, src, r)
		})
	}
}

func confNNErrors(t *testing.T, b Backend) {
	f := func(n int) *Buffer { return alloc(t, b, n) }
	foreign, freed := badBuffers(t, b, 1<<12)
	i16, u8 := allocOf(t, b, Int16, 1<<12), allocOf(t, b, Uint8, 1<<12)
	big, small, c3 := f(1<<12), f(10), f(3)
	okPool := PoolSpec{Kind: MaxPool, N: 1, C: 2, In: [3]int{4, 4, 4}, Kernel: [3]int{2, 2, 2}, Stride: [3]int{2, 2, 2}}
	pool := func(mod func(*PoolSpec)) PoolSpec {
		p := okPool
		mod(&p)
		return p
	}
	okResize := ResizeSpec{N: 1, C: 2, In: [3]int{4, 4, 4}, Out: [3]int{8, 8, 8}}
	resize := func(mod func(*ResizeSpec)) ResizeSpec {
		r := okResize
		mod(&r)
		return r
	}
	cases := []struct {
		name string
		want error
		err  error
	}{
		{"pool ok", nil, b.Pool(f(16), big, okPool)},
		{"pool kind", ErrShape, b.Pool(big, big, pool(func(p *PoolSpec) { p.Kind = 0 }))},
		{"pool kernel 0", ErrShape, b.Pool(f(16), big, pool(func(p *PoolSpec) { p.Kernel[1] = 0 }))},
		{"pool pad", ErrShape, b.Pool(f(16), big, pool(func(p *PoolSpec) { p.PadBegin[2] = 2 }))},
		{"pool avg dilation", ErrShape, b.Pool(f(16), big, pool(func(p *PoolSpec) { p.Kind, p.Dilation[0] = AvgPool, 2 }))},
		{"pool window too big", ErrShape, b.Pool(f(16), big, pool(func(p *PoolSpec) { p.Kernel[0], p.Dilation[0] = 3, 3 }))},
		{"pool short source", ErrShape, b.Pool(f(16), f(127), okPool)},
		{"pool short destination", ErrShape, b.Pool(f(15), big, okPool)},
		{"pool int16 source", ErrShape, b.Pool(f(16), i16, okPool)},
		{"pool foreign", ErrBackend, b.Pool(f(16), foreign, okPool)},
		{"pool freed", ErrBackend, b.Pool(freed, big, okPool)},
		{"pool nil", ErrBackend, b.Pool(nil, big, okPool)},
		{"pool overflow", ErrShape, b.Pool(f(16), big, pool(func(p *PoolSpec) { p.In = [3]int{1 << 40, 1 << 40, 1 << 40} }))},
		{"gap short", ErrShape, b.GlobalAvgPool(f(5), big, 2, 3, 10)},
		{"gap zero", ErrShape, b.GlobalAvgPool(big, small, 2, 0, 1)},
		{"instance norm ok", nil, b.InstanceNorm(big, big, c3, c3, 2, 3, 10, 1e-5, Activation{})},
		{"instance norm scale short", ErrShape, b.InstanceNorm(big, big, f(2), c3, 2, 3, 10, 1e-5, Activation{})},
		{"instance norm bias foreign", ErrBackend, b.InstanceNorm(big, big, c3, foreign, 2, 3, 10, 1e-5, Activation{})},
		{"instance norm act", ErrShape, b.InstanceNorm(big, big, c3, c3, 2, 3, 10, 1e-5, Activation{Kind: 9})},
		{"instance norm eps", ErrShape, b.InstanceNorm(big, big, c3, c3, 2, 3, 10, -1, Activation{})},
		{"instance norm eps NaN", ErrShape, b.InstanceNorm(big, big, c3, c3, 2, 3, 10, float32(math.NaN()), Activation{})},
		{"instance norm short", ErrShape, b.InstanceNorm(big, small, c3, c3, 2, 3, 10, 1e-5, Activation{})},
		{"instance norm spatial", ErrShape, b.InstanceNorm(big, big, c3, c3, 2, 3, -1, 1e-5, Activation{})},
		{"instance norm overflow", ErrShape, b.InstanceNorm(big, big, c3, c3, 1<<40, 3, 1<<40, 1e-5, Activation{})},
		{"batch norm ok", nil, b.BatchNorm(big, big, c3, c3, c3, c3, 2, 3, 10, 1e-5, Activation{Kind: ActReLU})},
		{"batch norm variance short", ErrShape, b.BatchNorm(big, big, c3, c3, c3, f(2), 2, 3, 10, 1e-5, Activation{})},
		{"batch norm mean int16", ErrShape, b.BatchNorm(big, big, c3, c3, i16, c3, 2, 3, 10, 1e-5, Activation{})},
		{"batch norm act", ErrShape, b.BatchNorm(big, big, c3, c3, c3, c3, 2, 3, 10, 1e-5, Activation{Kind: 7})},
		{"softmax short", ErrShape, b.Softmax(big, small, 2, 3, 10)},
		{"softmax foreign", ErrBackend, b.Softmax(foreign, big, 2, 3, 10)},
		{"softmax channels", ErrShape, b.Softmax(big, big, 2, 0, 10)},
		{"concat ok", nil, b.Concat(big, []*Buffer{small, c3}, 1, []int{10, 3})},
		{"concat count", ErrShape, b.Concat(big, []*Buffer{small, c3}, 1, []int{10})},
		{"concat none", ErrShape, b.Concat(big, nil, 1, nil)},
		{"concat negative", ErrShape, b.Concat(big, []*Buffer{small}, 1, []int{-1})},
		{"concat short source", ErrShape, b.Concat(big, []*Buffer{small, c3}, 1, []int{10, 4})},
		{"concat short destination", ErrShape, b.Concat(c3, []*Buffer{small}, 1, []int{10})},
		{"concat nil source", ErrBackend, b.Concat(big, []*Buffer{small, nil}, 1, []int{10, 3})},
		{"concat int16", ErrShape, b.Concat(big, []*Buffer{i16}, 1, []int{10})},
		{"resize ok", nil, b.Resize(f(1024), big, okResize)},
		{"resize mode", ErrShape, b.Resize(f(1024), big, resize(func(r *ResizeSpec) { r.Mode = 7 }))},
		{"resize coord", ErrShape, b.Resize(f(1024), big, resize(func(r *ResizeSpec) { r.Coord = 9 }))},
		{"resize nearest", ErrShape, b.Resize(f(1024), big, resize(func(r *ResizeSpec) { r.Mode, r.Nearest = Nearest, 9 }))},
		{"resize out 0", ErrShape, b.Resize(f(1024), big, resize(func(r *ResizeSpec) { r.Out[1] = 0 }))},
		{"resize scale", ErrShape, b.Resize(f(1024), big, resize(func(r *ResizeSpec) { r.Scale[0] = -2 }))},
		{"resize scale NaN", ErrShape, b.Resize(f(1024), big, resize(func(r *ResizeSpec) { r.Scale[0] = math.NaN() }))},
		{"resize overflow", ErrShape, b.Resize(f(1024), big, resize(func(r *ResizeSpec) { r.Out = [3]int{1 << 30, 1 << 30, 1 << 30} }))},
		{"softmax overflow", ErrShape, b.Softmax(big, big, 1<<62, 2, 1<<62)},
		{"concat overflow", ErrShape, b.Concat(big, []*Buffer{small, c3}, 1<<40, []int{1 << 40, 3})},
		{"argmax overflow", ErrShape, b.Argmax(u8, big, 1<<40, 3, 1<<40)},
		{"resize short destination", ErrShape, b.Resize(f(1023), big, okResize)},
		{"resize short source", ErrShape, b.Resize(f(1024), f(127), okResize)},
		{"resize foreign", ErrBackend, b.Resize(f(1024), foreign, okResize)},
		{"sum short", ErrShape, nnErr(b.Sum(small, 11))},
		{"sum negative", ErrShape, nnErr(b.Sum(small, -1))},
		{"sum foreign", ErrBackend, nnErr(b.Sum(foreign, 10))},
		{"sum uint8", ErrShape, nnErr(b.Sum(u8, 10))},
		{"max empty", ErrShape, nnErr(b.Max(small, 0))},
		{"max short", ErrShape, nnErr(b.Max(small, 11))},
		{"max freed", ErrBackend, nnErr(b.Max(freed, 10))},
		{"count short", ErrShape, nnErr(b.CountAbove(small, 11, 0))},
		{"count foreign", ErrBackend, nnErr(b.CountAbove(foreign, 1, 0))},
		{"argmax ok", nil, b.Argmax(u8, big, 2, 3, 10)},
		{"argmax float32 destination", ErrShape, b.Argmax(big, big, 2, 3, 10)},
		{"argmax 257 channels", ErrShape, b.Argmax(u8, big, 1, 257, 2)},
		{"argmax short destination", ErrShape, b.Argmax(u8, big, 2, 3, 1<<12)},
		{"argmax short source", ErrShape, b.Argmax(u8, small, 2, 3, 10)},
		{"argmax foreign", ErrBackend, b.Argmax(u8, foreign, 2, 3, 10)},
	}
	for _, tc := range cases {
		if tc.want == nil && tc.err != nil || tc.want != nil && !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}

// nnErr drops the value of a reduction, keeping its error.
func nnErr[T any](_ T, err error) error { return err }

// TestCPUNNNotInPlace: the CPU backend refuses a destination that is
// also the source of an operation that cannot run in place (the contract
// only forbids the call, so other backends need not check).
func TestCPUNNNotInPlace(t *testing.T) {
	b := NewCPU()
	big := alloc(t, b, 1<<12)
	p := PoolSpec{Kind: MaxPool, N: 1, C: 2, In: [3]int{4, 4, 4}, Kernel: [3]int{2, 2, 2}, Stride: [3]int{2, 2, 2}}
	r := ResizeSpec{N: 1, C: 1, In: [3]int{4, 4, 4}, Out: [3]int{2, 2, 2}}
	for name, err := range map[string]error{
		"pool":   b.Pool(big, big, p),
		"resize": b.Resize(big, big, r),
		"concat": b.Concat(big, []*Buffer{big}, 1, []int{10}),
		"gap":    b.GlobalAvgPool(big, big, 1, 2, 10),
	} {
		if !errors.Is(err, ErrShape) {
			t.Errorf("%s in place: error %v, want ErrShape", name, err)
		}
	}
}

// TestNNExp: the softmax's exponential is within one float32 ulp of
// math.Exp from where e^x underflows to where it overflows.
func TestNNExp(t *testing.T) {
	for x := float32(-105); x < 89; x += 0.00731 {
		got, want := nnExp(x), float32(math.Exp(float64(x)))
		if d := int64(math.Float32bits(got)) - int64(math.Float32bits(want)); d < -1 || d > 1 {
			t.Fatalf("nnExp(%v) = %v, want %v", x, got, want)
		}
	}
	for _, tc := range []struct{ x, want float32 }{
		{0, 1}, {float32(math.Inf(-1)), 0}, {-200, 0}, {100, float32(math.Inf(1))},
	} {
		if got := nnExp(tc.x); got != tc.want {
			t.Errorf("nnExp(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
	if got := nnExp(float32(math.NaN())); !math.IsNaN(float64(got)) {
		t.Errorf("nnExp(NaN) = %v", got)
	}
}
