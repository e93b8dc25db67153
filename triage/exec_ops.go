package triage

import (
	"fmt"
	"math"

	"github.com/radtriage/radtriage/kernels"
)

// runtimeNode compiles a node that runs on the backend.
func (c *compiler) runtimeNode(n *Node, a *attrs, ins []*value) error {
	switch n.OpType {
	case "Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze":
		shape, err := c.viewShape(n, a, ins)
		if err != nil {
			return err
		}
		// A view shares its input's buffer.
		return c.setOutput(n, 0, &value{shape: shape, st: ins[0].st, c: ins[0].c})
	case "Cast":
		if err := needInputs(n, 1, 1); err != nil {
			return err
		}
		if to := DataType(a.int("to", int64(TypeFloat))); to != TypeFloat {
			return fmt.Errorf("%w: Cast of an activation to type %d", ErrUnsupported, to)
		}
		return c.setOutput(n, 0, &value{shape: ins[0].shape, st: ins[0].st})
	case "Conv", "ConvTranspose":
		return c.conv(n, a, ins)
	case "BatchNormalization", "InstanceNormalization":
		return c.norm(n, a, ins)
	case "Relu", "LeakyRelu", "Sigmoid", "Clip":
		return c.activation(n, a, ins)
	case "Softmax":
		return c.softmax(n, a, ins)
	case "Add", "Sub", "Mul", "Div":
		return c.binary(n, ins)
	case "Concat":
		return c.concat(n, a, ins)
	case "Resize":
		return c.resize(n, a, ins)
	case "MaxPool", "AveragePool":
		return c.pool(n, a, ins)
	case "GlobalAveragePool":
		if err := needInputs(n, 1, 1); err != nil {
			return err
		}
		if len(ins[0].shape) < 3 {
			return fmt.Errorf("%w: GlobalAveragePool of shape %v", ErrModel, ins[0].shape)
		}
		return c.spatialMean(n, ins[0], true)
	case "ReduceMean":
		return c.reduceMean(n, a, ins)
	case "Gemm", "MatMul":
		return c.gemm(n, a, ins)
	case "Pad":
		return c.pad(n, a, ins)
	case "Upsample":
		return fmt.Errorf("%w: Upsample is not in opsets 11 to 18 (use Resize)", ErrUnsupported)
	}
	return fmt.Errorf("%w: operator %s", ErrUnsupported, n.OpType)
}

// spatial3 places the last values of v (one per spatial axis, up to 3)
// at the end of a (D, H, W) triple filled with fill.
func spatial3(v []int, fill int) [3]int {
	out := [3]int{fill, fill, fill}
	copy(out[3-len(v):], v)
	return out
}

// spatialAttr reads a per-spatial-axis int list attribute (default def
// for every axis).
func spatialAttr(a *attrs, name string, sp int, def int) ([]int, error) {
	v := a.ints(name)
	out := make([]int, sp)
	if v == nil {
		for i := range out {
			out[i] = def
		}
		return out, nil
	}
	if len(v) != sp {
		return nil, fmt.Errorf("%w: attribute %s has %d values for %d spatial axes", ErrModel, name, len(v), sp)
	}
	for i, x := range v {
		if x < 0 || x > 1<<20 {
			return nil, fmt.Errorf("%w: attribute %s = %v", ErrModel, name, v)
		}
		out[i] = int(x)
	}
	return out, nil
}

// windowPads resolves pads and auto_pad for a convolution or pooling
// window over in voxels (kernel extents ext after dilation).
func windowPads(a *attrs, in, ext, stride []int) (begin, end []int, err error) {
	sp := len(in)
	begin, end = make([]int, sp), make([]int, sp)
	switch ap := a.str("auto_pad", "NOTSET"); ap {
	case "NOTSET", "":
		if p := a.ints("pads"); p != nil {
			if len(p) != 2*sp {
				return nil, nil, fmt.Errorf("%w: pads %v for %d spatial axes", ErrModel, p, sp)
			}
			for i := range sp {
				if p[i] < 0 || p[sp+i] < 0 || p[i] > 1<<20 || p[sp+i] > 1<<20 {
					return nil, nil, fmt.Errorf("%w: pads %v", ErrModel, p)
				}
				begin[i], end[i] = int(p[i]), int(p[sp+i])
			}
		}
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		for i := range sp {
			out := (in[i] + stride[i] - 1) / stride[i]
			total := max(0, (out-1)*stride[i]+ext[i]-in[i])
			small := total / 2
			if ap == "SAME_UPPER" {
				begin[i], end[i] = small, total-small
			} else {
				begin[i], end[i] = total-small, small
			}
		}
	default:
		return nil, nil, fmt.Errorf("%w: auto_pad %q", ErrModel, ap)
	}
	return begin, end, nil
}

