package triage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// ReadModelFile reads and decodes the ONNX model in the named file (see
// ReadModel). A file larger than lim.MaxBytes is refused before it is read.
func ReadModelFile(name string, lim Limits) (*Model, error) {
	lim = lim.withDefaults()
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("triage: reading ONNX model: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > lim.MaxBytes {
		return nil, errorf(ErrLimit, "%s: %d bytes, more than the limit of %d", name, st.Size(), lim.MaxBytes)
	}
	// The limit holds even if the file grows while it is read.
	data, err := io.ReadAll(io.LimitReader(f, lim.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("triage: reading ONNX model %s: %w", name, err)
	}
	m, err := ReadModel(data, lim)
	if err != nil {
		return nil, within(err, "%s", name)
	}
	return m, nil
}

// ReadModel decodes an ONNX ModelProto (the bytes of a .onnx file) and
// checks it: the default-domain opset is 11 to 18; every tensor holds
// product(dims) values of a supported type within lim; every node input
// names a graph input, an initializer, an earlier node's output or is
// empty; node outputs are unique; every graph output is produced. Node
// domains "ai.onnx" are recorded as "" like the default opset; whether an
// operator is supported is left to the executor.
//
// Tensor values are converted as Tensor documents. External data, sparse
// tensors, string tensors, training information, model-local functions and
// graph-valued attributes are refused with ErrUnsupported. Malformed input
// yields ErrModel, input beyond lim ErrLimit (lim's zero fields take the
// DefaultLimits values). ReadModel never panics on bad input.
func ReadModel(data []byte, lim Limits) (*Model, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxBytes {
		return nil, errorf(ErrLimit, "model of %d bytes, more than the limit of %d", len(data), lim.MaxBytes)
	}
	r := &reader{lim: lim}
	m, err := r.model(data)
	if err != nil {
		return nil, err
	}
	if err := checkOpsets(m); err != nil {
		return nil, err
	}
	if err := checkGraph(m); err != nil {
		return nil, err
	}
	return m, nil
}

// withDefaults replaces zero fields by DefaultLimits' values.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = d.MaxNodes
	}
	if l.MaxTensorElems <= 0 {
		l.MaxTensorElems = d.MaxTensorElems
	}
	if l.MaxTotalElems <= 0 {
		l.MaxTotalElems = d.MaxTotalElems
	}
	if l.MaxRank <= 0 {
		l.MaxRank = d.MaxRank
	}
	if l.MaxItems <= 0 {
		l.MaxItems = d.MaxItems
	}
	return l
}

// The ONNX opsets radtriage runs in the default domain.
const (
	minOpset = 11
	maxOpset = 18
)

// reader holds the state of one ReadModel call.
type reader struct {
	lim        Limits
	totalElems int64 // elements of all tensors decoded so far
	items      int   // names, attributes and value infos decoded so far
}

// item counts one small decoded thing (a node input or output name, an
// attribute, a string value, a value info) against Limits.MaxItems: each
// costs tens of bytes in memory for a few in the file, so without a bound
// a file of MaxBytes could expand many times over.
func (r *reader) item(what string) error {
	r.items++
	if r.items > r.lim.MaxItems {
		return errorf(ErrLimit, "more than %d names, attributes and value infos (at a %s)", r.lim.MaxItems, what)
	}
	return nil
}

