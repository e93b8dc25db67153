package triage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/radtriage/radtriage/kernels"
)

// builder makes small models in Go for the executor's tests.
type builder struct{ m *Model }

func newBuilder(opset int64) *builder {
	return &builder{m: &Model{IRVersion: 8, Opsets: map[string]int64{"": opset}, Graph: &Graph{Initializers: map[string]*Tensor{}}}}
}

func (b *builder) input(name string, shape ...int) *builder {
	vi := ValueInfo{Name: name, ElemType: TypeFloat}
	for range shape {
		vi.Shape = append(vi.Shape, Dim{Value: -1, Param: "d"})
	}
	b.m.Graph.Inputs = append(b.m.Graph.Inputs, vi)
	return b
}

func (b *builder) init(name string, shape []int, data []float32) *builder {
	t := &Tensor{Name: name, DataType: TypeFloat, Float: data}
	for _, d := range shape {
		t.Dims = append(t.Dims, int64(d))
	}
	b.m.Graph.Initializers[name] = t
	b.m.Graph.InitializerOrder = append(b.m.Graph.InitializerOrder, name)
	return b
}

func (b *builder) initInts(name string, data ...int64) *builder {
	b.m.Graph.Initializers[name] = &Tensor{Name: name, DataType: TypeInt64, Dims: []int64{int64(len(data))}, Int64: data}
	b.m.Graph.InitializerOrder = append(b.m.Graph.InitializerOrder, name)
	return b
}

func (b *builder) node(op string, ins, outs []string, at ...*Attribute) *builder {
	n := &Node{Name: fmt.Sprintf("%s_%d", strings.ToLower(op), len(b.m.Graph.Nodes)), OpType: op, Inputs: ins, Outputs: outs, Attrs: map[string]*Attribute{}}
	for _, a := range at {
		n.Attrs[a.Name] = a
	}
	b.m.Graph.Nodes = append(b.m.Graph.Nodes, n)
	return b
}

func (b *builder) output(names ...string) *builder {
	for _, n := range names {
		b.m.Graph.Outputs = append(b.m.Graph.Outputs, ValueInfo{Name: n, ElemType: TypeFloat})
	}
	return b
}

func aInt(name string, v int64) *Attribute { return &Attribute{Name: name, Type: AttrInt, I: v} }
func aFloat(name string, v float32) *Attribute {
	return &Attribute{Name: name, Type: AttrFloat, F: v}
}
func aInts(name string, v ...int64) *Attribute {
	return &Attribute{Name: name, Type: AttrInts, Ints: v}
}
func aStr(name, v string) *Attribute { return &Attribute{Name: name, Type: AttrString, S: []byte(v)} }