func checkRank(x *value, what string) (int, error) {
	r := len(x.shape)
	if r < 3 || r > 5 {
		return 0, fmt.Errorf("%w: %s of rank %d (shape %v): 1 to 3 spatial axes are supported", ErrUnsupported, what, r, x.shape)
	}
	return r - 2, nil
}

func (c *compiler) conv(n *Node, a *attrs, ins []*value) error {
	if err := needInputs(n, 2, 3); err != nil {
		return err
	}
	transpose := n.OpType == "ConvTranspose"
	x := ins[0]
	sp, err := checkRank(x, n.OpType)
	if err != nil {
		return err
	}
	w, err := c.constInput(n, 1)
	if err != nil {
		return err
	}
	var bias []float32
	if len(ins) > 2 && ins[2] != nil {
		if ins[2].c == nil {
			return fmt.Errorf("%w: computed bias", ErrUnsupported)
		}
		bias = ins[2].c.float32s()
	}
	if g := a.int("group", 1); g != 1 {
		return fmt.Errorf("%w: group %d (only 1)", ErrUnsupported, g)
	}
	if len(w.shape) != len(x.shape) {
		return fmt.Errorf("%w: weights of shape %v for input %v", ErrModel, w.shape, x.shape)
	}
	cin := x.shape[1]
	cout, wcin := w.shape[0], w.shape[1]
	if transpose {
		cout, wcin = w.shape[1], w.shape[0]
	}
	if wcin != cin {
		return fmt.Errorf("%w: weights %v take %d input channels, input %v has %d", ErrModel, w.shape, wcin, x.shape, cin)
	}
	if bias != nil && len(bias) != cout {
		return fmt.Errorf("%w: %d bias values for %d output channels", ErrModel, len(bias), cout)
	}
	kernel := w.shape[2:]
	if ks := a.ints("kernel_shape"); ks != nil {
		for i := range ks {
			if len(ks) != sp || ks[i] != int64(kernel[i]) {
				return fmt.Errorf("%w: kernel_shape %v, weights %v", ErrModel, ks, w.shape)
			}
		}
	}
	stride, err := spatialAttr(a, "strides", sp, 1)
	if err != nil {
		return err
	}
	dil, err := spatialAttr(a, "dilations", sp, 1)
	if err != nil {
		return err
	}
	ext := make([]int, sp)
	for i := range sp {
		if stride[i] < 1 || dil[i] < 1 {
			return fmt.Errorf("%w: strides %v dilations %v", ErrModel, stride, dil)
		}
		ext[i] = dil[i]*(kernel[i]-1) + 1
	}
	spec := kernels.ConvSpec{
		N: x.shape[0], Cin: cin, Cout: cout, Transpose: transpose, Bias: bias != nil,
		In: spatial3(x.shape[2:], 1), Kernel: spatial3(kernel, 1),
		Stride: spatial3(stride, 1), Dilation: spatial3(dil, 1),
	}
	var pb, pe []int
	if transpose {
		if a.ints("output_shape") != nil {
			return fmt.Errorf("%w: ConvTranspose output_shape", ErrUnsupported)
		}
		if ap := a.str("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "VALID" && ap != "" {
			return fmt.Errorf("%w: ConvTranspose auto_pad %s", ErrUnsupported, ap)
		}
		op, err := spatialAttr(a, "output_padding", sp, 0)
		if err != nil {
			return err
		}
		spec.OutputPadding = spatial3(op, 0)
	}
	pb, pe, err = windowPads(a, x.shape[2:], ext, stride)
	if err != nil {
		return err
	}
	spec.PadBegin, spec.PadEnd = spatial3(pb, 0), spatial3(pe, 0)
	if _, err := spec.Out(); err != nil {
		return fmt.Errorf("%w: %w", ErrModel, err)
	}
	if a.err != nil {
		return a.err
	}
	weights := w.float32s()
	// Fold a BatchNormalization that alone reads the output, then fuse
	// the activation after it.
	outName := n.Outputs[0]
	if j, u := c.soleUser(outName); u != nil && u.OpType == "BatchNormalization" && len(u.Inputs) == 5 && u.Inputs[0] == outName && (len(u.Outputs) == 1 || u.Outputs[1] == "") {
		ua := &attrs{n: u}
		eps := ua.float("epsilon", 1e-5)
		training := ua.int("training_mode", 0)
		var ps [4][]float32
		ok := ua.err == nil && training == 0
		for k := range 4 {
			v := c.vals[u.Inputs[k+1]]
			if v == nil || v.c == nil || v.c.len() != cout {
				ok = false
				break
			}
			ps[k] = v.c.float32s()
		}
		if ok {
			nw, nb, err := kernels.FoldBatchNorm(weights, bias, spec, ps[0], ps[1], ps[2], ps[3], eps)
			if err != nil {
				return fmt.Errorf("%w: folding node %d %q: %w", ErrModel, j, u.Name, err)
			}
			weights, bias, spec.Bias = nw, nb, true
			c.absorbed[j] = true
			outName = u.Outputs[0]
		}
	}
	act, outName, err := c.fuseAct(outName)
	if err != nil {
		return err
	}
	spec.Act = act
	cv, err := c.b.PrepareConv(spec, weights, bias)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrModel, err)
	}
	c.p.convs = append(c.p.convs, cv)
	st, err := c.operand(n.Inputs[0], x)
	if err != nil {
		return err
	}
	out := []int{x.shape[0], cout}
	out = append(out, cv.Out[3-sp:]...)
	return c.addStep(n, outName, []int{st}, out, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		return c.b.RunConv(cv, dst, in[0])
	})
}

