package triage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/radtriage/radtriage/kernels"
)

// The executor: Compile turns a decoded Model into a Plan on a
// kernels.Backend for fixed input shapes, and Plan.Run runs it.
//
// Compile infers every value's shape, folds on the host every node whose
// inputs are all constant (the shape arithmetic PyTorch exports: Shape,
// Gather, Unsqueeze, Concat, Reshape, ...), folds a BatchNormalization
// that follows a convolution into its weights, fuses a Relu, LeakyRelu or
// Sigmoid into the convolution or normalisation before it, prepares the
// convolutions, uploads the other constants once, and computes for every
// activation the step after which its buffer goes back to the backend's
// pool. Anything unsupported or inconsistent is an error at compile time
// naming the node, its index and its operator.

// ErrInput: Run was given inputs that do not match the plan.
var ErrInput = errors.New("triage: inputs do not match the plan")

// CompileOptions tune Compile. The zero value is the normal setting.
type CompileOptions struct {
	// Profile makes Run sync the backend after each step and record its
	// time (Plan.Profile).
	Profile bool
	// NoFusion turns off BatchNorm folding and activation fusion (for
	// tests that compare fused and unfused plans).
	NoFusion bool
}

// NodeTiming is the time one step of a plan took in the last profiled Run.
// A step that fused several nodes is named after the first.
type NodeTiming struct {
	Node string
	Op   string
	Ms   float64
}

// storage is one buffer of a plan: an activation (allocated when its step
// runs, freed after its last reader) or a persistent constant.
type storage struct {
	elems   int
	persist *kernels.Buffer // constants uploaded at compile time
	output  bool
}

// step is one backend call.
type step struct {
	node  string
	op    string
	ins   []int // storages read
	out   int   // storage written, -1 for none
	run   func(dst *kernels.Buffer, ins []*kernels.Buffer) error
	frees []int // storages whose last reader this step is
}

type planIO struct {
	name  string
	shape []int
	st    int
	c     *hostT // a constant output
}

// Plan is a compiled model. A Plan is used by one goroutine at a time
// (like its backend).
type Plan struct {
	b        kernels.Backend
	steps    []*step
	storages []storage
	inputs   []planIO
	outputs  []planIO
	preFree  []int // graph inputs no step reads
	convs    []*kernels.Conv
	peak     int64
	weights  int64
	profile  bool
	timings  []NodeTiming
	closed   bool
}

// value is a tensor at compile time: a constant (c set) or an activation
// in storage st.
type value struct {
	shape []int
	c     *hostT
	st    int
}

type compiler struct {
	b        kernels.Backend
	opts     CompileOptions
	opset    int64
	g        *Graph
	vals     map[string]*value
	p        *Plan
	constSt  map[string]int
	users    map[string][]int // node indices reading a value
	isOutput map[string]bool
	absorbed map[int]bool
	def      []int // storage -> defining step (-1: graph input or constant)
	last     []int // storage -> last reading step
}

