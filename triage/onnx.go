package triage

import "errors"

// The in-memory form of an ONNX model: what ReadModel decodes (onnx_read.go)
// and Compile turns into a plan on a kernels.Backend (exec.go). Field
// meanings follow the ONNX specification (onnx.proto, IR version 3 to 9,
// opsets 11 to 18).

// Model is a decoded ONNX ModelProto.
type Model struct {
	IRVersion       int64
	ProducerName    string
	ProducerVersion string
	// Opsets maps an operator set domain ("" for the default ai.onnx) to
	// its version.
	Opsets map[string]int64
	Graph  *Graph
	// Metadata is the model's metadata_props.
	Metadata map[string]string
}

// Graph is a decoded GraphProto.
type Graph struct {
	Name  string
	Nodes []*Node // in the file's order (topologically sorted, as ONNX requires)
	// Initializers by name, and their names in file order.
	Initializers     map[string]*Tensor
	InitializerOrder []string
	// Inputs are the graph inputs that are not initializers; Outputs the
	// graph outputs; ValueInfo the shapes the file states for other values.
	Inputs, Outputs []ValueInfo
	ValueInfo       []ValueInfo
}

// Node is a decoded NodeProto. An empty input name is an omitted optional
// input.
type Node struct {
	Name, OpType, Domain string
	Inputs, Outputs      []string
	Attrs                map[string]*Attribute
}

// AttrType is an AttributeProto type.
type AttrType int32

// Attribute types (onnx.proto AttributeProto.AttributeType).
const (
	AttrFloat   AttrType = 1
	AttrInt     AttrType = 2
	AttrString  AttrType = 3
	AttrTensor  AttrType = 4
	AttrFloats  AttrType = 6
	AttrInts    AttrType = 7
	AttrStrings AttrType = 8
)

// Attribute is a decoded AttributeProto (graph-valued attributes are
// refused: no supported operator takes one).
type Attribute struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       []byte
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings [][]byte
}

// DataType is a TensorProto.DataType.
type DataType int32

// Tensor element types (onnx.proto TensorProto.DataType).
const (
	TypeFloat   DataType = 1
	TypeUint8   DataType = 2
	TypeInt8    DataType = 3
	TypeUint16  DataType = 4
	TypeInt16   DataType = 5
	TypeInt32   DataType = 6
	TypeInt64   DataType = 7
	TypeString  DataType = 8
	TypeBool    DataType = 9
	TypeFloat16 DataType = 10
	TypeDouble  DataType = 11
	TypeUint32  DataType = 12
	TypeUint64  DataType = 13
)

// Tensor is a decoded TensorProto (an initializer or a constant). Values
// are converted on reading: floating types (float, double, float16) into
// Float, integer and bool types into Int64. Exactly one of them holds
// product(Dims) values.
type Tensor struct {
	Name     string
	DataType DataType
	Dims     []int64
	Float    []float32
	Int64    []int64
}

// ValueInfo is a decoded ValueInfoProto of a tensor type: its element
// type and shape. A dimension with Value < 0 is unknown (symbolic when
// Param is set).
type ValueInfo struct {
	Name     string
	ElemType DataType
	Shape    []Dim
}

// Dim is one dimension of a ValueInfo shape.
type Dim struct {
	Value int64
	Param string
}

// Limits bound what ReadModel accepts, so that a hostile file cannot
// exhaust memory. The zero value means DefaultLimits.
type Limits struct {
	MaxBytes       int64 // the whole file
	MaxNodes       int
	MaxTensorElems int64 // one tensor
	MaxTotalElems  int64 // all initializers together
	MaxRank        int
	// MaxItems bounds the node input and output names, attributes,
	// string values and value infos of the whole model together.
	MaxItems int
}

// DefaultLimits fit the 3D segmentation and classification models
// radtriage runs (tens of MB of weights) with room to spare.
var DefaultLimits = Limits{
	MaxBytes:       1 << 30,
	MaxNodes:       100_000,
	MaxTensorElems: 1 << 28,
	MaxTotalElems:  1 << 28,
	MaxRank:        8,
	MaxItems:       4_000_000,
}

// Errors of model loading (wrapped with the node, operator or tensor
// named).
var (
	// ErrModel: the file is not a valid ONNX model (truncated, malformed,
	// inconsistent).
	ErrModel = errors.New("triage: invalid ONNX model")
	// ErrUnsupported: a valid model uses something radtriage does not run
	// (an operator, an attribute value, a data type, an opset).
	ErrUnsupported = errors.New("triage: unsupported ONNX model")
	// ErrLimit: the model exceeds Limits.
	ErrLimit = errors.New("triage: ONNX model exceeds limits")
)