func (c *compiler) norm(n *Node, a *attrs, ins []*value) error {
	bn := n.OpType == "BatchNormalization"
	if bn {
		if err := needInputs(n, 5, 5); err != nil {
			return err
		}
		if a.int("training_mode", 0) != 0 {
			return fmt.Errorf("%w: BatchNormalization training_mode", ErrUnsupported)
		}
		for _, o := range n.Outputs[1:] {
			if o != "" {
				return fmt.Errorf("%w: BatchNormalization running-statistics outputs", ErrUnsupported)
			}
		}
	} else if err := needInputs(n, 3, 3); err != nil {
		return err
	}
	x := ins[0]
	if len(x.shape) < 2 || (!bn && len(x.shape) < 3) {
		return fmt.Errorf("%w: %s of shape %v", ErrModel, n.OpType, x.shape)
	}
	nb, ch, sp := x.shape[0], x.shape[1], numel(x.shape[2:])
	eps := a.float("epsilon", 1e-5)
	sts := make([]int, len(ins))
	for k, v := range ins {
		if k > 0 && numel(v.shape) != ch {
			return fmt.Errorf("%w: input %d has shape %v, %d channels", ErrModel, k, v.shape, ch)
		}
		st, err := c.operand(n.Inputs[k], v)
		if err != nil {
			return err
		}
		sts[k] = st
	}
	if a.err != nil {
		return a.err
	}
	act, outName, err := c.fuseAct(n.Outputs[0])
	if err != nil {
		return err
	}
	return c.addStep(n, outName, sts, x.shape, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		if bn {
			return c.b.BatchNorm(dst, in[0], in[1], in[2], in[3], in[4], nb, ch, sp, eps, act)
		}
		return c.b.InstanceNorm(dst, in[0], in[1], in[2], nb, ch, sp, eps, act)
	})
}

