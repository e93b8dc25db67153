package triage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// The models in testdata/onnx are exported by PyTorch (make_models.py);
// each NAME.json sidecar says what NAME.onnx holds.
var onnxModels = []string{"seg3d_op13", "seg3d_op17", "classifier_op17"}

type sidecarDim struct {
	Value *int64  `json:"value"`
	Param *string `json:"param"`
}

type sidecarValue struct {
	Name     string       `json:"name"`
	ElemType int32        `json:"elem_type"`
	Shape    []sidecarDim `json:"shape"`
}

type sidecar struct {
	IRVersion    int64            `json:"ir_version"`
	ProducerName string           `json:"producer_name"`
	Opsets       map[string]int64 `json:"opsets"`
	Nodes        []string         `json:"nodes"`
	Initializers []struct {
		Name     string   `json:"name"`
		Dims     []int64  `json:"dims"`
		DataType int32    `json:"data_type"`
		Sum      *float64 `json:"sum"`
		First    *float64 `json:"first"`
	} `json:"initializers"`
	Inputs  []sidecarValue `json:"inputs"`
	Outputs []sidecarValue `json:"outputs"`
}

func TestReadModelPyTorch(t *testing.T) {
	for _, name := range onnxModels {
		t.Run(name, func(t *testing.T) {
			js, err := os.ReadFile(filepath.Join("testdata/onnx", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var want sidecar
			if err := json.Unmarshal(js, &want); err != nil {
				t.Fatal(err)
			}
			m, err := ReadModelFile(filepath.Join("testdata/onnx", name+".onnx"), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if m.IRVersion != want.IRVersion || m.ProducerName != want.ProducerName {
				t.Errorf("IR %d producer %q, want %d %q", m.IRVersion, m.ProducerName, want.IRVersion, want.ProducerName)
			}
			if !reflect.DeepEqual(m.Opsets, want.Opsets) {
				t.Errorf("opsets %v, want %v", m.Opsets, want.Opsets)
			}
			var ops []string
			for _, n := range m.Graph.Nodes {
				ops = append(ops, n.OpType)
			}
			if !reflect.DeepEqual(ops, want.Nodes) {
				t.Errorf("nodes %v, want %v", ops, want.Nodes)
			}
			if len(m.Graph.InitializerOrder) != len(want.Initializers) {
				t.Fatalf("%d initializers, want %d", len(m.Graph.InitializerOrder), len(want.Initializers))
			}
			for i, wi := range want.Initializers {
				name := m.Graph.InitializerOrder[i]
				ten := m.Graph.Initializers[name]
				if name != wi.Name || ten.Name != wi.Name || !reflect.DeepEqual(ten.Dims, wi.Dims) || int32(ten.DataType) != wi.DataType {
					t.Errorf("initializer %d: %q %v type %d, want %q %v type %d", i, name, ten.Dims, ten.DataType, wi.Name, wi.Dims, wi.DataType)
					continue
				}
				if int64(len(ten.Float)) != dimsProduct(wi.Dims) {
					t.Errorf("initializer %q: %d values for dims %v", name, len(ten.Float), wi.Dims)
					continue
				}
				if wi.Sum != nil {
					var sum float64
					for _, v := range ten.Float {
						sum += float64(v)
					}
					if math.Abs(sum-*wi.Sum) > 1e-4 || float64(ten.Float[0]) != *wi.First {
						t.Errorf("initializer %q: sum %g first %g, want %g %g", name, sum, ten.Float[0], *wi.Sum, *wi.First)
					}
				}
			}
			checkValues(t, "input", m.Graph.Inputs, want.Inputs)
			checkValues(t, "output", m.Graph.Outputs, want.Outputs)
		})
	}
}

func dimsProduct(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
}

func checkValues(t *testing.T, what string, got []ValueInfo, want []sidecarValue) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d %ss, want %d", len(got), what, len(want))
		return
	}
	for i, w := range want {
		g := got[i]
		var shape []Dim
		for _, d := range w.Shape {
			x := Dim{Value: -1}
			if d.Value != nil {
				x.Value = *d.Value
			}
			if d.Param != nil {
				x.Param = *d.Param
			}
			shape = append(shape, x)
		}
		if g.Name != w.Name || int32(g.ElemType) != w.ElemType || !reflect.DeepEqual(g.Shape, shape) {
			t.Errorf("%s %d: %+v, want %q type %d shape %+v", what, i, g, w.Name, w.ElemType, shape)
		}
	}
}

// The attributes PyTorch wrote, as onnx.proto spells them.
func TestReadModelPyTorchAttributes(t *testing.T) {
	m, err := ReadModelFile("testdata/onnx/seg3d_op13.onnx", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	conv := m.Graph.Nodes[0]
	if a := conv.Attrs["kernel_shape"]; a == nil || a.Type != AttrInts || !reflect.DeepEqual(a.Ints, []int64{3, 3, 3}) {
		t.Errorf("Conv kernel_shape %+v", a)
	}
	if a := conv.Attrs["pads"]; a == nil || !reflect.DeepEqual(a.Ints, []int64{1, 1, 1, 1, 1, 1}) {
		t.Errorf("Conv pads %+v", a)
	}
	if len(conv.Inputs) != 3 || conv.Inputs[0] != "x" || conv.Inputs[1] != "enc.weight" {
		t.Errorf("Conv inputs %q", conv.Inputs)
	}
	if a := m.Graph.Nodes[2].Attrs["alpha"]; a == nil || a.Type != AttrFloat || a.F != 0.1 {
		t.Errorf("LeakyRelu alpha %+v", a)
	}
	if a := m.Graph.Nodes[7].Attrs["axis"]; a == nil || a.Type != AttrInt || a.I != 1 {
		t.Errorf("Concat axis %+v", a)
	}
	last := m.Graph.Nodes[len(m.Graph.Nodes)-1]
	if len(last.Outputs) != 1 || last.Outputs[0] != "y" {
		t.Errorf("last node outputs %q", last.Outputs)
	}
}

// --- a protobuf builder for hand-made models ------------------------------

type pb []byte

func (p pb) varint(num protowire.Number, v int64) pb {
	p = protowire.AppendTag(p, num, protowire.VarintType)
	return protowire.AppendVarint(p, uint64(v))
}

func (p pb) bytes(num protowire.Number, b []byte) pb {
	p = protowire.AppendTag(p, num, protowire.BytesType)
	return protowire.AppendBytes(p, b)
}

func (p pb) str(num protowire.Number, s string) pb { return p.bytes(num, []byte(s)) }

func (p pb) fixed32(num protowire.Number, v uint32) pb {
	p = protowire.AppendTag(p, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(p, v)
}

func (p pb) fixed64(num protowire.Number, v uint64) pb {
	p = protowire.AppendTag(p, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(p, v)
}

func packedVarints(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = protowire.AppendVarint(b, uint64(v))
	}
	return b
}

func packedFloats(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// tensorPB starts a TensorProto with a name, type and packed dims.
func tensorPB(name string, dt DataType, dims ...int64) pb {
	return pb(nil).str(8, name).varint(2, int64(dt)).bytes(1, packedVarints(dims...))
}

func valueInfoPB(name string, dims ...int64) pb {
	var shape pb
	for _, d := range dims {
		shape = shape.bytes(1, pb(nil).varint(1, d))
	}
	tt := pb(nil).varint(1, int64(TypeFloat)).bytes(2, shape)
	return pb(nil).str(1, name).bytes(2, pb(nil).bytes(1, tt))
}

func nodePB(op, name string, inputs, outputs []string, attrs ...pb) pb {
	p := pb(nil).str(3, name).str(4, op)
	for _, in := range inputs {
		p = p.str(1, in)
	}
	for _, out := range outputs {
		p = p.str(2, out)
	}
	for _, a := range attrs {
		p = p.bytes(5, a)
	}
	return p
}

// modelPB wraps a graph into a ModelProto importing opset 13.
func modelPB(graph pb) pb {
	return modelOpset(graph, 13)
}

func modelOpset(graph pb, opset int64) pb {
	return pb(nil).varint(1, 8).str(2, "test").
		bytes(8, pb(nil).str(1, "").varint(2, opset)).
		bytes(7, graph)
}

// identityGraph is x -> Identity -> y plus the given initializers.
func identityGraph(inits ...pb) pb {
	g := pb(nil).str(2, "g").bytes(1, nodePB("Identity", "id", []string{"x"}, []string{"y"}))
	for _, t := range inits {
		g = g.bytes(5, t)
	}
	return g.bytes(11, valueInfoPB("x", 2)).bytes(12, valueInfoPB("y", 2))
}

func TestReadModelTensorEncodings(t *testing.T) {
	f16 := []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0x01, 0x00, 0x00, 0x7c, 0x00, 0x80}
	var dbl []byte
	for _, v := range []float64{1.5, -2.25} {
		dbl = binary.LittleEndian.AppendUint64(dbl, math.Float64bits(v))
	}
	var i64raw []byte
	for _, v := range []int64{-1, 1 << 40} {
		i64raw = binary.LittleEndian.AppendUint64(i64raw, uint64(v))
	}
	tests := []struct {
		name   string
		tensor pb
		dims   []int64
		floats []float32
		ints   []int64
	}{
		{"float raw", tensorPB("w", TypeFloat, 2, 1).bytes(9, packedFloats(1.5, -3)), []int64{2, 1}, []float32{1.5, -3}, nil},
		{"float packed", tensorPB("w", TypeFloat, 3).bytes(4, packedFloats(1, 2, 3)), []int64{3}, []float32{1, 2, 3}, nil},
		{"float unpacked", tensorPB("w", TypeFloat, 2).fixed32(4, math.Float32bits(4)).fixed32(4, math.Float32bits(-5)), []int64{2}, []float32{4, -5}, nil},
		{"float packed and unpacked", tensorPB("w", TypeFloat, 3).bytes(4, packedFloats(1, 2)).fixed32(4, math.Float32bits(3)), []int64{3}, []float32{1, 2, 3}, nil},
		{"scalar", pb(nil).str(8, "w").varint(2, int64(TypeFloat)).bytes(9, packedFloats(7)), []int64{}, []float32{7}, nil},
		{"empty", tensorPB("w", TypeFloat, 0, 3), []int64{0, 3}, []float32{}, nil},
		{"unpacked dims", pb(nil).str(8, "w").varint(2, int64(TypeFloat)).varint(1, 1).varint(1, 2).bytes(4, packedFloats(1, 2)), []int64{1, 2}, []float32{1, 2}, nil},
		{"float16 raw", tensorPB("w", TypeFloat16, 6).bytes(9, f16), []int64{6}, []float32{1, -2, 0.5, 1.0 / (1 << 24), float32(math.Inf(1)), float32(math.Copysign(0, -1))}, nil},
		{"float16 int32_data", tensorPB("w", TypeFloat16, 2).bytes(5, packedVarints(0x3c00, 0xc000)), []int64{2}, []float32{1, -2}, nil},
		{"double raw", tensorPB("w", TypeDouble, 2).bytes(9, dbl), []int64{2}, []float32{1.5, -2.25}, nil},
		{"double_data packed", tensorPB("w", TypeDouble, 2).bytes(10, dbl), []int64{2}, []float32{1.5, -2.25}, nil},
		{"double_data unpacked", tensorPB("w", TypeDouble, 1).fixed64(10, math.Float64bits(0.25)), []int64{1}, []float32{0.25}, nil},
		{"int8 int32_data", tensorPB("w", TypeInt8, 3).bytes(5, packedVarints(-128, 0, 127)), []int64{3}, nil, []int64{-128, 0, 127}},
		{"int8 int32_data unpacked", tensorPB("w", TypeInt8, 2).varint(5, -3).varint(5, 4), []int64{2}, nil, []int64{-3, 4}},
		{"int8 raw", tensorPB("w", TypeInt8, 2).bytes(9, []byte{0xff, 0x05}), []int64{2}, nil, []int64{-1, 5}},
		{"uint8 raw", tensorPB("w", TypeUint8, 2).bytes(9, []byte{0xff, 0x05}), []int64{2}, nil, []int64{255, 5}},
		{"bool int32_data", tensorPB("w", TypeBool, 3).bytes(5, packedVarints(1, 0, 1)), []int64{3}, nil, []int64{1, 0, 1}},
		{"bool raw", tensorPB("w", TypeBool, 2).bytes(9, []byte{0, 1}), []int64{2}, nil, []int64{0, 1}},
		{"int16 raw", tensorPB("w", TypeInt16, 2).bytes(9, []byte{0xfe, 0xff, 0x00, 0x01}), []int64{2}, nil, []int64{-2, 256}},
		{"uint16 int32_data", tensorPB("w", TypeUint16, 1).bytes(5, packedVarints(65535)), []int64{1}, nil, []int64{65535}},
		{"int32 raw", tensorPB("w", TypeInt32, 1).bytes(9, []byte{0xfd, 0xff, 0xff, 0xff}), []int64{1}, nil, []int64{-3}},
		{"int32 int32_data", tensorPB("w", TypeInt32, 2).bytes(5, packedVarints(math.MinInt32, math.MaxInt32)), []int64{2}, nil, []int64{math.MinInt32, math.MaxInt32}},
		{"int64 raw", tensorPB("w", TypeInt64, 2).bytes(9, i64raw), []int64{2}, nil, []int64{-1, 1 << 40}},
		{"int64_data packed", tensorPB("w", TypeInt64, 2).bytes(7, packedVarints(-7, 1<<50)), []int64{2}, nil, []int64{-7, 1 << 50}},
		{"int64_data unpacked", tensorPB("w", TypeInt64, 2).varint(7, -7).varint(7, 8), []int64{2}, nil, []int64{-7, 8}},
		{"uint32 uint64_data", tensorPB("w", TypeUint32, 1).bytes(11, packedVarints(math.MaxUint32)), []int64{1}, nil, []int64{math.MaxUint32}},
		{"uint32 raw", tensorPB("w", TypeUint32, 1).bytes(9, []byte{0xff, 0xff, 0xff, 0xff}), []int64{1}, nil, []int64{math.MaxUint32}},
		{"uint64 raw", tensorPB("w", TypeUint64, 1).bytes(9, []byte{1, 0, 0, 0, 0, 0, 0, 0}), []int64{1}, nil, []int64{1}},
		{"unknown fields skipped", tensorPB("w", TypeFloat, 1).str(12, "doc").varint(99, 5).fixed64(98, 1).bytes(9, packedFloats(2)), []int64{1}, []float32{2}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ReadModel(modelPB(identityGraph(tc.tensor)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			w := m.Graph.Initializers["w"]
			if w == nil || !reflect.DeepEqual(w.Dims, tc.dims) || !reflect.DeepEqual(w.Float, tc.floats) || !reflect.DeepEqual(w.Int64, tc.ints) {
				t.Errorf("got %+v, want dims %v floats %v ints %v", w, tc.dims, tc.floats, tc.ints)
			}
			if len(m.Graph.Inputs) != 1 || m.Graph.Inputs[0].Name != "x" {
				t.Errorf("inputs %+v", m.Graph.Inputs)
			}
		})
	}
}

func TestReadModelAttributes(t *testing.T) {
	attrs := []pb{
		pb(nil).str(1, "f").varint(20, int64(AttrFloat)).fixed32(2, math.Float32bits(0.5)),
		pb(nil).str(1, "i").varint(20, int64(AttrInt)).varint(3, -4),
		pb(nil).str(1, "s").varint(20, int64(AttrString)).str(4, "nearest"),
		pb(nil).str(1, "t").varint(20, int64(AttrTensor)).bytes(5, tensorPB("", TypeInt64, 2).bytes(7, packedVarints(1, 2))),
		pb(nil).str(1, "floats").varint(20, int64(AttrFloats)).bytes(7, packedFloats(1, 2)).fixed32(7, math.Float32bits(3)),
		pb(nil).str(1, "ints").varint(20, int64(AttrInts)).bytes(8, packedVarints(1, -1)).varint(8, 5),
		pb(nil).str(1, "strings").varint(20, int64(AttrStrings)).str(9, "a").str(9, "bc"),
		pb(nil).str(1, "empty").varint(20, int64(AttrInts)).str(13, "doc"),
	}
	g := pb(nil).bytes(1, nodePB("Custom", "n", []string{"x"}, []string{"y"}, attrs...)).
		bytes(11, valueInfoPB("x")).bytes(12, valueInfoPB("y"))
	m, err := ReadModel(modelPB(g), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := m.Graph.Nodes[0].Attrs
	want := map[string]*Attribute{
		"f":       {Name: "f", Type: AttrFloat, F: 0.5},
		"i":       {Name: "i", Type: AttrInt, I: -4},
		"s":       {Name: "s", Type: AttrString, S: []byte("nearest")},
		"t":       {Name: "t", Type: AttrTensor, T: &Tensor{DataType: TypeInt64, Dims: []int64{2}, Int64: []int64{1, 2}}},
		"floats":  {Name: "floats", Type: AttrFloats, Floats: []float32{1, 2, 3}},
		"ints":    {Name: "ints", Type: AttrInts, Ints: []int64{1, -1, 5}},
		"strings": {Name: "strings", Type: AttrStrings, Strings: [][]byte{[]byte("a"), []byte("bc")}},
		"empty":   {Name: "empty", Type: AttrInts},
	}
	for name, w := range want {
		if !reflect.DeepEqual(got[name], w) {
			t.Errorf("attribute %q: %+v, want %+v", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d attributes, want %d", len(got), len(want))
	}
	if s := m.Graph.Inputs[0].Shape; s == nil || len(s) != 0 {
		t.Errorf("scalar input shape %v, want empty and non-nil", s)
	}
}

func TestReadModelValueInfo(t *testing.T) {
	shape := pb(nil).bytes(1, pb(nil).str(2, "batch")).bytes(1, pb(nil).varint(1, 4)).bytes(1, pb(nil))
	tt := pb(nil).varint(1, int64(TypeFloat)).bytes(2, shape)
	x := pb(nil).str(1, "x").bytes(2, pb(nil).bytes(1, tt))
	noType := pb(nil).str(1, "y")
	g := pb(nil).bytes(1, nodePB("Identity", "", []string{"x"}, []string{"y"})).bytes(11, x).bytes(12, noType).
		bytes(13, valueInfoPB("y", 3))
	m, err := ReadModel(modelPB(g), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := ValueInfo{Name: "x", ElemType: TypeFloat, Shape: []Dim{{Value: -1, Param: "batch"}, {Value: 4}, {Value: -1}}}
	if !reflect.DeepEqual(m.Graph.Inputs[0], want) {
		t.Errorf("input %+v, want %+v", m.Graph.Inputs[0], want)
	}
	if y := m.Graph.Outputs[0]; y.Name != "y" || y.ElemType != 0 || y.Shape != nil {
		t.Errorf("output %+v, want no type", y)
	}
	if len(m.Graph.ValueInfo) != 1 || m.Graph.ValueInfo[0].Shape[0].Value != 3 {
		t.Errorf("value_info %+v", m.Graph.ValueInfo)
	}
}

func TestReadModelOpsets(t *testing.T) {
	g := identityGraph()
	for _, tc := range []struct {
		name string
		data pb
		want error
	}{
		{"opset 11", modelOpset(g, 11), nil},
		{"opset 18", modelOpset(g, 18), nil},
		{"opset 10", modelOpset(g, 10), ErrUnsupported},
		{"opset 19", modelOpset(g, 19), ErrUnsupported},
		{"ai.onnx", pb(nil).bytes(8, pb(nil).str(1, "ai.onnx").varint(2, 17)).bytes(7, g), nil},
		{"no default opset", pb(nil).bytes(8, pb(nil).str(1, "com.example").varint(2, 1)).bytes(7, g), ErrUnsupported},
		{"default opset twice", modelOpset(g, 13).bytes(8, pb(nil).str(1, "ai.onnx").varint(2, 13)), ErrModel},
		{"other domain recorded", modelOpset(g, 13).bytes(8, pb(nil).str(1, "com.example").varint(2, 1)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ReadModel(tc.data, Limits{})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err == nil && m.Opsets[""] == 0 {
				t.Errorf("opsets %v", m.Opsets)
			}
		})
	}
}

func TestReadModelNodeDomain(t *testing.T) {
	node := nodePB("Custom", "c", []string{"x"}, []string{"y"}).str(7, "com.example")
	g := pb(nil).bytes(1, node).bytes(11, valueInfoPB("x")).bytes(12, valueInfoPB("y"))
	if _, err := ReadModel(modelPB(g), Limits{}); !errors.Is(err, ErrModel) || !strings.Contains(err.Error(), "com.example") {
		t.Errorf("node of an unimported domain: %v", err)
	}
	m, err := ReadModel(modelPB(g).bytes(8, pb(nil).str(1, "com.example").varint(2, 1)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if d := m.Graph.Nodes[0].Domain; d != "com.example" || m.Opsets["com.example"] != 1 {
		t.Errorf("domain %q opsets %v", d, m.Opsets)
	}
	aionnx := nodePB("Relu", "r", []string{"x"}, []string{"y"}).str(7, "ai.onnx")
	m, err = ReadModel(modelPB(pb(nil).bytes(1, aionnx).bytes(11, valueInfoPB("x")).bytes(12, valueInfoPB("y"))), Limits{})
	if err != nil || m.Graph.Nodes[0].Domain != "" {
		t.Errorf("ai.onnx node: %v", err)
	}
}

// Every refusal names what it refuses and wraps the right sentinel.
func TestReadModelRefusals(t *testing.T) {
	x, y := valueInfoPB("x", 2), valueInfoPB("y", 2)
	withInit := func(tensor pb) pb { return modelPB(identityGraph(tensor)) }
	withAttr := func(a pb) pb {
		return modelPB(pb(nil).bytes(1, nodePB("Identity", "n", []string{"x"}, []string{"y"}, a)).bytes(11, x).bytes(12, y))
	}
	small := Limits{MaxTensorElems: 10, MaxTotalElems: 15, MaxNodes: 2, MaxRank: 3, MaxBytes: 1000}
	tests := []struct {
		name    string
		data    []byte
		lim     Limits
		want    error
		mention string
	}{
		{"empty file", nil, Limits{}, ErrModel, "no graph"},
		{"bad tag", []byte{0x80}, Limits{}, ErrModel, "ModelProto"},
		{"group end", []byte{0x0c}, Limits{}, ErrModel, "ModelProto"},
		{"truncated varint", pb(nil).varint(1, 1<<40)[:3], Limits{}, ErrModel, "ModelProto"},
		{"length past end", append(protowire.AppendTag(nil, 7, protowire.BytesType), 0xff, 0xff, 0xff, 0xff, 0x0f), Limits{}, ErrModel, "ModelProto"},
		{"wrong wire type ir_version", pb(nil).str(1, "8").bytes(7, identityGraph()), Limits{}, ErrModel, "wire type"},
		{"wrong wire type graph", pb(nil).varint(7, 1), Limits{}, ErrModel, "ModelProto"},
		{"wrong wire type float_data", withInit(tensorPB("w", TypeFloat, 1).varint(4, 1)), Limits{}, ErrModel, "TensorProto"},
		{"malformed packed varints", withInit(tensorPB("w", TypeInt64, 1).bytes(7, []byte{0x80})), Limits{}, ErrModel, "TensorProto"},
		{"packed floats not a multiple of 4", withInit(tensorPB("w", TypeFloat, 1).bytes(4, []byte{1, 2, 3})), Limits{}, ErrModel, "multiple of 4"},
		{"two graphs", modelPB(identityGraph()).bytes(7, identityGraph()), Limits{}, ErrModel, "more than one graph"},
		{"raw size mismatch", withInit(tensorPB("w", TypeFloat, 2, 2).bytes(9, packedFloats(1, 2, 3))), Limits{}, ErrModel, `"w"`},
		{"value count mismatch", withInit(tensorPB("w", TypeFloat, 2).bytes(4, packedFloats(1, 2, 3))), Limits{}, ErrModel, `"w"`},
		{"no values", withInit(tensorPB("w", TypeInt64, 2)), Limits{}, ErrModel, "0 values"},
		{"wrong typed field", withInit(tensorPB("w", TypeInt64, 1).bytes(4, packedFloats(1))), Limits{}, ErrModel, "float_data"},
		{"raw and typed", withInit(tensorPB("w", TypeFloat, 1).bytes(9, packedFloats(1)).bytes(4, packedFloats(1))), Limits{}, ErrModel, "raw_data"},
		{"int8 out of range", withInit(tensorPB("w", TypeInt8, 1).bytes(5, packedVarints(200))), Limits{}, ErrModel, "range"},
		{"bool raw 2", withInit(tensorPB("w", TypeBool, 1).bytes(9, []byte{2})), Limits{}, ErrModel, "bool"},
		{"negative dim", withInit(tensorPB("w", TypeFloat, 2, -1)), Limits{}, ErrModel, "negative"},
		{"no data type", withInit(pb(nil).str(8, "w").bytes(1, packedVarints(1)).bytes(4, packedFloats(1))), Limits{}, ErrModel, "data type"},
		{"unnamed initializer", withInit(tensorPB("", TypeFloat, 1).bytes(4, packedFloats(1))), Limits{}, ErrModel, "no name"},
		{"initializer twice", modelPB(identityGraph(tensorPB("w", TypeFloat, 1).bytes(4, packedFloats(1)), tensorPB("w", TypeFloat, 1).bytes(4, packedFloats(1)))), Limits{}, ErrModel, `"w"`},
		{"tensor over limit", withInit(tensorPB("w", TypeFloat, 11)), small, ErrLimit, "10"},
		{"dims overflow", withInit(tensorPB("w", TypeFloat, 1<<40, 1<<40, 1<<40)), Limits{}, ErrLimit, `"w"`},
		{"values over limit", withInit(tensorPB("w", TypeFloat, 1).bytes(4, packedFloats(make([]float32, 11)...))), small, ErrLimit, "10"},
		{"total over limit", modelPB(identityGraph(tensorPB("a", TypeFloat, 8).bytes(4, packedFloats(make([]float32, 8)...)), tensorPB("b", TypeFloat, 8).bytes(4, packedFloats(make([]float32, 8)...)))), small, ErrLimit, "15"},
		{"rank over limit", withInit(tensorPB("w", TypeFloat, 1, 1, 1, 1)), small, ErrLimit, "rank"},
		{"shape rank over limit", modelPB(pb(nil).bytes(1, nodePB("Identity", "", []string{"x"}, []string{"y"})).bytes(11, valueInfoPB("x", 1, 1, 1, 1)).bytes(12, y)), small, ErrLimit, "rank"},
		{"negative shape dim", modelPB(pb(nil).bytes(1, nodePB("Identity", "", []string{"x"}, []string{"y"})).bytes(11, valueInfoPB("x", -2)).bytes(12, y)), Limits{}, ErrModel, `"x"`},
		{"too many nodes", modelPB(identityGraph().bytes(1, nodePB("Identity", "", []string{"y"}, []string{"z"})).bytes(1, nodePB("Identity", "", []string{"z"}, []string{"u"}))), small, ErrLimit, "nodes"},
		{"file over limit", append(modelPB(identityGraph()), make([]byte, 1000)...), small, ErrLimit, "bytes"},
		{"external data location", withInit(tensorPB("w", TypeFloat, 1).varint(14, 1)), Limits{}, ErrUnsupported, "external"},
		{"external data entries", withInit(tensorPB("w", TypeFloat, 1).bytes(13, pb(nil).str(1, "location").str(2, "w.bin"))), Limits{}, ErrUnsupported, "external"},
		{"string tensor", withInit(tensorPB("w", TypeString, 1).str(6, "a")), Limits{}, ErrUnsupported, "string"},
		{"complex tensor", withInit(tensorPB("w", 14, 1).bytes(4, packedFloats(1, 2))), Limits{}, ErrUnsupported, "data type 14"},
		{"segment", withInit(tensorPB("w", TypeFloat, 1).bytes(3, nil)), Limits{}, ErrUnsupported, "segment"},
		{"sparse initializer", modelPB(identityGraph().bytes(15, nil)), Limits{}, ErrUnsupported, "sparse"},
		{"training_info", modelPB(identityGraph()).bytes(20, nil), Limits{}, ErrUnsupported, "training_info"},
		{"functions", modelPB(identityGraph()).bytes(25, nil), Limits{}, ErrUnsupported, "functions"},
		{"graph attribute", withAttr(pb(nil).str(1, "body").varint(20, 5).bytes(6, identityGraph())), Limits{}, ErrUnsupported, `"body"`},
		{"graphs attribute", withAttr(pb(nil).str(1, "branches").varint(20, 10).bytes(11, nil)), Limits{}, ErrUnsupported, `"branches"`},
		{"attribute without type", withAttr(pb(nil).str(1, "a").varint(3, 1)), Limits{}, ErrModel, `"a"`},
		{"tensor attribute without tensor", withAttr(pb(nil).str(1, "value").varint(20, int64(AttrTensor))), Limits{}, ErrModel, `"value"`},
		{"non-tensor value", modelPB(pb(nil).bytes(1, nodePB("Identity", "", []string{"x"}, []string{"y"})).bytes(11, pb(nil).str(1, "x").bytes(2, pb(nil).bytes(4, nil))).bytes(12, y)), Limits{}, ErrUnsupported, `"x"`},
		{"missing node input", modelPB(pb(nil).bytes(1, nodePB("Add", "add1", []string{"x", "nope"}, []string{"y"})).bytes(11, x).bytes(12, y)), Limits{}, ErrModel, `"add1" (Add): input "nope"`},
		{"input defined later", modelPB(pb(nil).bytes(1, nodePB("Relu", "r1", []string{"z"}, []string{"y"})).bytes(1, nodePB("Relu", "r2", []string{"x"}, []string{"z"})).bytes(11, x).bytes(12, y)), Limits{}, ErrModel, `"r1"`},
		{"duplicate output", modelPB(pb(nil).bytes(1, nodePB("Relu", "r1", []string{"x"}, []string{"y"})).bytes(1, nodePB("Relu", "r2", []string{"x"}, []string{"y"})).bytes(11, x).bytes(12, y)), Limits{}, ErrModel, `"r2" (Relu): output "y"`},
		{"output shadows input", modelPB(pb(nil).bytes(1, nodePB("Relu", "r1", []string{"x"}, []string{"x"})).bytes(11, x).bytes(12, x)), Limits{}, ErrModel, `output "x"`},
		{"graph output not produced", modelPB(pb(nil).bytes(1, nodePB("Relu", "r1", []string{"x"}, []string{"z"})).bytes(11, x).bytes(12, y)), Limits{}, ErrModel, `"y"`},
		{"no graph outputs", modelPB(pb(nil).bytes(1, nodePB("Relu", "r1", []string{"x"}, []string{"z"})).bytes(11, x)), Limits{}, ErrModel, "no outputs"},
		{"no op_type", modelPB(pb(nil).bytes(1, pb(nil).str(3, "anon").str(1, "x").str(2, "y")).bytes(11, x).bytes(12, y)), Limits{}, ErrModel, `"anon"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ReadModel(tc.data, tc.lim)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v (model %v), want %v", err, m != nil, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if m != nil {
				t.Error("a model came back with the error")
			}
		})
	}
}

func TestReadModelAttributeTwice(t *testing.T) {
	a := pb(nil).str(1, "a").varint(20, int64(AttrInt)).varint(3, 1)
	g := pb(nil).bytes(1, nodePB("Identity", "n", []string{"x"}, []string{"y"}, a, a)).
		bytes(11, valueInfoPB("x")).bytes(12, valueInfoPB("y"))
	_, err := ReadModel(modelPB(g), Limits{})
	if !errors.Is(err, ErrModel) || !strings.Contains(err.Error(), `attribute "a" appears twice`) {
		t.Errorf("got %v", err)
	}
}

// Every proper prefix of a real model is refused cleanly: no panic and no
// model. (A prefix that ends on a field boundary may still parse as a
// valid, smaller protobuf message; the graph checks catch it.)
func TestReadModelTruncated(t *testing.T) {
	for _, name := range onnxModels {
		data, err := os.ReadFile(filepath.Join("testdata/onnx", name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(data); n++ {
			m, err := ReadModel(data[:n], Limits{})
			if err == nil {
				t.Fatalf("%s: prefix of %d of %d bytes: no error (%d nodes)", name, n, len(data), len(m.Graph.Nodes))
			}
			if !errors.Is(err, ErrModel) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("%s: prefix of %d bytes: %v, want ErrModel", name, n, err)
			}
		}
	}
}

func TestReadModelFile(t *testing.T) {
	name := "testdata/onnx/classifier_op17.onnx"
	if _, err := ReadModelFile(name, Limits{MaxBytes: 100}); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), name) {
		t.Errorf("over MaxBytes: %v", err)
	}
	if _, err := ReadModelFile(filepath.Join(t.TempDir(), "missing.onnx"), Limits{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.onnx")
	if err := os.WriteFile(bad, []byte{0xff}, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadModelFile(bad, Limits{}); !errors.Is(err, ErrModel) || !strings.Contains(err.Error(), "bad.onnx") {
		t.Errorf("bad file: %v", err)
	}
}

func TestHalfToFloat(t *testing.T) {
	// Every finite half converts to the float32 whose nearest half it is.
	for h := 0; h < 1<<16; h++ {
		f := halfToFloat(uint16(h))
		exp := (h >> 10) & 0x1f
		if exp == 0x1f {
			if (h&0x3ff == 0) != math.IsInf(float64(f), 0) || (h&0x3ff != 0) != math.IsNaN(float64(f)) {
				t.Fatalf("half %#04x: %v", h, f)
			}
			continue
		}
		mant := float64(h & 0x3ff)
		var want float64
		if exp == 0 {
			want = mant * math.Pow(2, -24)
		} else {
			want = (1 + mant/1024) * math.Pow(2, float64(exp-15))
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if float64(f) != want || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("half %#04x: %v, want %v", h, f, want)
		}
	}
}

func FuzzReadModel(f *testing.F) {
	for _, name := range onnxModels {
		data, err := os.ReadFile(filepath.Join("testdata/onnx", name+".onnx"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(data))
	}
	f.Add([]byte(modelPB(identityGraph(tensorPB("w", TypeFloat16, 2).bytes(9, []byte{0, 0x3c, 0, 0xc0})))))
	f.Add([]byte(modelPB(identityGraph(tensorPB("w", TypeInt8, 2).bytes(5, packedVarints(-1, 1))))))
	f.Add([]byte(modelPB(pb(nil).bytes(1, nodePB("Identity", "n", []string{"x"}, []string{"y"},
		pb(nil).str(1, "ints").varint(20, int64(AttrInts)).bytes(8, packedVarints(1, 2)),
		pb(nil).str(1, "t").varint(20, int64(AttrTensor)).bytes(5, tensorPB("", TypeDouble, 1).fixed64(10, 1)))).
		bytes(11, valueInfoPB("x", 1)).bytes(12, valueInfoPB("y", 1)))))
	lim := Limits{MaxBytes: 1 << 20, MaxNodes: 1000, MaxTensorElems: 1 << 16, MaxTotalElems: 1 << 18, MaxRank: 8}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadModel(data, lim)
		if err != nil {
			if m != nil {
				t.Fatal("a model with an error")
			}
			if !errors.Is(err, ErrModel) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrLimit) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		var total int64
		for _, name := range m.Graph.InitializerOrder {
			ten := m.Graph.Initializers[name]
			n := dimsProduct(ten.Dims)
			if int64(len(ten.Float)+len(ten.Int64)) != n || (ten.Float != nil) == (ten.Int64 != nil) {
				t.Fatalf("tensor %q: dims %v, %d floats, %d ints", name, ten.Dims, len(ten.Float), len(ten.Int64))
			}
			total += n
		}
		if total > lim.MaxTotalElems || len(m.Graph.Nodes) > lim.MaxNodes {
			t.Fatalf("limits passed: %d elements, %d nodes", total, len(m.Graph.Nodes))
		}
	})
}

// MaxItems bounds the names, attributes and value infos of a model, which
// cost far more in memory than in the file.
func TestReadModelMaxItems(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "onnx", "seg3d_op13.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadModel(data, Limits{}); err != nil {
		t.Fatalf("default limits: %v", err)
	}
	_, err = ReadModel(data, Limits{MaxItems: 10})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "more than 10 names") {
		t.Fatalf("MaxItems 10: %v, want ErrLimit", err)
	}
}