// field is one decoded protobuf field: v holds a varint, fixed32 or fixed64
// value, b a length-delimited one.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// eachField calls fn for every field of the message msg (named in errors)
// encoded in b. Groups are skipped.
func eachField(msg string, b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errorf(ErrModel, "%s: bad field tag: %v", msg, protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errorf(ErrModel, "%s: field %d: %v", msg, num, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.StartGroupType {
			continue
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// want checks the wire type of a known field.
func (f field) want(msg string, typ protowire.Type) error {
	if f.typ != typ {
		return errorf(ErrModel, "%s: field %d has wire type %d, want %d", msg, f.num, f.typ, typ)
	}
	return nil
}

func (f field) str(msg string) (string, error) {
	if err := f.want(msg, protowire.BytesType); err != nil {
		return "", err
	}
	return string(f.b), nil
}

func (f field) varint(msg string) (int64, error) {
	if err := f.want(msg, protowire.VarintType); err != nil {
		return 0, err
	}
	return int64(f.v), nil
}

// repeatedVarints calls add for each value of a repeated varint field,
// packed or not.
func (f field) repeatedVarints(msg string, add func(v uint64) error) error {
	switch f.typ {
	case protowire.VarintType:
		return add(f.v)
	case protowire.BytesType:
		b := f.b
		for len(b) > 0 {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errorf(ErrModel, "%s: packed field %d: %v", msg, f.num, protowire.ParseError(n))
			}
			b = b[n:]
			if err := add(v); err != nil {
				return err
			}
		}
		return nil
	}
	return errorf(ErrModel, "%s: field %d has wire type %d, want a varint or packed varints", msg, f.num, f.typ)
}

// repeatedFixed calls add for each value of a repeated fixed-width field
// (width 4 or 8), packed or not.
func (f field) repeatedFixed(msg string, width int, add func(v uint64) error) error {
	scalar := protowire.Fixed32Type
	if width == 8 {
		scalar = protowire.Fixed64Type
	}
	switch f.typ {
	case scalar:
		return add(f.v)
	case protowire.BytesType:
		if len(f.b)%width != 0 {
			return errorf(ErrModel, "%s: packed field %d of %d bytes, not a multiple of %d", msg, f.num, len(f.b), width)
		}
		for b := f.b; len(b) > 0; b = b[width:] {
			var v uint64
			if width == 4 {
				v = uint64(binary.LittleEndian.Uint32(b))
			} else {
				v = binary.LittleEndian.Uint64(b)
			}
			if err := add(v); err != nil {
				return err
			}
		}
		return nil
	}
	return errorf(ErrModel, "%s: field %d has wire type %d, want fixed%d or packed", msg, f.num, f.typ, width*8)
}

func (r *reader) model(data []byte) (*Model, error) {
	const msg = "ModelProto"
	m := &Model{Opsets: map[string]int64{}, Metadata: map[string]string{}}
	err := eachField(msg, data, func(f field) error {
		var err error
		switch f.num {
		case 1:
			m.IRVersion, err = f.varint(msg)
		case 2:
			m.ProducerName, err = f.str(msg)
		case 3:
			m.ProducerVersion, err = f.str(msg)
		case 7:
			if err = f.want(msg, protowire.BytesType); err != nil {
				return err
			}
			if m.Graph != nil {
				return errorf(ErrModel, "%s: more than one graph", msg)
			}
			m.Graph, err = r.graph(f.b)
		case 8:
			if err = f.want(msg, protowire.BytesType); err != nil {
				return err
			}
			err = opset(m, f.b)
		case 14:
			if err = f.want(msg, protowire.BytesType); err != nil {
				return err
			}
			var k, v string
			k, v, err = stringEntry(f.b)
			m.Metadata[k] = v
		case 20:
			return errorf(ErrUnsupported, "training_info")
		case 25:
			return errorf(ErrUnsupported, "model-local functions")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if m.Graph == nil {
		return nil, errorf(ErrModel, "%s has no graph", msg)
	}
	return m, nil
}

// normDomain maps the default domain's two names to "".
func normDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}

func opset(m *Model, b []byte) error {
	const msg = "OperatorSetIdProto"
	var domain string
	var version int64
	err := eachField(msg, b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			domain, err = f.str(msg)
		case 2:
			version, err = f.varint(msg)
		}
		return err
	})
	if err != nil {
		return err
	}
	domain = normDomain(domain)
	if _, dup := m.Opsets[domain]; dup {
		return errorf(ErrModel, "opset domain %q imported twice", domain)
	}
	m.Opsets[domain] = version
	return nil
}

func stringEntry(b []byte) (k, v string, err error) {
	const msg = "StringStringEntryProto"
	err = eachField(msg, b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			k, err = f.str(msg)
		case 2:
			v, err = f.str(msg)
		}
		return err
	})
	return k, v, err
}

func (r *reader) graph(b []byte) (*Graph, error) {
	const msg = "GraphProto"
	g := &Graph{Initializers: map[string]*Tensor{}}
	var inputs []ValueInfo
	err := eachField(msg, b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			if err = f.want(msg, protowire.BytesType); err != nil {
				return err
			}
			if len(g.Nodes) >= r.lim.MaxNodes {
				return errorf(ErrLimit, "more than %d nodes", r.lim.MaxNodes)
			}
			var n *Node
			if n, err = r.node(f.b); err == nil {
				g.Nodes = append(g.Nodes, n)
			}
		case 2:
			g.Name, err = f.str(msg)
		case 5:
			if err = f.want(msg, protowire.BytesType); err != nil {
				return err
			}
			var t *Tensor
			if t, err = r.tensor(f.b); err != nil {
				return err
			}
			if t.Name == "" {
				return errorf(ErrModel, "an initializer has no name")
			}
			if _, dup := g.Initializers[t.Name]; dup {
				return errorf(ErrModel, "initializer %q appears twice", t.Name)
			}
			g.Initializers[t.Name] = t
			g.InitializerOrder = append(g.InitializerOrder, t.Name)
		case 11, 12, 13:
			if err = f.want(msg, protowire.BytesType); err != nil {
				return err
			}
			var vi ValueInfo
			if err = r.item("value info"); err != nil {
				return err
			}
			if vi, err = r.valueInfo(f.b); err != nil {
				return err
			}
			switch f.num {
			case 11:
				inputs = append(inputs, vi)
			case 12:
				g.Outputs = append(g.Outputs, vi)
			default:
				g.ValueInfo = append(g.ValueInfo, vi)
			}
		case 15:
			return errorf(ErrUnsupported, "sparse initializers")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, in := range inputs {
		if _, ok := g.Initializers[in.Name]; !ok {
			g.Inputs = append(g.Inputs, in)
		}
	}
	return g, nil
}

func (r *reader) node(b []byte) (*Node, error) {
	const msg = "NodeProto"
	n := &Node{Attrs: map[string]*Attribute{}}
	err := eachField(msg, b, func(f field) error {
		var err error
		var s string
		switch f.num {
		case 1:
			if s, err = f.str(msg); err == nil {
				n.Inputs = append(n.Inputs, s)
				err = r.item("node input")
			}
		case 2:
			if s, err = f.str(msg); err == nil {
				n.Outputs = append(n.Outputs, s)
				err = r.item("node output")
			}
		case 3:
			n.Name, err = f.str(msg)
		case 4:
			n.OpType, err = f.str(msg)
		case 7:
			if s, err = f.str(msg); err == nil {
				n.Domain = normDomain(s)
			}
		case 5:
			if err = f.want(msg, protowire.BytesType); err != nil {
				return err
			}
			var a *Attribute
			if err = r.item("attribute"); err != nil {
				return err
			}
			if a, err = r.attribute(f.b); err == nil {
				if _, dup := n.Attrs[a.Name]; dup {
					err = errorf(ErrModel, "attribute %q appears twice", a.Name)
				}
				n.Attrs[a.Name] = a
			}
		}
		return err
	})
	if err != nil {
		return nil, within(err, "node %q (%s)", n.Name, n.OpType)
	}
	if n.OpType == "" {
		return nil, errorf(ErrModel, "node %q has no op_type", n.Name)
	}
	return n, nil
}

func (r *reader) attribute(b []byte) (*Attribute, error) {
	const msg = "AttributeProto"
	a := &Attribute{}
	var hasT bool
	err := eachField(msg, b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			a.Name, err = f.str(msg)
		case 2:
			if err = f.want(msg, protowire.Fixed32Type); err == nil {
				a.F = math.Float32frombits(uint32(f.v))
			}
		case 3:
			a.I, err = f.varint(msg)
		case 4:
			if err = f.want(msg, protowire.BytesType); err == nil {
				a.S = append([]byte(nil), f.b...)
			}
		case 5:
			if err = f.want(msg, protowire.BytesType); err == nil {
				a.T, err = r.tensor(f.b)
				hasT = true
			}
		case 6, 11:
			return errorf(ErrUnsupported, "graph-valued attribute %q", a.Name)
		case 10:
			return errorf(ErrUnsupported, "tensor-list attribute %q", a.Name)
		case 22, 23:
			return errorf(ErrUnsupported, "sparse-tensor attribute %q", a.Name)
		case 21:
			return errorf(ErrUnsupported, "attribute %q refers to a function attribute", a.Name)
		case 7:
			err = f.repeatedFixed(msg, 4, func(v uint64) error {
				a.Floats = append(a.Floats, math.Float32frombits(uint32(v)))
				return nil
			})
		case 8:
			err = f.repeatedVarints(msg, func(v uint64) error {
				a.Ints = append(a.Ints, int64(v))
				return nil
			})
		case 9:
			if err = f.want(msg, protowire.BytesType); err == nil {
				a.Strings = append(a.Strings, append([]byte(nil), f.b...))
				if err := r.item("string"); err != nil {
					return err
				}
			}
		case 20:
			var t int64
			if t, err = f.varint(msg); err == nil {
				a.Type = AttrType(t)
				if int64(a.Type) != t {
					a.Type = -1
				}
			}
		}
		return err
	})
	if err != nil {
		if a.Name != "" {
			return nil, within(err, "attribute %q", a.Name)
		}
		return nil, err
	}
	switch a.Type {
	case AttrFloat, AttrInt, AttrString, AttrFloats, AttrInts, AttrStrings:
	case AttrTensor:
		if !hasT {
			return nil, errorf(ErrModel, "tensor attribute %q has no tensor", a.Name)
		}
	case 0:
		return nil, errorf(ErrModel, "attribute %q has no type", a.Name)
	default:
		return nil, errorf(ErrUnsupported, "attribute %q of type %d", a.Name, a.Type)
	}
	if a.Name == "" {
		return nil, errorf(ErrModel, "an attribute has no name")
	}
	return a, nil
}