func randN(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// compileRun compiles m for the given input shapes on the CPU backend and
// runs it.
func compileRun(t *testing.T, m *Model, shapes map[string][]int, inputs map[string][]float32, opts CompileOptions) (*Plan, map[string][]float32) {
	t.Helper()
	p, err := Compile(m, kernels.CPU(), shapes, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	out, err := p.Run(context.Background(), inputs)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return p, out
}

// near compares got with want within abs + rel*|want| and reports the
// first bad element.
func near(t *testing.T, what string, got, want []float32, abs, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= abs+rel*math.Abs(float64(want[i]))) {
			t.Fatalf("%s: element %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

// refConv is a naive ONNX Conv (transpose false) or ConvTranspose over
// NCDHW with group 1; shapes are 5D, parameters (D, H, W).
func refConv(x []float32, xs [5]int, w []float32, ws [5]int, bias []float32, transpose bool, stride, pb, pe, dil, outPad [3]int) ([]float32, [5]int) {
	n, cin := xs[0], xs[1]
	cout := ws[0]
	if transpose {
		cout = ws[1]
	}
	k := [3]int{ws[2], ws[3], ws[4]}
	var os [5]int
	os[0], os[1] = n, cout
	for a := range 3 {
		ext := dil[a]*(k[a]-1) + 1
		if transpose {
			os[2+a] = stride[a]*(xs[2+a]-1) + outPad[a] + ext - pb[a] - pe[a]
		} else {
			os[2+a] = (xs[2+a]+pb[a]+pe[a]-ext)/stride[a] + 1
		}
	}
	out := make([]float64, os[0]*os[1]*os[2]*os[3]*os[4])
	xi := func(b, c, d, h, w int) int { return (((b*cin+c)*xs[2]+d)*xs[3]+h)*xs[4] + w }
	oi := func(b, c, d, h, w int) int { return (((b*cout+c)*os[2]+d)*os[3]+h)*os[4] + w }
	for b := range n {
		for co := range cout {
			for ci := range cin {
				for kd := range k[0] {
					for kh := range k[1] {
						for kw := range k[2] {
							var wv float32
							if transpose {
								wv = w[(((ci*cout+co)*k[0]+kd)*k[1]+kh)*k[2]+kw]
							} else {
								wv = w[(((co*cin+ci)*k[0]+kd)*k[1]+kh)*k[2]+kw]
							}
							if transpose {
								for d := range xs[2] {
									for h := range xs[3] {
										for ww := range xs[4] {
											od, oh, ow := d*stride[0]-pb[0]+kd*dil[0], h*stride[1]-pb[1]+kh*dil[1], ww*stride[2]-pb[2]+kw*dil[2]
											if od < 0 || oh < 0 || ow < 0 || od >= os[2] || oh >= os[3] || ow >= os[4] {
												continue
											}
											out[oi(b, co, od, oh, ow)] += float64(x[xi(b, ci, d, h, ww)]) * float64(wv)
										}
									}
								}
								continue
							}
							for od := range os[2] {
								for oh := range os[3] {
									for ow := range os[4] {
										d, h, ww := od*stride[0]-pb[0]+kd*dil[0], oh*stride[1]-pb[1]+kh*dil[1], ow*stride[2]-pb[2]+kw*dil[2]
										if d < 0 || h < 0 || ww < 0 || d >= xs[2] || h >= xs[3] || ww >= xs[4] {
											continue
										}
										out[oi(b, co, od, oh, ow)] += float64(x[xi(b, ci, d, h, ww)]) * float64(wv)
									}
								}
							}
						}
					}
				}
			}
		}
	}
	res := make([]float32, len(out))
	sp := os[2] * os[3] * os[4]
	for i, v := range out {
		if bias != nil {
			v += float64(bias[(i/sp)%cout])
		}
		res[i] = float32(v)
	}
	return res, os
}

func TestExecConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name      string
		transpose bool
		x, w      []int // ONNX shapes (rank 3 to 5)
		bias      bool
		at        []*Attribute
		stride    [3]int
		pb, pe    [3]int
		dil, op   [3]int
	}{
		{name: "3d pads", x: []int{2, 3, 5, 6, 4}, w: []int{4, 3, 3, 3, 3}, bias: true,
			at: []*Attribute{aInts("pads", 1, 1, 1, 1, 1, 1)}, stride: [3]int{1, 1, 1}, pb: [3]int{1, 1, 1}, pe: [3]int{1, 1, 1}, dil: [3]int{1, 1, 1}},
		{name: "3d stride dilation asym pads", x: []int{1, 2, 7, 8, 9}, w: []int{3, 2, 3, 2, 3},
			at:     []*Attribute{aInts("strides", 2, 1, 3), aInts("dilations", 1, 2, 1), aInts("pads", 0, 1, 2, 1, 0, 1)},
			stride: [3]int{2, 1, 3}, pb: [3]int{0, 1, 2}, pe: [3]int{1, 0, 1}, dil: [3]int{1, 2, 1}},
		{name: "3d same upper", x: []int{1, 2, 5, 6, 7}, w: []int{2, 2, 3, 3, 3}, bias: true,
			at:     []*Attribute{aStr("auto_pad", "SAME_UPPER"), aInts("strides", 2, 2, 2)},
			stride: [3]int{2, 2, 2}, pb: [3]int{1, 0, 1}, pe: [3]int{1, 1, 1}, dil: [3]int{1, 1, 1}},
		{name: "2d", x: []int{1, 2, 6, 5}, w: []int{3, 2, 3, 3}, bias: true,
			at: []*Attribute{aInts("pads", 1, 0, 1, 0)}, stride: [3]int{1, 1, 1}, pb: [3]int{0, 1, 0}, pe: [3]int{0, 1, 0}, dil: [3]int{1, 1, 1}},
		{name: "1d", x: []int{2, 2, 9}, w: []int{3, 2, 3}, at: []*Attribute{aInts("strides", 2)},
			stride: [3]int{1, 1, 2}, dil: [3]int{1, 1, 1}},
		{name: "transpose 3d", transpose: true, x: []int{1, 3, 3, 4, 2}, w: []int{3, 2, 2, 2, 2}, bias: true,
			at: []*Attribute{aInts("strides", 2, 2, 2)}, stride: [3]int{2, 2, 2}, dil: [3]int{1, 1, 1}},
		{name: "transpose pads output_padding", transpose: true, x: []int{2, 2, 3, 3, 3}, w: []int{2, 3, 3, 3, 3},
			at:     []*Attribute{aInts("strides", 2, 2, 2), aInts("pads", 1, 1, 1, 1, 1, 1), aInts("output_padding", 1, 0, 1)},
			stride: [3]int{2, 2, 2}, pb: [3]int{1, 1, 1}, pe: [3]int{1, 1, 1}, dil: [3]int{1, 1, 1}, op: [3]int{1, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, w := randN(rng, numel(tc.x)), randN(rng, numel(tc.w))
			op := "Conv"
			if tc.transpose {
				op = "ConvTranspose"
			}
			b := newBuilder(13).input("x", tc.x...).init("w", tc.w, w)
			ins := []string{"x", "w"}
			var bias []float32
			if tc.bias {
				cout := tc.w[0]
				if tc.transpose {
					cout = tc.w[1]
				}
				bias = randN(rng, cout)
				b.init("b", []int{cout}, bias)
				ins = append(ins, "b")
			}
			b.node(op, ins, []string{"y"}, tc.at...).output("y")
			p, out := compileRun(t, b.m, map[string][]int{"x": tc.x}, map[string][]float32{"x": x}, CompileOptions{})
			pad5 := func(s []int) [5]int {
				r := [5]int{1, 1, 1, 1, 1}
				r[0], r[1] = s[0], s[1]
				copy(r[5-(len(s)-2):], s[2:])
				return r
			}
			want, os := refConv(x, pad5(tc.x), w, pad5(tc.w), bias, tc.transpose, tc.stride, tc.pb, tc.pe, tc.dil, tc.op)
			gotShape := p.OutputShapes()["y"]
			if len(gotShape) != len(tc.x) || numel(gotShape) != len(want) || gotShape[len(gotShape)-1] != os[4] {
				t.Fatalf("output shape %v, reference %v", gotShape, os)
			}
			near(t, "y", out["y"], want, 1e-4, 1e-4)
		})
	}
}

// TestExecFusion: Conv+BatchNormalization+Relu (and ConvTranspose+BN+
// LeakyRelu, InstanceNorm+Sigmoid) compiled with fusion match the unfused
// plan, in fewer steps.
func TestExecFusion(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name      string
		build     func(b *builder)
		wantSteps int
	}{
		{"conv bn relu", func(b *builder) {
			b.init("w", []int{4, 2, 3, 3, 3}, randN(rng, 4*2*27)).init("cb", []int{4}, randN(rng, 4))
			addBN(b, rng, 4)
			b.node("Conv", []string{"x", "w", "cb"}, []string{"c"}, aInts("pads", 1, 1, 1, 1, 1, 1)).
				node("BatchNormalization", []string{"c", "s", "sh", "mu", "var"}, []string{"n"}, aFloat("epsilon", 1e-3)).
				node("Relu", []string{"n"}, []string{"y"})
		}, 1},
		{"convtranspose bn leaky", func(b *builder) {
			b.init("w", []int{2, 3, 2, 2, 2}, randN(rng, 2*3*8))
			addBN(b, rng, 3)
			b.node("ConvTranspose", []string{"x", "w"}, []string{"c"}, aInts("strides", 2, 2, 2)).
				node("BatchNormalization", []string{"c", "s", "sh", "mu", "var"}, []string{"n"}).
				node("LeakyRelu", []string{"n"}, []string{"y"}, aFloat("alpha", 0.2))
		}, 1},
		{"instancenorm sigmoid", func(b *builder) {
			b.init("s", []int{2}, randN(rng, 2)).init("sh", []int{2}, randN(rng, 2))
			b.node("InstanceNormalization", []string{"x", "s", "sh"}, []string{"n"}).
				node("Sigmoid", []string{"n"}, []string{"y"})
		}, 1},
		{"batchnorm relu", func(b *builder) {
			addBN(b, rng, 2)
			b.node("BatchNormalization", []string{"x", "s", "sh", "mu", "var"}, []string{"n"}).
				node("Relu", []string{"n"}, []string{"y"})
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(13).input("x", 2, 2, 4, 5, 6)
			tc.build(b)
			b.output("y")
			shapes := map[string][]int{"x": {2, 2, 4, 5, 6}}
			in := map[string][]float32{"x": randN(rng, 2*2*4*5*6)}
			fused, got := compileRun(t, b.m, shapes, in, CompileOptions{})
			plain, want := compileRun(t, b.m, shapes, in, CompileOptions{NoFusion: true})
			near(t, "y", got["y"], want["y"], 1e-5, 1e-5)
			if len(fused.steps) != tc.wantSteps || len(plain.steps) <= len(fused.steps) {
				t.Errorf("fused plan has %d steps (want %d), unfused %d", len(fused.steps), tc.wantSteps, len(plain.steps))
			}
		})
	}
}

func addBN(b *builder, rng *rand.Rand, c int) {
	v := randN(rng, c)
	for i := range v {
		v[i] = 0.5 + v[i]*v[i]
	}
	b.init("s", []int{c}, randN(rng, c)).init("sh", []int{c}, randN(rng, c)).init("mu", []int{c}, randN(rng, c)).init("var", []int{c}, v)
}

// A Conv whose output is also read elsewhere is not fused.
func TestExecNoFusionWhenShared(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	b := newBuilder(13).input("x", 1, 1, 3, 3, 3).init("w", []int{1, 1, 1, 1, 1}, []float32{-2}).
		node("Conv", []string{"x", "w"}, []string{"c"}).
		node("Relu", []string{"c"}, []string{"r"}).
		node("Add", []string{"c", "r"}, []string{"y"}).output("y")
	x := randN(rng, 27)
	p, out := compileRun(t, b.m, map[string][]int{"x": {1, 1, 3, 3, 3}}, map[string][]float32{"x": x}, CompileOptions{})
	if len(p.steps) != 3 {
		t.Errorf("%d steps, want 3", len(p.steps))
	}
	want := make([]float32, 27)
	for i, v := range x {
		c := -2 * v
		want[i] = c + max(c, 0)
	}
	near(t, "y", out["y"], want, 1e-6, 1e-6)
}

func TestExecElementwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randN(rng, 2*3*4)
	bv := randN(rng, 3*1)
	for i := range bv {
		bv[i] += 3 // away from zero for Div
	}
	type tc struct {
		name  string
		op    string
		at    []*Attribute
		extra bool // second operand: constant of shape [3,1]
		opset int64
		ref   func(i int, v float32) float32
	}
	bAt := func(i int) float32 { return bv[(i/4)%3] } // [2,3,4] broadcast with [3,1]
	for _, c := range []tc{
		{"relu", "Relu", nil, false, 13, func(_ int, v float32) float32 { return max(v, 0) }},
		{"leaky default", "LeakyRelu", nil, false, 13, func(_ int, v float32) float32 {
			if v < 0 {
				return 0.01 * v
			}
			return v
		}},
		{"sigmoid", "Sigmoid", nil, false, 13, func(_ int, v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) }},
		{"clip relu", "Clip", nil, false, 13, func(_ int, v float32) float32 { return max(v, 0) }},
		{"add", "Add", nil, true, 13, func(i int, v float32) float32 { return v + bAt(i) }},
		{"sub", "Sub", nil, true, 13, func(i int, v float32) float32 { return v - bAt(i) }},
		{"mul", "Mul", nil, true, 13, func(i int, v float32) float32 { return v * bAt(i) }},
		{"div", "Div", nil, true, 13, func(i int, v float32) float32 { return v / bAt(i) }},
		{"identity", "Identity", nil, false, 13, func(_ int, v float32) float32 { return v }},
		{"dropout", "Dropout", nil, false, 13, func(_ int, v float32) float32 { return v }},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBuilder(c.opset).input("x", 2, 3, 4)
			ins := []string{"x"}
			if c.extra {
				b.init("b", []int{3, 1}, bv)
				ins = append(ins, "b")
			}
			if c.op == "Clip" {
				b.m.Graph.Initializers["lo"] = &Tensor{Name: "lo", DataType: TypeFloat, Float: []float32{0}}
				ins = append(ins, "lo")
			}
			b.node(c.op, ins, []string{"y"}, c.at...).output("y")
			_, out := compileRun(t, b.m, map[string][]int{"x": {2, 3, 4}}, map[string][]float32{"x": x}, CompileOptions{})
			want := make([]float32, len(x))
			for i, v := range x {
				want[i] = c.ref(i, v)
			}
			near(t, "y", out["y"], want, 1e-6, 1e-6)
		})
	}
}