// Compile builds a plan for m on b with the graph inputs fixed to
// inputShapes. The plan holds backend memory: Close it.
func Compile(m *Model, b kernels.Backend, inputShapes map[string][]int, opts CompileOptions) (p *Plan, err error) {
	if m == nil || m.Graph == nil {
		return nil, fmt.Errorf("%w: no graph", ErrModel)
	}
	opset, ok := m.Opsets[""]
	if !ok {
		opset = m.Opsets["ai.onnx"]
	}
	if opset < 11 || opset > 18 {
		return nil, fmt.Errorf("%w: ai.onnx opset %d (11 to 18 are supported)", ErrUnsupported, opset)
	}
	c := &compiler{
		b: b, opts: opts, opset: opset, g: m.Graph,
		vals:     map[string]*value{},
		p:        &Plan{b: b, profile: opts.Profile},
		constSt:  map[string]int{},
		users:    map[string][]int{},
		isOutput: map[string]bool{},
		absorbed: map[int]bool{},
	}
	defer func() {
		if err != nil {
			c.p.Close()
			p = nil
		}
	}()
	for name, t := range m.Graph.Initializers {
		h, err := tensorToHost(t)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", name, err)
		}
		c.vals[name] = &value{shape: h.shape, c: h, st: -1}
	}
	for _, in := range m.Graph.Inputs {
		if _, ok := m.Graph.Initializers[in.Name]; ok {
			continue
		}
		if err := c.addInput(in, inputShapes); err != nil {
			return nil, err
		}
	}
	for name := range inputShapes {
		if !slices.ContainsFunc(c.p.inputs, func(io planIO) bool { return io.name == name }) {
			return nil, fmt.Errorf("%w: shape given for %q, which is not a graph input", ErrInput, name)
		}
	}
	for _, o := range m.Graph.Outputs {
		c.isOutput[o.Name] = true
	}
	for i, n := range m.Graph.Nodes {
		for _, in := range n.Inputs {
			if in != "" {
				c.users[in] = append(c.users[in], i)
			}
		}
	}
	for i, n := range m.Graph.Nodes {
		if c.absorbed[i] {
			continue
		}
		if err := c.node(i, n); err != nil {
			return nil, fmt.Errorf("node %d %q (%s): %w", i, n.Name, n.OpType, err)
		}
	}
	for _, o := range m.Graph.Outputs {
		v, ok := c.vals[o.Name]
		if !ok {
			return nil, fmt.Errorf("%w: graph output %q is never computed", ErrModel, o.Name)
		}
		if v.c != nil {
			c.p.outputs = append(c.p.outputs, planIO{name: o.Name, shape: v.shape, st: -1, c: v.c})
			continue
		}
		c.p.storages[v.st].output = true
		c.p.outputs = append(c.p.outputs, planIO{name: o.Name, shape: v.shape, st: v.st})
	}
	c.liveness()
	return c.p, nil
}

func (c *compiler) addInput(in ValueInfo, inputShapes map[string][]int) error {
	shape, ok := inputShapes[in.Name]
	if !ok {
		return fmt.Errorf("%w: no shape given for graph input %q", ErrInput, in.Name)
	}
	if in.ElemType != 0 && in.ElemType != TypeFloat {
		return fmt.Errorf("%w: graph input %q has element type %d (float32 only)", ErrUnsupported, in.Name, in.ElemType)
	}
	if len(in.Shape) > 0 && len(in.Shape) != len(shape) {
		return fmt.Errorf("%w: graph input %q has rank %d, shape %v given", ErrInput, in.Name, len(in.Shape), shape)
	}
	if _, ok := checkedNumel(shape, maxElems); !ok {
		return fmt.Errorf("%w: graph input %q: shape %v", ErrInput, in.Name, shape)
	}
	for i, d := range shape {
		if d <= 0 {
			return fmt.Errorf("%w: graph input %q: shape %v", ErrInput, in.Name, shape)
		}
		if i < len(in.Shape) && in.Shape[i].Value > 0 && in.Shape[i].Value != int64(d) {
			return fmt.Errorf("%w: graph input %q: dimension %d is %d in the model, %d given", ErrInput, in.Name, i, in.Shape[i].Value, d)
		}
	}
	st := c.newStorage(numel(shape), -1)
	c.vals[in.Name] = &value{shape: slices.Clone(shape), st: st}
	c.p.inputs = append(c.p.inputs, planIO{name: in.Name, shape: slices.Clone(shape), st: st})
	return nil
}

func (c *compiler) newStorage(elems, def int) int {
	c.p.storages = append(c.p.storages, storage{elems: elems})
	c.def = append(c.def, def)
	c.last = append(c.last, def)
	return len(c.p.storages) - 1
}