func (c *compiler) activation(n *Node, a *attrs, ins []*value) error {
	var act kernels.Activation
	switch n.OpType {
	case "Relu":
		act.Kind = kernels.ActReLU
	case "LeakyRelu":
		act = kernels.Activation{Kind: kernels.ActLeakyReLU, Alpha: a.float("alpha", 0.01)}
	case "Sigmoid":
		act.Kind = kernels.ActSigmoid
	case "Clip":
		// Only Clip(0, +inf), which is Relu.
		if err := needInputs(n, 1, 3); err != nil {
			return err
		}
		lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
		if c.opset >= 11 {
			for k, p := range []*float32{&lo, &hi} {
				if len(ins) > k+1 && ins[k+1] != nil {
					if ins[k+1].c == nil || ins[k+1].c.len() != 1 {
						return fmt.Errorf("%w: Clip bound computed at run time", ErrUnsupported)
					}
					*p = float32(ins[k+1].c.float(0))
				}
			}
		}
		if lo != 0 || !math.IsInf(float64(hi), 1) {
			return fmt.Errorf("%w: Clip to [%v, %v] (only [0, inf])", ErrUnsupported, lo, hi)
		}
		act.Kind = kernels.ActReLU
		ins = ins[:1]
	}
	if n.OpType != "Clip" {
		if err := needInputs(n, 1, 1); err != nil {
			return err
		}
	}
	x := ins[0]
	st, err := c.operand(n.Inputs[0], x)
	if err != nil {
		return err
	}
	nel := numel(x.shape)
	return c.addStep(n, n.Outputs[0], []int{st}, x.shape, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		return c.b.Activate(dst, in[0], nel, act)
	})
}

func (c *compiler) softmax(n *Node, a *attrs, ins []*value) error {
	if err := needInputs(n, 1, 1); err != nil {
		return err
	}
	x := ins[0]
	r := len(x.shape)
	def := int64(-1)
	if c.opset < 13 {
		def = 1
	}
	ax, err := normAxis(a.int("axis", def), r)
	if err != nil {
		return err
	}
	// Before opset 13 Softmax runs over all axes from axis on, flattened.
	nb, ch, sp := numel(x.shape[:ax]), numel(x.shape[ax:]), 1
	if c.opset >= 13 {
		ch, sp = x.shape[ax], numel(x.shape[ax+1:])
	}
	st, err := c.operand(n.Inputs[0], x)
	if err != nil {
		return err
	}
	return c.addStep(n, n.Outputs[0], []int{st}, x.shape, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		return c.b.Softmax(dst, in[0], nb, ch, sp)
	})
}

func (c *compiler) binary(n *Node, ins []*value) error {
	if err := needInputs(n, 2, 2); err != nil {
		return err
	}
	x, y := ins[0], ins[1]
	out, ok := broadcastShape(x.shape, y.shape)
	if !ok {
		return fmt.Errorf("%w: shapes %v and %v do not broadcast", ErrModel, x.shape, y.shape)
	}
	if len(out) > 6 {
		return fmt.Errorf("%w: %s of rank %d (at most 6)", ErrUnsupported, n.OpType, len(out))
	}
	op := map[string]kernels.BinOp{"Add": kernels.OpAdd, "Sub": kernels.OpSub, "Mul": kernels.OpMul, "Div": kernels.OpDiv}[n.OpType]
	sx, err := c.operand(n.Inputs[0], x)
	if err != nil {
		return err
	}
	sy, err := c.operand(n.Inputs[1], y)
	if err != nil {
		return err
	}
	atLeast1 := func(s []int) []int {
		if len(s) == 0 {
			return []int{1}
		}
		return s
	}
	os, xs, ys := atLeast1(out), atLeast1(x.shape), atLeast1(y.shape)
	return c.addStep(n, n.Outputs[0], []int{sx, sy}, out, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		return c.b.Binary(op, dst, in[0], in[1], os, xs, ys)
	})
}