func TestExecBinaryBothRuntime(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	a, bb := randN(rng, 2*1*4), randN(rng, 3*1)
	m := newBuilder(13).input("a", 2, 1, 4).input("b", 3, 1).node("Mul", []string{"a", "b"}, []string{"y"}).output("y").m
	p, out := compileRun(t, m, map[string][]int{"a": {2, 1, 4}, "b": {3, 1}}, map[string][]float32{"a": a, "b": bb}, CompileOptions{})
	if s := p.OutputShapes()["y"]; fmt.Sprint(s) != "[2 3 4]" {
		t.Fatalf("shape %v", s)
	}
	var want []float32
	for i := range 2 {
		for j := range 3 {
			for k := range 4 {
				want = append(want, a[i*4+k]*bb[j])
			}
		}
	}
	near(t, "y", out["y"], want, 1e-6, 1e-6)
}

func TestExecNorms(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, c, sp = 2, 3, 10
	x := randN(rng, n*c*sp)
	scale, shift, mean := randN(rng, c), randN(rng, c), randN(rng, c)
	variance := []float32{0.5, 1.5, 2}
	t.Run("batchnorm", func(t *testing.T) {
		m := newBuilder(15).input("x", n, c, 2, 5).init("s", []int{c}, scale).init("b", []int{c}, shift).
			init("m", []int{c}, mean).init("v", []int{c}, variance).
			node("BatchNormalization", []string{"x", "s", "b", "m", "v"}, []string{"y"}, aFloat("epsilon", 0.01)).output("y").m
		_, out := compileRun(t, m, map[string][]int{"x": {n, c, 2, 5}}, map[string][]float32{"x": x}, CompileOptions{})
		want := make([]float32, len(x))
		for i, v := range x {
			ch := (i / sp) % c
			want[i] = float32((float64(v)-float64(mean[ch]))/math.Sqrt(float64(variance[ch])+0.01)*float64(scale[ch]) + float64(shift[ch]))
		}
		near(t, "y", out["y"], want, 1e-5, 1e-5)
	})
	t.Run("instancenorm", func(t *testing.T) {
		m := newBuilder(13).input("x", n, c, sp).init("s", []int{c}, scale).init("b", []int{c}, shift).
			node("InstanceNormalization", []string{"x", "s", "b"}, []string{"y"}).output("y").m
		_, out := compileRun(t, m, map[string][]int{"x": {n, c, sp}}, map[string][]float32{"x": x}, CompileOptions{})
		want := make([]float32, len(x))
		for nc := range n * c {
			var mu, v2 float64
			for _, v := range x[nc*sp : (nc+1)*sp] {
				mu += float64(v)
			}
			mu /= sp
			for _, v := range x[nc*sp : (nc+1)*sp] {
				v2 += (float64(v) - mu) * (float64(v) - mu)
			}
			v2 /= sp
			ch := nc % c
			for i := nc * sp; i < (nc+1)*sp; i++ {
				want[i] = float32((float64(x[i])-mu)/math.Sqrt(v2+1e-5)*float64(scale[ch]) + float64(shift[ch]))
			}
		}
		near(t, "y", out["y"], want, 1e-4, 1e-4)
	})
}

func TestExecSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	x := randN(rng, 2*3*4)
	// softmax over groups: index i belongs to group g(i); groups listed.
	ref := func(groups [][]int) []float32 {
		out := make([]float32, len(x))
		for _, g := range groups {
			var s float64
			for _, i := range g {
				s += math.Exp(float64(x[i]))
			}
			for _, i := range g {
				out[i] = float32(math.Exp(float64(x[i])) / s)
			}
		}
		return out
	}
	var channel, flat [][]int // axis 1 of [2,3,4]: opset 13 per channel column, opset 11 flattened
	for n := range 2 {
		var f []int
		for s := range 4 {
			var g []int
			for c := range 3 {
				g = append(g, n*12+c*4+s)
			}
			channel = append(channel, g)
		}
		for i := range 12 {
			f = append(f, n*12+i)
		}
		flat = append(flat, f)
	}
	for _, tc := range []struct {
		name  string
		opset int64
		at    []*Attribute
		want  []float32
	}{
		{"opset13 axis1", 13, []*Attribute{aInt("axis", 1)}, ref(channel)},
		{"opset11 default axis1 flattens", 11, nil, ref(flat)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newBuilder(tc.opset).input("x", 2, 3, 4).node("Softmax", []string{"x"}, []string{"y"}, tc.at...).output("y").m
			_, out := compileRun(t, m, map[string][]int{"x": {2, 3, 4}}, map[string][]float32{"x": x}, CompileOptions{})
			near(t, "y", out["y"], tc.want, 1e-6, 1e-5)
		})
	}
}