// liveness computes each step's frees and the plan's peak bytes.
func (c *compiler) liveness() {
	p := c.p
	for i, s := range p.steps {
		for _, st := range s.ins {
			c.last[st] = max(c.last[st], i)
		}
	}
	var live int64
	for st, s := range p.storages {
		if s.persist != nil {
			p.weights += int64(s.elems) * 4
			continue
		}
		if c.def[st] == -1 {
			live += int64(s.elems) * 4
			switch {
			case s.output:
			case c.last[st] == -1:
				p.preFree = append(p.preFree, st)
			default:
				p.steps[c.last[st]].frees = append(p.steps[c.last[st]].frees, st)
			}
		} else if !s.output {
			p.steps[c.last[st]].frees = append(p.steps[c.last[st]].frees, st)
		}
	}
	p.peak = live
	for _, st := range p.preFree {
		live -= int64(p.storages[st].elems) * 4
	}
	for _, s := range p.steps {
		if s.out >= 0 {
			live += int64(p.storages[s.out].elems) * 4
		}
		p.peak = max(p.peak, live)
		for _, st := range s.frees {
			live -= int64(p.storages[st].elems) * 4
		}
	}
}

// input returns the value named by node input k, or an error.
func (c *compiler) input(n *Node, k int) (*value, error) {
	if k >= len(n.Inputs) || n.Inputs[k] == "" {
		return nil, fmt.Errorf("%w: input %d missing", ErrModel, k)
	}
	v, ok := c.vals[n.Inputs[k]]
	if !ok {
		return nil, fmt.Errorf("%w: input %q is not defined before the node", ErrModel, n.Inputs[k])
	}
	return v, nil
}

// optInput returns input k, or nil when it is omitted.
func (c *compiler) optInput(n *Node, k int) (*value, error) {
	if k >= len(n.Inputs) || n.Inputs[k] == "" {
		return nil, nil
	}
	return c.input(n, k)
}

// constInput returns input k, which must be constant.
func (c *compiler) constInput(n *Node, k int) (*hostT, error) {
	v, err := c.input(n, k)
	if err != nil {
		return nil, err
	}
	if v.c == nil {
		return nil, fmt.Errorf("%w: input %d (%q) must be a constant", ErrUnsupported, k, n.Inputs[k])
	}
	return v.c, nil
}

// operand returns the storage holding v (named name), uploading a
// constant once.
func (c *compiler) operand(name string, v *value) (int, error) {
	if v.c == nil {
		return v.st, nil
	}
	if st, ok := c.constSt[name]; ok {
		return st, nil
	}
	data := v.c.float32s()
	buf, err := c.b.Alloc(kernels.Float32, max(len(data), 1))
	if err != nil {
		return 0, err
	}
	if len(data) > 0 {
		if err := c.b.Upload(buf, data); err != nil {
			c.b.Free(buf)
			return 0, err
		}
	}
	st := c.newStorage(len(data), -1)
	c.p.storages[st].persist = buf
	c.constSt[name] = st
	return st, nil
}

func (c *compiler) setOutput(n *Node, k int, v *value) error {
	if k >= len(n.Outputs) || n.Outputs[k] == "" {
		return nil
	}
	if _, dup := c.vals[n.Outputs[k]]; dup {
		return fmt.Errorf("%w: output %q is defined twice", ErrModel, n.Outputs[k])
	}
	c.vals[n.Outputs[k]] = v
	return nil
}

// addStep appends a step writing a new activation of shape out under
// the name outName.
func (c *compiler) addStep(n *Node, outName string, ins []int, out []int, run func(dst *kernels.Buffer, ins []*kernels.Buffer) error) error {
	if n, ok := checkedNumel(out, maxElems); !ok || n == 0 {
		return fmt.Errorf("%w: output shape %v (empty or too large)", ErrUnsupported, out)
	}
	idx := len(c.p.steps)
	st := c.newStorage(numel(out), idx)
	c.p.steps = append(c.p.steps, &step{node: n.Name, op: n.OpType, ins: ins, out: st, run: run})
	if _, dup := c.vals[outName]; dup {
		return fmt.Errorf("%w: output %q is defined twice", ErrModel, outName)
	}
	c.vals[outName] = &value{shape: out, st: st}
	return nil
}