func (c *compiler) concat(n *Node, a *attrs, ins []*value) error {
	if len(ins) == 0 {
		return fmt.Errorf("%w: Concat of nothing", ErrModel)
	}
	r := len(ins[0].shape)
	ax, err := normAxis(a.int("axis", 0), r)
	if err != nil {
		return err
	}
	out := append([]int{}, ins[0].shape...)
	out[ax] = 0
	var sts, inner []int
	for k, v := range ins {
		if v == nil {
			return fmt.Errorf("%w: Concat input %d is empty", ErrModel, k)
		}
		if len(v.shape) != r {
			return fmt.Errorf("%w: Concat input %d has shape %v, input 0 %v", ErrModel, k, v.shape, ins[0].shape)
		}
		for i := range r {
			if i != ax && v.shape[i] != ins[0].shape[i] {
				return fmt.Errorf("%w: Concat input %d has shape %v, input 0 %v (axis %d)", ErrModel, k, v.shape, ins[0].shape, ax)
			}
		}
		out[ax] += v.shape[ax]
		st, err := c.operand(n.Inputs[k], v)
		if err != nil {
			return err
		}
		sts = append(sts, st)
		inner = append(inner, numel(v.shape[ax:]))
	}
	outer := numel(out[:ax])
	return c.addStep(n, n.Outputs[0], sts, out, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		return c.b.Concat(dst, in, outer, inner)
	})
}

func (c *compiler) resize(n *Node, a *attrs, ins []*value) error {
	if err := needInputs(n, 1, 4); err != nil {
		return err
	}
	x := ins[0]
	sp, err := checkRank(x, "Resize")
	if err != nil {
		return err
	}
	if a.int("antialias", 0) != 0 || a.ints("axes") != nil {
		return fmt.Errorf("%w: Resize antialias or axes", ErrUnsupported)
	}
	if p := a.str("keep_aspect_ratio_policy", "stretch"); p != "stretch" {
		return fmt.Errorf("%w: Resize keep_aspect_ratio_policy %s", ErrUnsupported, p)
	}
	spec := kernels.ResizeSpec{N: x.shape[0], C: x.shape[1], In: spatial3(x.shape[2:], 1)}
	switch m := a.str("mode", "nearest"); m {
	case "nearest":
		spec.Mode = kernels.Nearest
	case "linear":
		spec.Mode = kernels.Linear
	default:
		return fmt.Errorf("%w: Resize mode %s", ErrUnsupported, m)
	}
	switch m := a.str("coordinate_transformation_mode", "half_pixel"); m {
	case "half_pixel":
		spec.Coord = kernels.CoordHalfPixel
	case "pytorch_half_pixel":
		spec.Coord = kernels.CoordPyTorchHalfPixel
	case "align_corners":
		spec.Coord = kernels.CoordAlignCorners
	case "asymmetric":
		spec.Coord = kernels.CoordAsymmetric
	default:
		return fmt.Errorf("%w: Resize coordinate_transformation_mode %s", ErrUnsupported, m)
	}
	switch m := a.str("nearest_mode", "round_prefer_floor"); m {
	case "round_prefer_floor":
		spec.Nearest = kernels.NearestRoundPreferFloor
	case "round_prefer_ceil":
		spec.Nearest = kernels.NearestRoundPreferCeil
	case "floor":
		spec.Nearest = kernels.NearestFloor
	case "ceil":
		spec.Nearest = kernels.NearestCeil
	default:
		return fmt.Errorf("%w: Resize nearest_mode %s", ErrModel, m)
	}
	var scales, sizes *hostT
	for k, p := range []**hostT{&scales, &sizes} {
		if len(ins) > k+2 && ins[k+2] != nil {
			if ins[k+2].c == nil {
				return fmt.Errorf("%w: Resize %s computed at run time", ErrUnsupported, [...]string{"scales", "sizes"}[k])
			}
			if ins[k+2].c.len() > 0 {
				*p = ins[k+2].c
			}
		}
	}
	r := len(x.shape)
	out := make([]int, r)
	switch {
	case scales != nil && sizes != nil:
		return fmt.Errorf("%w: Resize with both scales and sizes", ErrModel)
	case sizes != nil:
		if sizes.len() != r {
			return fmt.Errorf("%w: Resize sizes %v for rank %d", ErrModel, sizes.int64s(), r)
		}
		for i := range r {
			s := sizes.int(i)
			if s <= 0 || s > 1<<20 {
				return fmt.Errorf("%w: Resize sizes %v", ErrModel, sizes.int64s())
			}
			out[i] = int(s)
		}
	case scales != nil:
		if scales.len() != r {
			return fmt.Errorf("%w: Resize scales %v for rank %d", ErrModel, scales.float32s(), r)
		}
		var sc []float64
		for i := range r {
			s := scales.float(i)
			if !(s > 0) || s > 1<<10 {
				return fmt.Errorf("%w: Resize scales %v", ErrModel, scales.float32s())
			}
			out[i] = int(math.Floor(float64(x.shape[i]) * s))
			sc = append(sc, s)
		}
		s3 := [3]float64{1, 1, 1}
		copy(s3[3-sp:], sc[2:])
		spec.Scale = s3
	default:
		return fmt.Errorf("%w: Resize without scales or sizes", ErrModel)
	}
	if out[0] != x.shape[0] || out[1] != x.shape[1] {
		return fmt.Errorf("%w: Resize of the batch or channel axis (%v to %v)", ErrUnsupported, x.shape, out)
	}
	spec.Out = spatial3(out[2:], 1)
	if a.err != nil {
		return a.err
	}
	st, err := c.operand(n.Inputs[0], x)
	if err != nil {
		return err
	}
	return c.addStep(n, n.Outputs[0], []int{st}, out, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		return c.b.Resize(dst, in[0], spec)
	})
}