func TestExecConcatAndViews(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	a, c := randN(rng, 2*2*3), randN(rng, 2*1*3)
	m := newBuilder(13).input("a", 2, 2, 3).init("c", []int{2, 1, 3}, c).
		node("Concat", []string{"a", "c"}, []string{"cat"}, aInt("axis", 1)).
		node("Flatten", []string{"cat"}, []string{"f"}, aInt("axis", 2)).
		node("Unsqueeze", []string{"f", "ax"}, []string{"u"}).
		node("Squeeze", []string{"u", "ax"}, []string{"y"}).
		initInts("ax", 0).output("y").m
	// ax is an initializer: position in the list does not matter.
	p, out := compileRun(t, m, map[string][]int{"a": {2, 2, 3}}, map[string][]float32{"a": a}, CompileOptions{})
	var want []float32
	for n := range 2 {
		want = append(want, a[n*6:n*6+6]...)
		want = append(want, c[n*3:n*3+3]...)
	}
	if s := p.OutputShapes()["y"]; fmt.Sprint(s) != "[6 3]" {
		t.Fatalf("shape %v, want [6 3]", s)
	}
	near(t, "y", out["y"], want, 0, 0)
	if len(p.steps) != 1 {
		t.Errorf("%d steps, want 1 (views copy nothing)", len(p.steps))
	}
}

func TestExecResize(t *testing.T) {
	for _, tc := range []struct {
		name  string
		at    []*Attribute
		sizes bool
		want  []float32
	}{
		{"nearest asymmetric floor", []*Attribute{aStr("coordinate_transformation_mode", "asymmetric"), aStr("nearest_mode", "floor")}, false,
			[]float32{0, 0, 1, 1, 2, 2}},
		{"linear half_pixel", []*Attribute{aStr("mode", "linear")}, false,
			[]float32{0, 0.25, 0.75, 1.25, 1.75, 2}},
		{"linear align_corners sizes", []*Attribute{aStr("mode", "linear"), aStr("coordinate_transformation_mode", "align_corners")}, true,
			[]float32{0, 0.4, 0.8, 1.2, 1.6, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(13).input("x", 1, 1, 3)
			b.init("roi", []int{0}, []float32{})
			var ins []string
			if tc.sizes {
				b.initInts("sizes", 1, 1, 6)
				ins = []string{"x", "", "", "sizes"}
			} else {
				b.init("scales", []int{3}, []float32{1, 1, 2})
				ins = []string{"x", "roi", "scales"}
			}
			b.node("Resize", ins, []string{"y"}, tc.at...).output("y")
			_, out := compileRun(t, b.m, map[string][]int{"x": {1, 1, 3}}, map[string][]float32{"x": {0, 1, 2}}, CompileOptions{})
			near(t, "y", out["y"], tc.want, 1e-6, 1e-6)
		})
	}
}