// soleUser returns the node that alone reads name, when name is not a
// graph output.
func (c *compiler) soleUser(name string) (int, *Node) {
	u := c.users[name]
	if c.opts.NoFusion || c.isOutput[name] || len(u) != 1 {
		return -1, nil
	}
	return u[0], c.g.Nodes[u[0]]
}

// fuseAct looks for an activation that alone reads name; it returns the
// activation and the name of its output (name itself when none).
func (c *compiler) fuseAct(name string) (kernels.Activation, string, error) {
	i, u := c.soleUser(name)
	if u == nil || len(u.Inputs) != 1 || len(u.Outputs) != 1 || (u.Domain != "" && u.Domain != "ai.onnx") {
		return kernels.Activation{}, name, nil
	}
	var act kernels.Activation
	switch u.OpType {
	case "Relu":
		act.Kind = kernels.ActReLU
	case "LeakyRelu":
		a := attrs{n: u}
		act = kernels.Activation{Kind: kernels.ActLeakyReLU, Alpha: a.float("alpha", 0.01)}
		if a.err != nil {
			return act, name, fmt.Errorf("fusing node %d %q: %w", i, u.Name, a.err)
		}
	case "Sigmoid":
		act.Kind = kernels.ActSigmoid
	default:
		return kernels.Activation{}, name, nil
	}
	c.absorbed[i] = true
	return act, u.Outputs[0], nil
}

func (c *compiler) node(i int, n *Node) error {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return fmt.Errorf("%w: operator domain %q", ErrUnsupported, n.Domain)
	}
	if len(n.Outputs) == 0 {
		return fmt.Errorf("%w: node has no outputs", ErrModel)
	}
	a := &attrs{n: n}
	// Constants and shape arithmetic run on the host.
	if n.OpType == "Constant" {
		h, err := constantNode(n)
		if err != nil {
			return err
		}
		return c.setOutput(n, 0, &value{shape: h.shape, c: h, st: -1})
	}
	if n.OpType == "Shape" {
		x, err := c.input(n, 0)
		if err != nil {
			return err
		}
		r := int64(len(x.shape))
		start, end := a.int("start", 0), a.int("end", r)
		if start < 0 {
			start += r
		}
		if end < 0 {
			end += r
		}
		start, end = min(max(start, 0), r), min(max(end, 0), r)
		h := &hostT{isInt: true, ints: []int64{}}
		for d := start; d < end; d++ {
			h.ints = append(h.ints, int64(x.shape[d]))
		}
		h.shape = []int{len(h.ints)}
		if a.err != nil {
			return a.err
		}
		return c.setOutput(n, 0, &value{shape: h.shape, c: h, st: -1})
	}
	allConst := true
	var ins []*value
	for k, name := range n.Inputs {
		if name == "" {
			ins = append(ins, nil)
			continue
		}
		v, err := c.input(n, k)
		if err != nil {
			return err
		}
		ins = append(ins, v)
		allConst = allConst && v.c != nil
	}
	if allConst && len(ins) > 0 {
		h, ok, err := c.fold(n, a, ins)
		if err != nil {
			return err
		}
		if a.err != nil {
			return a.err
		}
		if ok {
			return c.setOutput(n, 0, &value{shape: h.shape, c: h, st: -1})
		}
	}
	if err := c.runtimeNode(n, a, ins); err != nil {
		return err
	}
	return a.err
}