func (r *reader) valueInfo(b []byte) (ValueInfo, error) {
	const msg = "ValueInfoProto"
	var vi ValueInfo
	err := eachField(msg, b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			vi.Name, err = f.str(msg)
		case 2:
			if err = f.want(msg, protowire.BytesType); err == nil {
				err = r.typeProto(&vi, f.b)
			}
		}
		return err
	})
	if err != nil {
		return ValueInfo{}, within(err, "value %q", vi.Name)
	}
	return vi, nil
}

// typeProto decodes a TypeProto into vi; non-tensor types are refused.
func (r *reader) typeProto(vi *ValueInfo, b []byte) error {
	const msg = "TypeProto"
	return eachField(msg, b, func(f field) error {
		switch f.num {
		case 1:
			if err := f.want(msg, protowire.BytesType); err != nil {
				return err
			}
			return r.tensorType(vi, f.b)
		case 4, 5, 8, 9:
			return errorf(ErrUnsupported, "value %q is not a tensor (TypeProto field %d)", vi.Name, f.num)
		}
		return nil
	})
}

func (r *reader) tensorType(vi *ValueInfo, b []byte) error {
	const msg = "TypeProto.Tensor"
	return eachField(msg, b, func(f field) error {
		switch f.num {
		case 1:
			t, err := f.varint(msg)
			if err != nil {
				return err
			}
			vi.ElemType = DataType(t)
			if int64(vi.ElemType) != t {
				return errorf(ErrModel, "value %q has element type %d", vi.Name, t)
			}
		case 2:
			if err := f.want(msg, protowire.BytesType); err != nil {
				return err
			}
			return r.shape(vi, f.b)
		}
		return nil
	})
}