func TestExecPool(t *testing.T) {
	x := make([]float32, 1*1*1*4*5)
	for i := range x {
		x[i] = float32((i * 7) % 11)
	}
	// Naive 2D pooling of the 4x5 image.
	ref := func(kind string, k, s, pb, pe [2]int, includePad bool) []float32 {
		var out []float32
		oh, ow := (4+pb[0]+pe[0]-k[0])/s[0]+1, (5+pb[1]+pe[1]-k[1])/s[1]+1
		for i := range oh {
			for j := range ow {
				best, sum, cnt := float32(math.Inf(-1)), float32(0), 0
				for a := range k[0] {
					for b := range k[1] {
						y, xx := i*s[0]-pb[0]+a, j*s[1]-pb[1]+b
						if y < 0 || xx < 0 || y >= 4 || xx >= 5 {
							if includePad {
								cnt++
							}
							continue
						}
						v := x[y*5+xx]
						best = max(best, v)
						sum += v
						cnt++
					}
				}
				if kind == "MaxPool" {
					out = append(out, best)
				} else {
					out = append(out, sum/float32(cnt))
				}
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, op     string
		at           []*Attribute
		k, s, pb, pe [2]int
		include      bool
	}{
		{"max 2x2", "MaxPool", []*Attribute{aInts("kernel_shape", 2, 2), aInts("strides", 2, 2)}, [2]int{2, 2}, [2]int{2, 2}, [2]int{}, [2]int{}, false},
		{"max pads", "MaxPool", []*Attribute{aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1)}, [2]int{3, 3}, [2]int{1, 1}, [2]int{1, 1}, [2]int{1, 1}, false},
		{"avg exclude pad", "AveragePool", []*Attribute{aInts("kernel_shape", 3, 2), aInts("pads", 1, 0, 1, 1)}, [2]int{3, 2}, [2]int{1, 1}, [2]int{1, 0}, [2]int{1, 1}, false},
		{"avg include pad", "AveragePool", []*Attribute{aInts("kernel_shape", 3, 3), aInts("pads", 1, 1, 1, 1), aInt("count_include_pad", 1)}, [2]int{3, 3}, [2]int{1, 1}, [2]int{1, 1}, [2]int{1, 1}, true},
		{"avg same upper", "AveragePool", []*Attribute{aInts("kernel_shape", 2, 2), aStr("auto_pad", "SAME_UPPER")}, [2]int{2, 2}, [2]int{1, 1}, [2]int{}, [2]int{1, 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newBuilder(13).input("x", 1, 1, 4, 5).node(tc.op, []string{"x"}, []string{"y"}, tc.at...).output("y").m
			_, out := compileRun(t, m, map[string][]int{"x": {1, 1, 4, 5}}, map[string][]float32{"x": x}, CompileOptions{})
			near(t, "y", out["y"], ref(tc.op, tc.k, tc.s, tc.pb, tc.pe, tc.include), 1e-6, 1e-6)
		})
	}
}

// A ResNet-like head: GlobalAveragePool, Flatten, Gemm, and MatMul.
func TestExecClassifierHead(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	x := randN(rng, 2*3*8)
	w := randN(rng, 4*3) // Gemm transB: [4,3]
	cb := randN(rng, 4)
	w2 := randN(rng, 4*2)
	m := newBuilder(13).input("x", 2, 3, 2, 2, 2).init("w", []int{4, 3}, w).init("c", []int{4}, cb).init("w2", []int{4, 2}, w2).
		node("GlobalAveragePool", []string{"x"}, []string{"g"}).
		node("Flatten", []string{"g"}, []string{"f"}).
		node("Gemm", []string{"f", "w", "c"}, []string{"h"}, aInt("transB", 1), aFloat("alpha", 0.5), aFloat("beta", 2)).
		node("MatMul", []string{"h", "w2"}, []string{"y"}).output("y", "h").m
	p, out := compileRun(t, m, map[string][]int{"x": {2, 3, 2, 2, 2}}, map[string][]float32{"x": x}, CompileOptions{})
	var h, y []float32
	for n := range 2 {
		var g [3]float64
		for c := range 3 {
			for i := range 8 {
				g[c] += float64(x[(n*3+c)*8+i]) / 8
			}
		}
		for o := range 4 {
			s := 0.0
			for c := range 3 {
				s += g[c] * float64(w[o*3+c])
			}
			h = append(h, float32(0.5*s+2*float64(cb[o])))
		}
		for j := range 2 {
			s := 0.0
			for o := range 4 {
				s += float64(h[n*4+o]) * float64(w2[o*2+j])
			}
			y = append(y, float32(s))
		}
	}
	near(t, "h", out["h"], h, 1e-5, 1e-5)
	near(t, "y", out["y"], y, 1e-5, 1e-5)
	if s := p.OutputShapes()["y"]; fmt.Sprint(s) != "[2 2]" {
		t.Errorf("y shape %v", s)
	}
}

// The Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain PyTorch
// exports for x.view(x.size(0), -1) folds to a constant shape: the plan
// has only the backend steps.
func TestExecConstantFolding(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	x := randN(rng, 2*3*4)
	i64 := func(name string, v ...int64) *Attribute {
		return &Attribute{Name: name, Type: AttrTensor, T: &Tensor{DataType: TypeInt64, Dims: []int64{int64(len(v))}, Int64: v}}
	}
	scalar := &Attribute{Name: "value", Type: AttrTensor, T: &Tensor{DataType: TypeInt64, Int64: []int64{0}}}
	m := newBuilder(13).input("x", 2, 3, 4).
		node("Relu", []string{"x"}, []string{"r"}).
		node("Shape", []string{"r"}, []string{"s"}).
		node("Constant", nil, []string{"zero"}, scalar).
		node("Gather", []string{"s", "zero"}, []string{"n"}, aInt("axis", 0)).
		node("Constant", nil, []string{"axes"}, i64("value", 0)).
		node("Unsqueeze", []string{"n", "axes"}, []string{"nu"}).
		node("Constant", nil, []string{"minus1"}, i64("value", -1)).
		node("Concat", []string{"nu", "minus1"}, []string{"shape"}, aInt("axis", 0)).
		node("Cast", []string{"shape"}, []string{"shape64"}, aInt("to", int64(TypeInt64))).
		node("Slice", []string{"shape64", "st", "en"}, []string{"sl"}).
		node("Reshape", []string{"r", "sl"}, []string{"y"}).
		initInts("st", 0).initInts("en", math.MaxInt64).output("y").m
	p, out := compileRun(t, m, map[string][]int{"x": {2, 3, 4}}, map[string][]float32{"x": x}, CompileOptions{})
	if s := p.OutputShapes()["y"]; fmt.Sprint(s) != "[2 12]" {
		t.Fatalf("y shape %v, want [2 12]", s)
	}
	if len(p.steps) != 1 {
		t.Errorf("%d steps, want 1 (the Relu)", len(p.steps))
	}
	want := make([]float32, len(x))
	for i, v := range x {
		want[i] = max(v, 0)
	}
	near(t, "y", out["y"], want, 0, 0)
}

func TestExecHostOps(t *testing.T) {
	ints := func(v ...int64) *hostT { return &hostT{shape: []int{len(v)}, isInt: true, ints: v} }
	d := &hostT{shape: []int{2, 3}, isInt: true, ints: []int64{0, 1, 2, 3, 4, 5}}
	for _, tc := range []struct {
		name string
		f    func() (*hostT, error)
		want string
	}{
		{"gather axis1 neg", func() (*hostT, error) { return hostGather(d, ints(-1, 0), 1) }, "[2 2] [2 0 5 3]"},
		{"slice step -1", func() (*hostT, error) {
			return hostSlice(d, []int64{-1}, []int64{math.MinInt64}, []int64{1}, []int64{-1})
		}, "[2 3] [2 1 0 5 4 3]"},
		{"slice clamp", func() (*hostT, error) { return hostSlice(d, []int64{1, 1}, []int64{5, 100}, nil, nil) }, "[1 2] [4 5]"},
		{"concat axis0", func() (*hostT, error) { return hostConcat([]*hostT{d, d}, -2) }, "[4 3] [0 1 2 3 4 5 0 1 2 3 4 5]"},
		{"range", func() (*hostT, error) { return hostRange(ints(1), ints(8), ints(3)) }, "[3] [1 4 7]"},
		{"div broadcast", func() (*hostT, error) { return hostBinary("Div", d, ints(2)) }, "[2 3] [0 0 1 1 2 2]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := tc.f()
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(h.shape, " ", h.ints); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestExecLiveness: a chain of 6 convolutions holds at most two
// activations (plus the input) at once, not all of them.
func TestExecLiveness(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	b := newBuilder(13).input("x", 1, 2, 8, 8, 8)
	prev := "x"
	for i := range 6 {
		w := fmt.Sprintf("w%d", i)
		b.init(w, []int{2, 2, 3, 3, 3}, randN(rng, 2*2*27))
		out := fmt.Sprintf("c%d", i)
		b.node("Conv", []string{prev, w}, []string{out}, aInts("pads", 1, 1, 1, 1, 1, 1))
		prev = out
	}
	b.output(prev)
	p, err := Compile(b.m, kernels.CPU(), map[string][]int{"x": {1, 2, 8, 8, 8}}, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	act := int64(2 * 8 * 8 * 8 * 4)
	if p.PeakBytes() != 2*act {
		t.Errorf("peak %d bytes, want %d (two activations); all 7 hold %d", p.PeakBytes(), 2*act, 7*act)
	}
	be := kernels.NewCPU()
	p2, err := Compile(b.m, be, map[string][]int{"x": {1, 2, 8, 8, 8}}, CompileOptions{Profile: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if _, err := p2.Run(context.Background(), map[string][]float32{"x": randN(rng, 1024)}); err != nil {
		t.Fatal(err)
	}
	// The backend also counts its convolution scratch (a padded copy of
	// the input): still well below the 7 activations.
	if s := be.Stats(); s.PeakInUse >= 4*act {
		t.Errorf("backend peak in use %d bytes, want below %d", s.PeakInUse, 4*act)
	}
	if prof := p2.Profile(); len(prof) != 6 || prof[0].Op != "Conv" || prof[0].Node != "conv_0" {
		t.Errorf("profile %+v", prof)
	}
}

func TestExecErrors(t *testing.T) {
	x := []int{1, 2, 4, 4, 4}
	for _, tc := range []struct {
		name    string
		build   func(b *builder)
		shapes  map[string][]int
		target  error
		mention string
	}{
		{"unknown op", func(b *builder) { b.node("Einsum", []string{"x"}, []string{"y"}) }, nil, ErrUnsupported, `node 0 "einsum_0" (Einsum)`},
		{"wrong input count", func(b *builder) {
			b.node("Relu", []string{"x"}, []string{"r"}).node("Add", []string{"r"}, []string{"y"})
		}, nil, ErrModel, `node 1 "add_1" (Add)`},
		{"add shapes", func(b *builder) {
			b.init("c", []int{3}, []float32{1, 2, 3}).node("Add", []string{"x", "c"}, []string{"y"})
		}, nil, ErrModel, `node 0 "add_0" (Add): triage: invalid ONNX model: shapes [1 2 4 4 4] and [3]`},
		{"concat shapes", func(b *builder) {
			b.init("c", []int{1, 2, 4, 4, 5}, make([]float32, 160)).node("Concat", []string{"x", "c"}, []string{"y"}, aInt("axis", 1))
		}, nil, ErrModel, `node 0 "concat_0" (Concat)`},
		{"conv channels", func(b *builder) {
			b.init("w", []int{1, 3, 1, 1, 1}, make([]float32, 3)).node("Conv", []string{"x", "w"}, []string{"y"})
		}, nil, ErrModel, `node 0 "conv_0" (Conv)`},
		{"conv group", func(b *builder) {
			b.init("w", []int{2, 1, 1, 1, 1}, make([]float32, 2)).node("Conv", []string{"x", "w"}, []string{"y"}, aInt("group", 2))
		}, nil, ErrUnsupported, "group 2"},
		{"bad attribute type", func(b *builder) {
			b.node("LeakyRelu", []string{"x"}, []string{"y"}, aInt("alpha", 1))
		}, nil, ErrModel, `attribute "alpha"`},
		{"missing input shape", func(b *builder) { b.node("Relu", []string{"x"}, []string{"y"}) }, map[string][]int{}, ErrInput, `no shape given for graph input "x"`},
		{"undefined input", func(b *builder) { b.node("Relu", []string{"nope"}, []string{"y"}) }, nil, ErrModel, `"nope"`},
		{"clip range", func(b *builder) {
			b.init("lo", nil, []float32{-1}).node("Clip", []string{"x", "lo"}, []string{"y"})
		}, nil, ErrUnsupported, "Clip to [-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(13).input("x", x...)
			tc.build(b)
			b.output("y")
			shapes := tc.shapes
			if shapes == nil {
				shapes = map[string][]int{"x": x}
			}
			p, err := Compile(b.m, kernels.CPU(), shapes, CompileOptions{})
			if err == nil {
				p.Close()
				t.Fatal("Compile succeeded")
			}
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q, want %v mentioning %q", err, tc.target, tc.mention)
			}
		})
	}
}

func TestExecRunInputErrors(t *testing.T) {
	m := newBuilder(13).input("x", 1, 2).node("Relu", []string{"x"}, []string{"y"}).output("y").m
	p, err := Compile(m, kernels.CPU(), map[string][]int{"x": {1, 2}}, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, in := range []map[string][]float32{{}, {"x": {1}}, {"z": {1, 2}}} {
		if _, err := p.Run(context.Background(), in); !errors.Is(err, ErrInput) {
			t.Errorf("Run(%v): %v, want ErrInput", in, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Run(ctx, map[string][]float32{"x": {1, 2}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled context: %v", err)
	}
}

func TestExecPad(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6} // [1,1,2,3]
	m := newBuilder(13).input("x", 1, 1, 2, 3).initInts("pads", 0, 0, 1, -1, 0, 0, 0, 1).
		init("v", nil, []float32{9}).
		node("Pad", []string{"x", "pads", "v"}, []string{"y"}).output("y").m
	p, out := compileRun(t, m, map[string][]int{"x": {1, 1, 2, 3}}, map[string][]float32{"x": x}, CompileOptions{})
	if s := p.OutputShapes()["y"]; fmt.Sprint(s) != "[1 1 3 3]" {
		t.Fatalf("shape %v, want [1 1 3 3]", s)
	}
	near(t, "y", out["y"], []float32{9, 9, 9, 2, 3, 9, 5, 6, 9}, 0, 0)
}

// Gemm with a constant C of shape [M,1] (broadcast over columns) and
// transA; Resize of a 3D volume to explicit sizes.
func TestExecGemmColumnBias(t *testing.T) {
	a := []float32{1, 2, 3, 4, 5, 6}           // A^T stored as [K=3, M=2]
	bm := []float32{1, 0, 2, 1, 0, 1, 1, 1, 1} // [K=3, N=3]
	m := newBuilder(13).input("a", 3, 2).init("b", []int{3, 3}, bm).init("c", []int{2, 1}, []float32{10, 20}).
		node("Gemm", []string{"a", "b", "c"}, []string{"y"}, aInt("transA", 1)).output("y").m
	_, out := compileRun(t, m, map[string][]int{"a": {3, 2}}, map[string][]float32{"a": a}, CompileOptions{})
	// A = [[1,3,5],[2,4,6]].
	want := []float32{1 + 3 + 5 + 10, 5 + 10, 2 + 3 + 5 + 10, 2 + 4 + 6 + 20, 6 + 20, 4 + 4 + 6 + 20}
	near(t, "y", out["y"], want, 1e-6, 0)
}

func TestExecResize3DNearestSizes(t *testing.T) {
	x := make([]float32, 2*2*2)
	for i := range x {
		x[i] = float32(i)
	}
	m := newBuilder(13).input("x", 1, 1, 2, 2, 2).initInts("sizes", 1, 1, 4, 2, 4).
		node("Resize", []string{"x", "", "", "sizes"}, []string{"y"}).output("y").m
	_, out := compileRun(t, m, map[string][]int{"x": {1, 1, 2, 2, 2}}, map[string][]float32{"x": x}, CompileOptions{})
	// half_pixel, round_prefer_floor: output i of 4 from 2 samples
	// (i+0.5)/2-0.5 = -0.25, 0.25, 0.75, 1.25 -> 0, 0, 1, 1.
	src := []int{0, 0, 1, 1}
	var want []float32
	for d := range 4 {
		for h := range 2 {
			for w := range 4 {
				want = append(want, x[(src[d]*2+h)*2+src[w]])
			}
		}
	}
	near(t, "y", out["y"], want, 0, 0)
}

// ReduceMean over the spatial axes (torch.mean(x, dim=(2, 3, 4))) runs as
// a global average pool, with axes as an attribute (opset 13) or a
// constant input (opset 18), keepdims or not; other axes are refused.
func TestExecReduceMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	x := randN(rng, 2*3*24)
	want := make([]float32, 6)
	for i := range want {
		s := 0.0
		for _, v := range x[i*24 : (i+1)*24] {
			s += float64(v)
		}
		want[i] = float32(s / 24)
	}
	shapes := map[string][]int{"x": {2, 3, 2, 3, 4}}
	in := map[string][]float32{"x": x}
	m := newBuilder(13).input("x", 2, 3, 2, 3, 4).
		node("ReduceMean", []string{"x"}, []string{"y"}, aInts("axes", 2, 3, -1), aInt("keepdims", 0)).output("y").m
	p, out := compileRun(t, m, shapes, in, CompileOptions{})
	near(t, "opset 13", out["y"], want, 1e-6, 1e-6)
	if got := p.OutputShapes()["y"]; !slices.Equal(got, []int{2, 3}) {
		t.Errorf("keepdims 0: shape %v, want [2 3]", got)
	}
	m = newBuilder(18).input("x", 2, 3, 2, 3, 4).initInts("axes", 4, 2, 3).
		node("ReduceMean", []string{"x", "axes"}, []string{"y"}).output("y").m
	p, out = compileRun(t, m, shapes, in, CompileOptions{})
	near(t, "opset 18", out["y"], want, 1e-6, 1e-6)
	if got := p.OutputShapes()["y"]; !slices.Equal(got, []int{2, 3, 1, 1, 1}) {
		t.Errorf("keepdims 1: shape %v, want [2 3 1 1 1]", got)
	}
	for _, axes := range [][]int64{{1, 2, 3, 4}, {2, 3}, {2, 2, 3}, {2, 3, 5}, nil} {
		m = newBuilder(13).input("x", 2, 3, 2, 3, 4).
			node("ReduceMean", []string{"x"}, []string{"y"}, aInts("axes", axes...)).output("y").m
		if _, err := Compile(m, kernels.CPU(), shapes, CompileOptions{}); !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrModel) {
			t.Errorf("axes %v: %v, want a refusal", axes, err)
		}
	}
}