// needInputs checks the number of inputs given (omitted optional ones
// count as given).
func needInputs(n *Node, lo, hi int) error {
	if len(n.Inputs) < lo || len(n.Inputs) > hi {
		if lo == hi {
			return fmt.Errorf("%w: %d inputs, %s takes %d", ErrModel, len(n.Inputs), n.OpType, lo)
		}
		return fmt.Errorf("%w: %d inputs, %s takes %d to %d", ErrModel, len(n.Inputs), n.OpType, lo, hi)
	}
	for k := range lo {
		if n.Inputs[k] == "" {
			return fmt.Errorf("%w: required input %d is empty", ErrModel, k)
		}
	}
	return nil
}

// fold evaluates a node whose inputs are all constant, when the host
// knows the operator (ok false otherwise: it runs on the backend).
func (c *compiler) fold(n *Node, a *attrs, ins []*value) (*hostT, bool, error) {
	x := ins[0]
	switch n.OpType {
	case "Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze":
		shape, err := c.viewShape(n, a, ins)
		if err != nil {
			return nil, false, err
		}
		return x.c.withShape(shape), true, nil
	case "Cast":
		if err := needInputs(n, 1, 1); err != nil {
			return nil, false, err
		}
		h, err := castHost(x.c, DataType(a.int("to", int64(TypeFloat))))
		return h, true, err
	case "Gather":
		if err := needInputs(n, 2, 2); err != nil {
			return nil, false, err
		}
		h, err := hostGather(x.c, ins[1].c, a.int("axis", 0))
		return h, true, err
	case "Concat":
		if len(ins) == 0 {
			return nil, false, fmt.Errorf("%w: Concat of nothing", ErrModel)
		}
		var ts []*hostT
		for _, v := range ins {
			if v != nil {
				ts = append(ts, v.c)
			}
		}
		h, err := hostConcat(ts, a.int("axis", 0))
		return h, true, err
	case "Slice":
		if err := needInputs(n, 3, 5); err != nil {
			return nil, false, err
		}
		var axes, steps []int64
		if len(ins) > 3 && ins[3] != nil {
			axes = ins[3].c.int64s()
		}
		if len(ins) > 4 && ins[4] != nil {
			steps = ins[4].c.int64s()
		}
		h, err := hostSlice(x.c, ins[1].c.int64s(), ins[2].c.int64s(), axes, steps)
		return h, true, err
	case "ConstantOfShape":
		if err := needInputs(n, 1, 1); err != nil {
			return nil, false, err
		}
		shape := make([]int, x.c.len())
		for i := range shape {
			d := x.c.int(i)
			if d < 0 || d > 1<<28 {
				return nil, false, fmt.Errorf("%w: ConstantOfShape dimension %d", ErrModel, d)
			}
			shape[i] = int(d)
		}
		if _, ok := checkedNumel(shape, maxHostElems); !ok {
			return nil, false, fmt.Errorf("%w: ConstantOfShape of %v", ErrUnsupported, shape)
		}
		fill := &hostT{shape: []int{1}, flts: []float32{0}}
		if t := a.tensor("value"); t != nil {
			h, err := tensorToHost(t)
			if err != nil {
				return nil, false, err
			}
			if h.len() != 1 {
				return nil, false, fmt.Errorf("%w: ConstantOfShape value has %d elements", ErrModel, h.len())
			}
			fill = h
		}
		idx := make([]int, numel(shape))
		return fill.gather(shape, idx), true, nil
	case "Add", "Sub", "Mul", "Div":
		if err := needInputs(n, 2, 2); err != nil {
			return nil, false, err
		}
		h, err := hostBinary(n.OpType, x.c, ins[1].c)
		return h, true, err
	case "Floor", "Ceil", "Neg":
		if err := needInputs(n, 1, 1); err != nil {
			return nil, false, err
		}
		if x.c.isInt {
			if n.OpType == "Neg" {
				out := &hostT{shape: x.shape, isInt: true, ints: make([]int64, x.c.len())}
				for i, v := range x.c.ints {
					out.ints[i] = -v
				}
				return out, true, nil
			}
			return x.c, true, nil
		}
		out := &hostT{shape: x.shape, flts: make([]float32, x.c.len())}
		for i, v := range x.c.flts {
			switch n.OpType {
			case "Floor":
				out.flts[i] = float32(math.Floor(float64(v)))
			case "Ceil":
				out.flts[i] = float32(math.Ceil(float64(v)))
			default:
				out.flts[i] = -v
			}
		}
		return out, true, nil
	case "Range":
		if err := needInputs(n, 3, 3); err != nil {
			return nil, false, err
		}
		h, err := hostRange(x.c, ins[1].c, ins[2].c)
		return h, true, err
	}
	return nil, false, nil
}