func (r *reader) shape(vi *ValueInfo, b []byte) error {
	const msg = "TensorShapeProto"
	vi.Shape = []Dim{}
	return eachField(msg, b, func(f field) error {
		if f.num != 1 {
			return nil
		}
		if err := f.want(msg, protowire.BytesType); err != nil {
			return err
		}
		if len(vi.Shape) >= r.lim.MaxRank {
			return errorf(ErrLimit, "value %q has rank above %d", vi.Name, r.lim.MaxRank)
		}
		d := Dim{Value: -1}
		const dmsg = "TensorShapeProto.Dimension"
		err := eachField(dmsg, f.b, func(f field) error {
			var err error
			switch f.num {
			case 1:
				if d.Value, err = f.varint(dmsg); err == nil && d.Value < 0 {
					err = errorf(ErrModel, "value %q has dimension %d", vi.Name, d.Value)
				}
			case 2:
				d.Param, err = f.str(dmsg)
			}
			return err
		})
		vi.Shape = append(vi.Shape, d)
		return err
	})
}

// tensorData gathers a TensorProto's fields before they are checked.
type tensorData struct {
	dims     []int64
	dataType int64
	external bool
	raw      []byte
	hasRaw   bool
	floats   []float32 // float_data
	int32s   []int32   // int32_data
	int64s   []int64   // int64_data
	doubles  []float64 // double_data
	uint64s  []uint64  // uint64_data
	strings  bool      // string_data present
}