func (c *compiler) pool(n *Node, a *attrs, ins []*value) error {
	if err := needInputs(n, 1, 1); err != nil {
		return err
	}
	if len(n.Outputs) > 1 && n.Outputs[1] != "" {
		return fmt.Errorf("%w: MaxPool indices output", ErrUnsupported)
	}
	x := ins[0]
	sp, err := checkRank(x, n.OpType)
	if err != nil {
		return err
	}
	kernel, err := spatialAttr(a, "kernel_shape", sp, 0)
	if err != nil {
		return err
	}
	stride, err := spatialAttr(a, "strides", sp, 1)
	if err != nil {
		return err
	}
	dil, err := spatialAttr(a, "dilations", sp, 1)
	if err != nil {
		return err
	}
	ext := make([]int, sp)
	for i := range sp {
		if kernel[i] < 1 || stride[i] < 1 || dil[i] < 1 {
			return fmt.Errorf("%w: kernel_shape %v strides %v dilations %v", ErrModel, kernel, stride, dil)
		}
		ext[i] = dil[i]*(kernel[i]-1) + 1
	}
	pb, pe, err := windowPads(a, x.shape[2:], ext, stride)
	if err != nil {
		return err
	}
	spec := kernels.PoolSpec{
		Kind: kernels.MaxPool, N: x.shape[0], C: x.shape[1],
		In: spatial3(x.shape[2:], 1), Kernel: spatial3(kernel, 1), Stride: spatial3(stride, 1),
		Dilation: spatial3(dil, 1), PadBegin: spatial3(pb, 0), PadEnd: spatial3(pe, 0),
		CeilMode: a.int("ceil_mode", 0) != 0, CountIncludePad: a.int("count_include_pad", 0) != 0,
	}
	if n.OpType == "AveragePool" {
		spec.Kind = kernels.AvgPool
	}
	o3, err := spec.Out()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrModel, err)
	}
	if a.err != nil {
		return a.err
	}
	st, err := c.operand(n.Inputs[0], x)
	if err != nil {
		return err
	}
	out := append([]int{x.shape[0], x.shape[1]}, o3[3-sp:]...)
	return c.addStep(n, n.Outputs[0], []int{st}, out, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		return c.b.Pool(dst, in[0], spec)
	})
}