// viewShape is the output shape of the operators that only reinterpret
// their input.
func (c *compiler) viewShape(n *Node, a *attrs, ins []*value) ([]int, error) {
	x := ins[0]
	switch n.OpType {
	case "Identity":
		if err := needInputs(n, 1, 1); err != nil {
			return nil, err
		}
		return x.shape, nil
	case "Dropout":
		if err := needInputs(n, 1, 3); err != nil {
			return nil, err
		}
		if len(n.Outputs) > 1 && n.Outputs[1] != "" {
			return nil, fmt.Errorf("%w: Dropout mask output", ErrUnsupported)
		}
		return x.shape, nil
	case "Flatten":
		if err := needInputs(n, 1, 1); err != nil {
			return nil, err
		}
		r := int64(len(x.shape))
		ax := a.int("axis", 1)
		if ax < 0 {
			ax += r
		}
		if ax < 0 || ax > r {
			return nil, fmt.Errorf("%w: Flatten axis %d for rank %d", ErrModel, a.int("axis", 1), r)
		}
		return []int{numel(x.shape[:ax]), numel(x.shape[ax:])}, nil
	case "Reshape":
		if err := needInputs(n, 2, 2); err != nil {
			return nil, err
		}
		if ins[1].c == nil {
			return nil, fmt.Errorf("%w: Reshape to a computed shape", ErrUnsupported)
		}
		return reshapeShape(x.shape, ins[1].c.int64s(), a.int("allowzero", 0) != 0)
	case "Squeeze", "Unsqueeze":
		var axes []int64
		if c.opset >= 13 {
			if err := needInputs(n, 1, 2); err != nil {
				return nil, err
			}
			if len(ins) > 1 && ins[1] != nil {
				if ins[1].c == nil {
					return nil, fmt.Errorf("%w: %s axes computed at run time", ErrUnsupported, n.OpType)
				}
				axes = ins[1].c.int64s()
			}
		} else {
			if err := needInputs(n, 1, 1); err != nil {
				return nil, err
			}
			axes = a.ints("axes")
		}
		if n.OpType == "Squeeze" {
			return squeezeShape(x.shape, axes)
		}
		return unsqueezeShape(x.shape, axes)
	}
	return nil, fmt.Errorf("%w: not a view", ErrUnsupported)
}

func reshapeShape(in []int, target []int64, allowZero bool) ([]int, error) {
	out := make([]int, len(target))
	infer := -1
	known := 1
	for i, d := range target {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("%w: Reshape to %v has two -1", ErrModel, target)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("%w: Reshape to %v copies dimension %d of %v", ErrModel, target, i, in)
			}
			out[i] = in[i]
		case d < 0 || d > math.MaxInt32:
			return nil, fmt.Errorf("%w: Reshape to %v", ErrModel, target)
		default:
			out[i] = int(d)
		}
		known *= out[i]
	}
	total := numel(in)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("%w: Reshape of %v to %v", ErrModel, in, target)
		}
		out[infer] = total / known
	}
	if n, ok := checkedNumel(out, maxElems); !ok || n != total {
		return nil, fmt.Errorf("%w: Reshape of %v (%d elements) to %v", ErrModel, in, total, target)
	}
	return out, nil
}