// typed reports which typed fields hold values, by name.
func (d *tensorData) typed() []string {
	var s []string
	if len(d.floats) > 0 {
		s = append(s, "float_data")
	}
	if len(d.int32s) > 0 {
		s = append(s, "int32_data")
	}
	if len(d.int64s) > 0 {
		s = append(s, "int64_data")
	}
	if len(d.doubles) > 0 {
		s = append(s, "double_data")
	}
	if len(d.uint64s) > 0 {
		s = append(s, "uint64_data")
	}
	return s
}

func (r *reader) tensor(b []byte) (*Tensor, error) {
	const msg = "TensorProto"
	t := &Tensor{}
	var d tensorData
	var count int64 // values in the typed fields, against the limit
	more := func() error {
		count++
		if count > r.lim.MaxTensorElems {
			return errorf(ErrLimit, "more than %d values", r.lim.MaxTensorElems)
		}
		return nil
	}
	err := eachField(msg, b, func(f field) error {
		var err error
		switch f.num {
		case 1:
			err = f.repeatedVarints(msg, func(v uint64) error {
				if len(d.dims) >= r.lim.MaxRank {
					return errorf(ErrLimit, "rank above %d", r.lim.MaxRank)
				}
				d.dims = append(d.dims, int64(v))
				return nil
			})
		case 2:
			d.dataType, err = f.varint(msg)
		case 3:
			return errorf(ErrUnsupported, "segmented tensor %q", t.Name)
		case 4:
			err = f.repeatedFixed(msg, 4, func(v uint64) error {
				d.floats = append(d.floats, math.Float32frombits(uint32(v)))
				return more()
			})
		case 5:
			err = f.repeatedVarints(msg, func(v uint64) error {
				d.int32s = append(d.int32s, int32(v))
				return more()
			})
		case 6:
			d.strings = true
		case 7:
			err = f.repeatedVarints(msg, func(v uint64) error {
				d.int64s = append(d.int64s, int64(v))
				return more()
			})
		case 8:
			t.Name, err = f.str(msg)
		case 9:
			if err = f.want(msg, protowire.BytesType); err == nil {
				d.raw, d.hasRaw = f.b, true
			}
		case 10:
			err = f.repeatedFixed(msg, 8, func(v uint64) error {
				d.doubles = append(d.doubles, math.Float64frombits(v))
				return more()
			})
		case 11:
			err = f.repeatedVarints(msg, func(v uint64) error {
				d.uint64s = append(d.uint64s, v)
				return more()
			})
		case 13:
			d.external = true
		case 14:
			var loc int64
			if loc, err = f.varint(msg); err == nil && loc != 0 {
				d.external = true
			}
		}
		return err
	})
	if err != nil {
		if t.Name != "" {
			return nil, within(err, "tensor %q", t.Name)
		}
		return nil, err
	}
	if err := r.convert(t, &d); err != nil {
		return nil, within(err, "tensor %q", t.Name)
	}
	return t, nil
}

// elemWidth is the raw_data width of each supported type.
var elemWidth = map[DataType]int{
	TypeFloat: 4, TypeUint8: 1, TypeInt8: 1, TypeUint16: 2, TypeInt16: 2,
	TypeInt32: 4, TypeInt64: 8, TypeBool: 1, TypeFloat16: 2, TypeDouble: 8,
	TypeUint32: 4, TypeUint64: 8,
}