func (c *compiler) gemm(n *Node, a *attrs, ins []*value) error {
	isGemm := n.OpType == "Gemm"
	if isGemm {
		if err := needInputs(n, 2, 3); err != nil {
			return err
		}
	} else if err := needInputs(n, 2, 2); err != nil {
		return err
	}
	x, y := ins[0], ins[1]
	transA, transB := a.int("transA", 0) != 0, a.int("transB", 0) != 0
	alpha, beta := a.float("alpha", 1), a.float("beta", 1)
	var m, k, kb, nn int
	var out []int
	if isGemm {
		if len(x.shape) != 2 || len(y.shape) != 2 {
			return fmt.Errorf("%w: Gemm of shapes %v and %v (rank 2 only)", ErrModel, x.shape, y.shape)
		}
		m, k = x.shape[0], x.shape[1]
		if transA {
			m, k = k, m
		}
		kb, nn = y.shape[0], y.shape[1]
		if transB {
			kb, nn = nn, kb
		}
		out = []int{m, nn}
	} else {
		if len(x.shape) < 2 || len(y.shape) != 2 {
			return fmt.Errorf("%w: MatMul of shapes %v and %v (A of rank 2 or more, B of rank 2)", ErrUnsupported, x.shape, y.shape)
		}
		k = x.shape[len(x.shape)-1]
		m = numel(x.shape) / k
		kb, nn = y.shape[0], y.shape[1]
		out = append(append([]int{}, x.shape[:len(x.shape)-1]...), nn)
	}
	if k != kb {
		return fmt.Errorf("%w: %s of shapes %v and %v: inner dimensions %d and %d", ErrModel, n.OpType, x.shape, y.shape, k, kb)
	}
	sts := make([]int, 2, 3)
	for i, v := range ins[:2] {
		st, err := c.operand(n.Inputs[i], v)
		if err != nil {
			return err
		}
		sts[i] = st
	}
	cLen := 0
	if isGemm && len(ins) > 2 && ins[2] != nil {
		cv := ins[2]
		bs, ok := broadcastShape(cv.shape, []int{m, nn})
		if !ok || len(bs) != 2 || bs[0] != m || bs[1] != nn {
			return fmt.Errorf("%w: Gemm C of shape %v for output %v", ErrModel, cv.shape, []int{m, nn})
		}
		name := n.Inputs[2]
		switch {
		case numel(cv.shape) == m*nn:
			cLen = m * nn
		case cv.c != nil:
			// Broadcast a constant C on the host.
			full := &hostT{shape: []int{m, nn}, flts: make([]float32, m*nn)}
			for i := range full.flts {
				full.flts[i] = float32(cv.c.float(broadcastIndex(i, full.shape, cv.shape)))
			}
			cv = &value{shape: full.shape, c: full}
			name += "\x00full"
			cLen = m * nn
		case numel(cv.shape) == nn && cv.shape[len(cv.shape)-1] == nn:
			cLen = nn
		default:
			return fmt.Errorf("%w: Gemm C of shape %v computed at run time", ErrUnsupported, cv.shape)
		}
		st, err := c.operand(name, cv)
		if err != nil {
			return err
		}
		sts = append(sts, st)
	}
	if a.err != nil {
		return a.err
	}
	return c.addStep(n, n.Outputs[0], sts, out, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		var cb *kernels.Buffer
		if len(in) > 2 {
			cb = in[2]
		}
		return c.b.Gemm(dst, in[0], in[1], cb, m, nn, k, transA, transB, alpha, beta, cLen)
	})
}