func squeezeShape(in []int, axes []int64) ([]int, error) {
	drop := make([]bool, len(in))
	if axes == nil {
		for i, d := range in {
			drop[i] = d == 1
		}
	}
	for _, ax := range axes {
		i, err := normAxis(ax, len(in))
		if err != nil {
			return nil, err
		}
		if in[i] != 1 {
			return nil, fmt.Errorf("%w: Squeeze axis %d of %v is not 1", ErrModel, ax, in)
		}
		drop[i] = true
	}
	var out []int
	for i, d := range in {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return out, nil
}

func unsqueezeShape(in []int, axes []int64) ([]int, error) {
	r := len(in) + len(axes)
	ones := make([]bool, r)
	for _, ax := range axes {
		i, err := normAxis(ax, r)
		if err != nil {
			return nil, err
		}
		if ones[i] {
			return nil, fmt.Errorf("%w: Unsqueeze axis %d repeated", ErrModel, ax)
		}
		ones[i] = true
	}
	out := make([]int, 0, r)
	k := 0
	for i := range r {
		if ones[i] {
			out = append(out, 1)
		} else {
			out = append(out, in[k])
			k++
		}
	}
	return out, nil
}

// constantNode decodes a Constant node's value.
func constantNode(n *Node) (*hostT, error) {
	if len(n.Inputs) != 0 {
		return nil, fmt.Errorf("%w: Constant with %d inputs", ErrModel, len(n.Inputs))
	}
	for name, at := range n.Attrs {
		switch name {
		case "value":
			if at.T == nil {
				return nil, fmt.Errorf("%w: Constant value is not a tensor", ErrModel)
			}
			return tensorToHost(at.T)
		case "value_float":
			return &hostT{shape: []int{}, flts: []float32{at.F}}, nil
		case "value_floats":
			return &hostT{shape: []int{len(at.Floats)}, flts: at.Floats}, nil
		case "value_int":
			return &hostT{shape: []int{}, isInt: true, ints: []int64{at.I}}, nil
		case "value_ints":
			return &hostT{shape: []int{len(at.Ints)}, isInt: true, ints: at.Ints}, nil
		default:
			return nil, fmt.Errorf("%w: Constant attribute %q", ErrUnsupported, name)
		}
	}
	return nil, fmt.Errorf("%w: Constant without a value", ErrModel)
}

// attrs reads a node's attributes, keeping the first type error.
type attrs struct {
	n   *Node
	err error
}

func (a *attrs) get(name string, t AttrType) *Attribute {
	at, ok := a.n.Attrs[name]
	if !ok {
		return nil
	}
	if at.Type != t && a.err == nil {
		a.err = fmt.Errorf("%w: attribute %q has type %d, want %d", ErrModel, name, at.Type, t)
		return nil
	}
	if at.Type != t {
		return nil
	}
	return at
}

func (a *attrs) int(name string, def int64) int64 {
	if at := a.get(name, AttrInt); at != nil {
		return at.I
	}
	return def
}

func (a *attrs) float(name string, def float32) float32 {
	if at := a.get(name, AttrFloat); at != nil {
		return at.F
	}
	return def
}

func (a *attrs) ints(name string) []int64 {
	if at := a.get(name, AttrInts); at != nil {
		return at.Ints
	}
	return nil
}

func (a *attrs) str(name, def string) string {
	if at := a.get(name, AttrString); at != nil {
		return string(at.S)
	}
	return def
}

func (a *attrs) tensor(name string) *Tensor {
	if at := a.get(name, AttrTensor); at != nil {
		return at.T
	}
	return nil
}

// Run uploads the inputs (each its shape's number of values, by graph
// input name), runs the plan and downloads the outputs.
func (p *Plan) Run(ctx context.Context, inputs map[string][]float32) (out map[string][]float32, err error) {
	if p.closed {
		return nil, fmt.Errorf("%w: plan closed", ErrInput)
	}
	if len(inputs) != len(p.inputs) {
		return nil, fmt.Errorf("%w: %d inputs given, the model takes %d", ErrInput, len(inputs), len(p.inputs))
	}
	b := p.b
	bufs := make([]*kernels.Buffer, len(p.storages))
	defer func() {
		for st, buf := range bufs {
			if buf != nil && p.storages[st].persist == nil {
				b.Free(buf)
			}
		}
	}()
	for st, s := range p.storages {
		if s.persist != nil {
			bufs[st] = s.persist
		}
	}
	for _, in := range p.inputs {
		data, ok := inputs[in.name]
		if !ok {
			return nil, fmt.Errorf("%w: input %q missing", ErrInput, in.name)
		}
		if len(data) != numel(in.shape) {
			return nil, fmt.Errorf("%w: input %q has %d values, shape %v takes %d", ErrInput, in.name, len(data), in.shape, numel(in.shape))
		}
		buf, err := b.Alloc(kernels.Float32, len(data))
		if err != nil {
			return nil, err
		}
		bufs[in.st] = buf
		if err := b.Upload(buf, data); err != nil {
			return nil, fmt.Errorf("input %q: %w", in.name, err)
		}
	}
	for _, st := range p.preFree {
		b.Free(bufs[st])
		bufs[st] = nil
	}
	if p.profile {
		p.timings = p.timings[:0]
	}
	args := make([]*kernels.Buffer, 0, 8)
	for i, s := range p.steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		var dst *kernels.Buffer
		if s.out >= 0 {
			dst, err = b.Alloc(kernels.Float32, p.storages[s.out].elems)
			if err != nil {
				return nil, fmt.Errorf("step %d %q (%s): %w", i, s.node, s.op, err)
			}
			bufs[s.out] = dst
		}
		args = args[:0]
		for _, st := range s.ins {
			args = append(args, bufs[st])
		}
		if err := s.run(dst, args); err != nil {
			return nil, fmt.Errorf("step %d %q (%s): %w", i, s.node, s.op, err)
		}
		if p.profile {
			if err := b.Sync(); err != nil {
				return nil, err
			}
			p.timings = append(p.timings, NodeTiming{Node: s.node, Op: s.op, Ms: float64(time.Since(start).Microseconds()) / 1000})
		}
		for _, st := range s.frees {
			b.Free(bufs[st])
			bufs[st] = nil
		}
	}
	out = make(map[string][]float32, len(p.outputs))
	for _, o := range p.outputs {
		if o.c != nil {
			out[o.name] = slices.Clone(o.c.float32s())
			continue
		}
		data := make([]float32, numel(o.shape))
		if err := b.Download(data, bufs[o.st]); err != nil {
			return nil, fmt.Errorf("output %q: %w", o.name, err)
		}
		out[o.name] = data
	}
	return out, nil
}

// OutputShapes are the shapes of the graph outputs, by name.
func (p *Plan) OutputShapes() map[string][]int {
	m := make(map[string][]int, len(p.outputs))
	for _, o := range p.outputs {
		m[o.name] = slices.Clone(o.shape)
	}
	return m
}

// PeakBytes is the most activation memory (graph inputs included) the
// plan holds at once while running; WeightBytes is the memory of the
// constants it keeps on the backend besides the prepared convolutions'
// packed weights.
func (p *Plan) PeakBytes() int64 { return p.peak }

// WeightBytes: see PeakBytes.
func (p *Plan) WeightBytes() int64 { return p.weights }

// Profile returns the per-step times of the last Run (with
// CompileOptions.Profile set).
func (p *Plan) Profile() []NodeTiming { return slices.Clone(p.timings) }

// Close releases the prepared convolutions and constants. Closing twice
// is a no-op.
func (p *Plan) Close() error {
	if p == nil || p.closed {
		return nil
	}
	p.closed = true
	for _, cv := range p.convs {
		p.b.ReleaseConv(cv)
	}
	for _, s := range p.storages {
		if s.persist != nil {
			p.b.Free(s.persist)
		}
	}
	p.convs, p.storages = nil, nil
	return nil
}