// convert checks d and fills t's type, dims and values.
func (r *reader) convert(t *Tensor, d *tensorData) error {
	if d.external {
		return errorf(ErrUnsupported, "external data")
	}
	dt := DataType(d.dataType)
	width, ok := elemWidth[dt]
	switch {
	case ok && int64(dt) == d.dataType:
	case d.dataType == 0:
		return errorf(ErrModel, "no data type")
	case dt == TypeString || d.strings:
		return errorf(ErrUnsupported, "string tensor")
	default:
		return errorf(ErrUnsupported, "data type %d", d.dataType)
	}
	if d.strings {
		return errorf(ErrModel, "string_data in a tensor of type %d", dt)
	}
	t.DataType = dt
	n := int64(1)
	for _, v := range d.dims {
		if v < 0 {
			return errorf(ErrModel, "negative dimension %d in %v", v, d.dims)
		}
		if v != 0 && n > r.lim.MaxTensorElems/v {
			return errorf(ErrLimit, "dims %v exceed %d elements", d.dims, r.lim.MaxTensorElems)
		}
		n *= v
	}
	if n > r.lim.MaxTensorElems {
		return errorf(ErrLimit, "dims %v exceed %d elements", d.dims, r.lim.MaxTensorElems)
	}
	if r.totalElems > r.lim.MaxTotalElems-n {
		return errorf(ErrLimit, "tensors together exceed %d elements", r.lim.MaxTotalElems)
	}
	r.totalElems += n
	t.Dims = d.dims
	if t.Dims == nil {
		t.Dims = []int64{}
	}
	typed := d.typed()
	if d.hasRaw {
		if len(typed) > 0 {
			return errorf(ErrModel, "both raw_data and %s", typed[0])
		}
		if len(d.raw)%width != 0 || int64(len(d.raw)/width) != n {
			return errorf(ErrModel, "raw_data of %d bytes for dims %v of %d-byte elements", len(d.raw), d.dims, width)
		}
		return convertRaw(t, d.raw, int(n))
	}
	if len(typed) > 1 {
		return errorf(ErrModel, "both %s and %s", typed[0], typed[1])
	}
	var want string
	var got int
	switch dt {
	case TypeFloat:
		want, got = "float_data", len(d.floats)
	case TypeDouble:
		want, got = "double_data", len(d.doubles)
	case TypeInt64:
		want, got = "int64_data", len(d.int64s)
	case TypeUint32, TypeUint64:
		want, got = "uint64_data", len(d.uint64s)
	default:
		want, got = "int32_data", len(d.int32s)
	}
	if len(typed) == 1 && typed[0] != want {
		return errorf(ErrModel, "%s in a tensor of type %d (want %s)", typed[0], dt, want)
	}
	if int64(got) != n {
		return errorf(ErrModel, "%d values for dims %v (%d elements)", got, d.dims, n)
	}
	switch dt {
	case TypeFloat:
		t.Float = d.floats
		if t.Float == nil {
			t.Float = []float32{}
		}
	case TypeDouble:
		t.Float = make([]float32, n)
		for i, v := range d.doubles {
			t.Float[i] = float32(v)
		}
	case TypeInt64:
		t.Int64 = d.int64s
		if t.Int64 == nil {
			t.Int64 = []int64{}
		}
	case TypeUint32, TypeUint64:
		t.Int64 = make([]int64, n)
		limit := uint64(math.MaxInt64)
		if dt == TypeUint32 {
			limit = math.MaxUint32
		}
		for i, v := range d.uint64s {
			if v > limit {
				return errorf(ErrModel, "value %d out of range for type %d", v, dt)
			}
			t.Int64[i] = int64(v)
		}
	case TypeFloat16:
		t.Float = make([]float32, n)
		for i, v := range d.int32s {
			if v < 0 || v > math.MaxUint16 {
				return errorf(ErrModel, "float16 bits %d out of range", v)
			}
			t.Float[i] = halfToFloat(uint16(v))
		}
	default:
		lo, hi := intRange(dt)
		t.Int64 = make([]int64, n)
		for i, v := range d.int32s {
			if int64(v) < lo || int64(v) > hi {
				return errorf(ErrModel, "value %d out of range for type %d", v, dt)
			}
			t.Int64[i] = int64(v)
		}
	}
	return nil
}

// intRange is the value range of the types int32_data carries as
// integers.
func intRange(dt DataType) (lo, hi int64) {
	switch dt {
	case TypeBool:
		return 0, 1
	case TypeInt8:
		return math.MinInt8, math.MaxInt8
	case TypeUint8:
		return 0, math.MaxUint8
	case TypeInt16:
		return math.MinInt16, math.MaxInt16
	case TypeUint16:
		return 0, math.MaxUint16
	}
	return math.MinInt32, math.MaxInt32
}