// pad is Pad in constant mode on the spatial axes (negative pads crop).
func (c *compiler) pad(n *Node, a *attrs, ins []*value) error {
	if err := needInputs(n, 2, 3); err != nil {
		return err
	}
	if mode := a.str("mode", "constant"); mode != "constant" {
		return fmt.Errorf("%w: Pad mode %s", ErrUnsupported, mode)
	}
	x := ins[0]
	r := len(x.shape)
	if ins[1].c == nil {
		return fmt.Errorf("%w: Pad pads computed at run time", ErrUnsupported)
	}
	pads := ins[1].c.int64s()
	if len(pads) != 2*r {
		return fmt.Errorf("%w: Pad pads %v for rank %d", ErrModel, pads, r)
	}
	var fill float32
	if len(ins) > 2 && ins[2] != nil {
		if ins[2].c == nil || ins[2].c.len() != 1 {
			return fmt.Errorf("%w: Pad constant_value computed at run time", ErrUnsupported)
		}
		fill = float32(ins[2].c.float(0))
	}
	out := make([]int, r)
	zero := true
	for i := range r {
		b, e := pads[i], pads[r+i]
		if b != 0 || e != 0 {
			zero = false
			if i < 2 {
				return fmt.Errorf("%w: Pad of the batch or channel axis (pads %v)", ErrUnsupported, pads)
			}
		}
		o := int64(x.shape[i]) + b + e
		if o <= 0 || o > 1<<20 {
			return fmt.Errorf("%w: Pad of %v by %v", ErrModel, x.shape, pads)
		}
		out[i] = int(o)
	}
	if zero {
		return c.setOutput(n, 0, &value{shape: x.shape, st: x.st, c: x.c})
	}
	if r < 3 || r > 5 {
		return fmt.Errorf("%w: Pad of rank %d", ErrUnsupported, r)
	}
	var off []int
	for i := 2; i < r; i++ {
		off = append(off, -int(pads[i]))
	}
	nb, ch := x.shape[0], x.shape[1]
	src3, dst3, off3 := spatial3(x.shape[2:], 1), spatial3(out[2:], 1), spatial3(off, 0)
	st, err := c.operand(n.Inputs[0], x)
	if err != nil {
		return err
	}
	return c.addStep(n, n.Outputs[0], []int{st}, out, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		return c.b.CropPad(dst, in[0], nb, ch, src3, dst3, off3, fill)
	})
}

// reduceMean runs ReduceMean over every spatial axis (2 to rank-1), what
// torch.mean(x, dim=(2, 3, 4)) exports for a classifier's pooling, as a
// global average pool. Other axis sets are refused. Axes are an attribute
// before opset 18 and a constant input from 18.
func (c *compiler) reduceMean(n *Node, a *attrs, ins []*value) error {
	if err := needInputs(n, 1, 2); err != nil {
		return err
	}
	x := ins[0]
	rank := len(x.shape)
	var axes []int64
	if c.opset >= 18 {
		if len(ins) > 1 && ins[1] != nil {
			if ins[1].c == nil || !ins[1].c.isInt {
				return fmt.Errorf("%w: ReduceMean axes that are not a constant integer tensor", ErrUnsupported)
			}
			axes = ins[1].c.ints
		}
		if len(axes) == 0 && a.int("noop_with_empty_axes", 0) != 0 {
			return fmt.Errorf("%w: ReduceMean with noop_with_empty_axes", ErrUnsupported)
		}
	} else {
		axes = a.ints("axes")
	}
	if len(axes) == 0 { // every axis
		for k := range rank {
			axes = append(axes, int64(k))
		}
	}
	seen := make([]bool, rank)
	for _, ax := range axes {
		if ax < 0 {
			ax += int64(rank)
		}
		if ax < 0 || ax >= int64(rank) || seen[ax] {
			return fmt.Errorf("%w: ReduceMean axes %v for rank %d", ErrModel, axes, rank)
		}
		seen[ax] = true
	}
	if rank < 3 || seen[0] || seen[1] || len(axes) != rank-2 {
		return fmt.Errorf("%w: ReduceMean over axes %v of shape %v (only the spatial axes 2 to %d run)", ErrUnsupported, axes, x.shape, rank-1)
	}
	return c.spatialMean(n, x, a.int("keepdims", 1) != 0)
}

// spatialMean averages every channel of x (N, C, spatial...) over its
// spatial axes, keeping them as 1s when keepDims: GlobalAveragePool, and
// ReduceMean over axes 2 to rank-1.
func (c *compiler) spatialMean(n *Node, x *value, keepDims bool) error {
	st, err := c.operand(n.Inputs[0], x)
	if err != nil {
		return err
	}
	nb, ch, sp := x.shape[0], x.shape[1], numel(x.shape[2:])
	out := []int{nb, ch}
	if keepDims {
		for range x.shape[2:] {
			out = append(out, 1)
		}
	}
	return c.addStep(n, n.Outputs[0], []int{st}, out, func(dst *kernels.Buffer, in []*kernels.Buffer) error {
		return c.b.GlobalAvgPool(dst, in[0], nb, ch, sp)
	})
}