// convertRaw decodes n little-endian elements of t.DataType from raw
// (whose length the caller checked).
func convertRaw(t *Tensor, raw []byte, n int) error {
	le := binary.LittleEndian
	switch t.DataType {
	case TypeFloat, TypeDouble, TypeFloat16:
		t.Float = make([]float32, n)
		for i := range t.Float {
			switch t.DataType {
			case TypeFloat:
				t.Float[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
			case TypeDouble:
				t.Float[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
			default:
				t.Float[i] = halfToFloat(le.Uint16(raw[2*i:]))
			}
		}
		return nil
	}
	t.Int64 = make([]int64, n)
	for i := range t.Int64 {
		var v int64
		switch t.DataType {
		case TypeUint8:
			v = int64(raw[i])
		case TypeInt8:
			v = int64(int8(raw[i]))
		case TypeBool:
			if raw[i] > 1 {
				return errorf(ErrModel, "bool byte %d", raw[i])
			}
			v = int64(raw[i])
		case TypeUint16:
			v = int64(le.Uint16(raw[2*i:]))
		case TypeInt16:
			v = int64(int16(le.Uint16(raw[2*i:])))
		case TypeInt32:
			v = int64(int32(le.Uint32(raw[4*i:])))
		case TypeUint32:
			v = int64(le.Uint32(raw[4*i:]))
		case TypeInt64:
			v = int64(le.Uint64(raw[8*i:]))
		case TypeUint64:
			u := le.Uint64(raw[8*i:])
			if u > math.MaxInt64 {
				return errorf(ErrUnsupported, "uint64 value %d out of the int64 range", u)
			}
			v = int64(u)
		}
		t.Int64[i] = v
	}
	return nil
}

// halfToFloat converts IEEE 754 binary16 bits to a float32 (exactly: every
// half value is a float32 value).
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant * 2^-24
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// checkOpsets requires a supported default-domain opset and an imported
// opset for every node's domain.
func checkOpsets(m *Model) error {
	v, ok := m.Opsets[""]
	if !ok {
		return errorf(ErrUnsupported, "no opset imported for the default ONNX domain")
	}
	if v < minOpset || v > maxOpset {
		return errorf(ErrUnsupported, "opset version %d (supported: %d to %d)", v, minOpset, maxOpset)
	}
	for _, n := range m.Graph.Nodes {
		if _, ok := m.Opsets[n.Domain]; !ok {
			return errorf(ErrModel, "node %q (%s) of domain %q, which the model does not import", n.Name, n.OpType, n.Domain)
		}
	}
	return nil
}

// checkGraph checks that values are defined once, before they are used,
// and that the graph outputs are produced.
func checkGraph(m *Model) error {
	g := m.Graph
	defined := map[string]bool{}
	for name := range g.Initializers {
		defined[name] = true
	}
	for _, in := range g.Inputs {
		if in.Name == "" {
			return errorf(ErrModel, "a graph input has no name")
		}
		if defined[in.Name] {
			return errorf(ErrModel, "graph input %q appears twice", in.Name)
		}
		defined[in.Name] = true
	}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != "" && !defined[in] {
				return errorf(ErrModel, "node %d %q (%s): input %q is not a graph input, an initializer or an earlier node's output", i, n.Name, n.OpType, in)
			}
		}
		for _, out := range n.Outputs {
			if out == "" {
				continue
			}
			if defined[out] {
				return errorf(ErrModel, "node %d %q (%s): output %q is already defined", i, n.Name, n.OpType, out)
			}
			defined[out] = true
		}
	}
	if len(g.Outputs) == 0 {
		return errorf(ErrModel, "the graph has no outputs")
	}
	for _, out := range g.Outputs {
		if !defined[out.Name] {
			return errorf(ErrModel, "graph output %q is not produced", out.Name)
		}
	}
	return nil
}

// readError is a ReadModel error: one of the sentinels and what it is
// about, context first ("node "x" (Conv): tensor "w": raw_data of ...").
type readError struct {
	kind error
	msg  string
}

func (e *readError) Error() string { return e.kind.Error() + ": " + e.msg }
func (e *readError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &readError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// within puts context before the message of err.
func within(err error, format string, args ...any) error {
	var re *readError
	if errors.As(err, &re) {
		return &readError{kind: re.kind, msg: fmt.Sprintf(format, args...) + ": " + re.msg}
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
