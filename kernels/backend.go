package kernels

import (
	"errors"
	"fmt"
)

// DType is the element type of a Buffer.
type DType uint8

// Element types.
const (
	Float32 DType = iota + 1
	Int16
	Uint8
)

// Size is the width of one element in bytes.
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case Int16:
		return 2
	case Uint8:
		return 1
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int16:
		return "int16"
	case Uint8:
		return "uint8"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Errors every backend returns (wrapped, with the operation and the
// values involved).
var (
	// ErrShape: a shape, size or parameter is invalid, or a buffer is too
	// small or of the wrong type for the shape given.
	ErrShape = errors.New("kernels: invalid shape or parameter")
	// ErrBackend: a buffer or plan belongs to another backend, or was
	// freed.
	ErrBackend = errors.New("kernels: buffer from another backend or already freed")
	// ErrNoDevice: Open was asked for CUDA and none can be used.
	ErrNoDevice = errors.New("kernels: no CUDA device")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("kernels: backend closed")
)

// Buffer is memory owned by one backend: Len elements of DType. Get one
// from Backend.Alloc and give it back with Backend.Free, which keeps it in
// the backend's pool for the next Alloc of a similar size.
type Buffer struct {
	dtype DType
	n     int
	owner Backend

	// CPU storage: the slice of dtype, cap(slice) >= n.
	f32 []float32
	i16 []int16
	u8  []uint8

	// Device storage (CUDA): pointer and capacity in bytes.
	ptr   uintptr
	bytes int

	freed bool
}

// DType is the element type.
func (b *Buffer) DType() DType { return b.dtype }

// Len is the number of elements.
func (b *Buffer) Len() int { return b.n }

// Bytes is Len times the element size.
func (b *Buffer) Bytes() int { return b.n * b.dtype.Size() }

// ActKind names an activation function.
type ActKind uint8

// Activations. The zero Activation is the identity.
const (
	ActNone ActKind = iota
	ActReLU
	ActLeakyReLU // x if x >= 0 else Alpha*x
	ActSigmoid
)

// Activation is an element-wise function fused after an operation (or run
// alone by Backend.Activate).
type Activation struct {
	Kind  ActKind
	Alpha float32 // LeakyReLU slope for x < 0 (ONNX default 0.01)
}

// BinOp is an element-wise binary operation.
type BinOp uint8

// Binary operations.
const (
	OpAdd BinOp = iota + 1
	OpSub
	OpMul
	OpDiv
)

// Window maps real-world values (HU) into a network's input range:
// out = (v - (Center - Width/2)) / Width, clamped to [0, 1] when Clip.
// A Width of 0 leaves values unchanged.
type Window struct {
	Center, Width float32
	Clip          bool
}

// Interp is an interpolation method.
type Interp uint8

// Interpolations.
const (
	Linear  Interp = iota // trilinear
	Nearest               // nearest neighbour (round half up, as floor(x+0.5))
)

// AxisMap maps a destination voxel index to a source one, axis by axis:
// src[a] = Offset[a] + Scale[a]*dst[a], in (D, H, W) order and in units of
// voxel indices (voxel centres at integers).
type AxisMap struct {
	Scale, Offset [3]float64
}

// ConvSpec describes a 3D convolution or transposed convolution over a
// batch of N volumes of Cin channels, each In voxels (D, H, W).
type ConvSpec struct {
	N, Cin, Cout int
	In           [3]int
	Kernel       [3]int
	Stride       [3]int // 0 means 1
	Dilation     [3]int // 0 means 1
	PadBegin     [3]int
	PadEnd       [3]int
	// OutputPadding adds voxels at the end of each axis of a transposed
	// convolution's output (ONNX output_padding).
	OutputPadding [3]int
	Transpose     bool
	// Bias says whether a bias is given (one value per output channel).
	Bias bool
	// Act is applied after the bias.
	Act Activation
}

// Out is the output size (D, H, W), or ErrShape.
func (s ConvSpec) Out() ([3]int, error) {
	var out [3]int
	if s.N <= 0 || s.Cin <= 0 || s.Cout <= 0 {
		return out, fmt.Errorf("%w: conv N=%d Cin=%d Cout=%d", ErrShape, s.N, s.Cin, s.Cout)
	}
	for a := 0; a < 3; a++ {
		k, st, dl := s.Kernel[a], max(s.Stride[a], 1), max(s.Dilation[a], 1)
		if k <= 0 || s.In[a] <= 0 || s.PadBegin[a] < 0 || s.PadEnd[a] < 0 || s.OutputPadding[a] < 0 {
			return out, fmt.Errorf("%w: conv axis %d: in %d kernel %d pads %d,%d", ErrShape, a, s.In[a], k, s.PadBegin[a], s.PadEnd[a])
		}
		ext := dl*(k-1) + 1
		if s.Transpose {
			if s.OutputPadding[a] >= max(st, dl) {
				return out, fmt.Errorf("%w: conv-transpose axis %d: output padding %d not below stride %d or dilation %d", ErrShape, a, s.OutputPadding[a], st, dl)
			}
			out[a] = st*(s.In[a]-1) + s.OutputPadding[a] + ext - s.PadBegin[a] - s.PadEnd[a]
		} else {
			if s.OutputPadding[a] != 0 {
				return out, fmt.Errorf("%w: output padding on a convolution", ErrShape)
			}
			span := s.In[a] + s.PadBegin[a] + s.PadEnd[a] - ext
			if span < 0 {
				out[a] = 0
			} else {
				out[a] = span/st + 1
			}
		}
		if out[a] <= 0 {
			return out, fmt.Errorf("%w: conv axis %d: output size %d", ErrShape, a, out[a])
		}
	}
	return out, nil
}

// WeightLen is the number of weights the spec takes.
func (s ConvSpec) WeightLen() int {
	return s.Cout * s.Cin * s.Kernel[0] * s.Kernel[1] * s.Kernel[2]
}

// Conv is a convolution prepared by Backend.PrepareConv: the weights
// packed (and copied to the device) once, for many Backend.Conv calls.
type Conv struct {
	Spec  ConvSpec
	Out   [3]int
	owner Backend
	impl  any // backend-private packed weights
}

// PoolKind is a pooling function.
type PoolKind uint8

// Pooling functions.
const (
	MaxPool PoolKind = iota + 1
	AvgPool
)

// PoolSpec describes MaxPool3d or AveragePool3d over N×C volumes of In
// voxels (ONNX semantics: padded voxels never win a max; an average counts
// them only with CountIncludePad).
type PoolSpec struct {
	Kind            PoolKind
	N, C            int
	In              [3]int
	Kernel          [3]int
	Stride          [3]int // 0 means 1
	Dilation        [3]int // 0 means 1 (max pooling only)
	PadBegin        [3]int
	PadEnd          [3]int
	CeilMode        bool
	CountIncludePad bool
}

// ResizeCoord is how a Resize maps output to input coordinates (ONNX
// coordinate_transformation_mode).
type ResizeCoord uint8

// Resize coordinate modes.
const (
	CoordHalfPixel        ResizeCoord = iota // (x+0.5)/scale-0.5
	CoordPyTorchHalfPixel                    // as half_pixel, but 0 when the output length is 1
	CoordAlignCorners                        // x*(in-1)/(out-1)
	CoordAsymmetric                          // x/scale
)

// ResizeNearest is how a nearest-neighbour Resize rounds (ONNX
// nearest_mode).
type ResizeNearest uint8

// Nearest modes.
const (
	NearestRoundPreferFloor ResizeNearest = iota
	NearestRoundPreferCeil
	NearestFloor
	NearestCeil
)

// ResizeSpec describes a Resize of N×C volumes from In to Out voxels.
// Scale is out/in per axis unless set (ONNX scales, used by half_pixel and
// asymmetric).
type ResizeSpec struct {
	N, C    int
	In, Out [3]int
	Scale   [3]float64 // 0: Out/In
	Mode    Interp
	Coord   ResizeCoord
	Nearest ResizeNearest
}

// BilateralParams are the parameters of Backend.Bilateral. Sigmas are in
// voxels along (D, H, W); the range sigma in the units of the values (HU).
type BilateralParams struct {
	SigmaSpatial [3]float64
	SigmaRange   float64
	// Radius of the window per axis; 0 means ceil(3*SigmaSpatial).
	Radius [3]int
}

// NLMParams are the parameters of Backend.NLM, non-local means with the
// semantics of scikit-image 0.19's denoise_nl_means(fast_mode=True,
// patch_size=2P+1, patch_distance=S, h=H, sigma=Sigma), P = PatchRadius
// and S = SearchRadius: out(x) = Σ_y w(x,y) v(y) / Σ_y w(x,y) over the
// voxels y within S of x on every axis that lie in the volume, with
//
//	w(x,y) = exp(-max(Σ_u [(v(x+u) - v(y+u))² - 2·Sigma²], 0) / ((2P+1)³·H²))
//
// and u the patch offsets [1-P, P]³ (the voxel itself when P is 0);
// patch voxels outside the volume are mirrored as numpy's "reflect".
// Like scikit-image's integral-image box, the patch is (2P)³ voxels (its
// faces at -P left out) while the sum is divided by (2P+1)³: on the mean
// over the patch this is an h of H·√((2P+1)³/(2P)³) (1.40·H at P = 2),
// which is how scikit-image's fast mode reads its h. Two deliberate
// differences: the search window is clipped to the volume (scikit-image
// also averages mirrored copies of the border voxels, counting them
// twice), which raised PSNR on CT (ct-head-5mm, 20 HU noise: 48.19 dB
// against 48.16 at H = 16, 48.89 against 48.80 at H = 28); and the weight
// is the exact exponential, with none of scikit-image's cut-off at
// exp(-5) or its approximate exp. With P = 0 scikit-image compares empty
// patches (a box mean), ours single voxels.
type NLMParams struct {
	PatchRadius, SearchRadius int
	H, Sigma                  float64
}

// PoolStats counts a backend's buffer pool.
type PoolStats struct {
	Allocs    int64 // Alloc calls that allocated fresh memory
	Reuses    int64 // Alloc calls served from the pool
	InUse     int64 // bytes held by live buffers
	Pooled    int64 // bytes kept in the pool for reuse
	PeakInUse int64
}

// Backend is a compute backend. Methods are safe for use by one goroutine
// at a time (a triage worker owns its backend); the CPU backend's
// operations are themselves parallel over cores.
type Backend interface {
	// Name says what runs the kernels: "cpu (2 threads)", "cuda (NVIDIA
	// H100 …)".
	Name() string

	// Alloc returns a buffer of n elements, from the pool when one of a
	// fitting size is free. Its contents are undefined.
	Alloc(dt DType, n int) (*Buffer, error)
	// Free returns a buffer to the pool. Freeing nil is a no-op.
	Free(b *Buffer)
	// Upload copies a host slice ([]float32, []int16 or []uint8, of the
	// buffer's type and at most its length) into the start of dst.
	Upload(dst *Buffer, src any) error
	// Download copies the start of src into a host slice of its type,
	// waiting for pending work.
	Download(dst any, src *Buffer) error
	// Sync waits for every operation issued so far.
	Sync() error
	// Stats reports the buffer pool.
	Stats() PoolStats
	// Close frees every pooled buffer and the device context.
	Close() error

	// Copy copies n elements of src to dst (same type).
	Copy(dst, src *Buffer, n int) error
	// Fill sets the first n elements of a float32 buffer to v.
	Fill(dst *Buffer, n int, v float32) error

	// Rescale maps n stored values (int16 or float32) to float32:
	// v = src*slope + intercept, then the window. Works in place for
	// float32.
	Rescale(dst, src *Buffer, n int, slope, intercept float32, w Window) error
	// Resample fills a dst volume of dstSize voxels from a src volume of
	// srcSize, both float32 and single-channel, sampling src at
	// m(dst index); points outside src take fill.
	Resample(dst, src *Buffer, dstSize, srcSize [3]int, m AxisMap, mode Interp, fill float32) error
	// Flip reverses the marked spatial axes of n×c volumes of size voxels.
	Flip(dst, src *Buffer, n, c int, size [3]int, axes [3]bool) error
	// CropPad copies n×c volumes of srcSize into dstSize: dst voxel p
	// takes src voxel p+offset, or fill when that is outside src.
	CropPad(dst, src *Buffer, n, c int, srcSize, dstSize [3]int, offset [3]int, fill float32) error

	// Gaussian is a separable 3D Gaussian filter of a single-channel
	// volume: sigma in voxels per axis (0: that axis untouched), the
	// kernel truncated at truncate sigmas (scipy's default 4), borders
	// mirrored as scipy.ndimage's "reflect" (d c b a | a b c d).
	Gaussian(dst, src *Buffer, size [3]int, sigma [3]float64, truncate float64) error
	// Bilateral is an edge-preserving 3D bilateral filter.
	Bilateral(dst, src *Buffer, size [3]int, p BilateralParams) error
	// NLM is 3D non-local means.
	NLM(dst, src *Buffer, size [3]int, p NLMParams) error

	// PrepareConv packs the weights ([Cout,Cin,k...] or, transposed,
	// [Cin,Cout,k...]) and bias (Cout values, or nil) of a convolution.
	PrepareConv(spec ConvSpec, weights, bias []float32) (*Conv, error)
	// RunConv runs a prepared convolution: src is N×Cin×In, dst
	// N×Cout×Out, bias and activation fused.
	RunConv(c *Conv, dst, src *Buffer) error
	// ReleaseConv frees a prepared convolution's packed weights.
	ReleaseConv(c *Conv)

	// Pool is MaxPool3d or AveragePool3d; dst is N×C×PoolOut(spec).
	Pool(dst, src *Buffer, p PoolSpec) error
	// GlobalAvgPool averages each of n×c channels of spatial voxels.
	GlobalAvgPool(dst, src *Buffer, n, c, spatial int) error
	// InstanceNorm normalises each of n×c channels of spatial voxels to
	// zero mean and unit variance (biased variance, plus eps), then scales
	// and shifts per channel (scale and bias hold c values) and applies
	// act.
	InstanceNorm(dst, src, scale, bias *Buffer, n, c, spatial int, eps float32, act Activation) error
	// BatchNorm applies inference batch normalisation per channel with
	// running mean and variance, then act.
	BatchNorm(dst, src, scale, bias, mean, variance *Buffer, n, c, spatial int, eps float32, act Activation) error
	// Activate applies act to n elements; works in place.
	Activate(dst, src *Buffer, n int, act Activation) error
	// Softmax over the channel axis of n×c×spatial; works in place.
	Softmax(dst, src *Buffer, n, c, spatial int) error
	// Binary computes dst = a op b with NumPy broadcasting: outShape is
	// the broadcast shape, aShape and bShape the operands' (up to 6 dims,
	// right-aligned). Works in place when dst is a and aShape is outShape.
	Binary(op BinOp, dst, a, b *Buffer, outShape, aShape, bShape []int) error
	// Concat joins srcs along one axis: each src is outer×inner[i]
	// elements, dst outer×sum(inner) (for channels: outer = N, inner[i] =
	// C_i×spatial).
	Concat(dst *Buffer, srcs []*Buffer, outer int, inner []int) error
	// Resize is ONNX Resize (nearest or trilinear) of N×C volumes.
	Resize(dst, src *Buffer, r ResizeSpec) error
	// Gemm computes dst[m×n] = alpha*op(a)·op(b) + beta*c, op transposing
	// when asked (a is m×k, or k×m when transA; b is k×n, or n×k when
	// transB). c may be nil, n values (broadcast over rows), m values
	// (broadcast over columns, cLen == m) or m×n.
	Gemm(dst, a, b, c *Buffer, m, n, k int, transA, transB bool, alpha, beta float32, cLen int) error

	// Sum and Max reduce n float32 elements to one (Sum in float64).
	Sum(src *Buffer, n int) (float64, error)
	Max(src *Buffer, n int) (float32, error)
	// Argmax writes, for each of n×spatial voxels, the channel (of c,
	// at most 256) with the largest value (the first on ties) into a
	// uint8 buffer.
	Argmax(dst, src *Buffer, n, c, spatial int) error
	// CountAbove counts the n elements greater than threshold.
	CountAbove(src *Buffer, n int, threshold float32) (int64, error)
}

// PoolOut is the output size (D, H, W) of a pooling, or ErrShape.
func (p PoolSpec) Out() ([3]int, error) {
	var out [3]int
	if p.N <= 0 || p.C <= 0 || (p.Kind != MaxPool && p.Kind != AvgPool) {
		return out, fmt.Errorf("%w: pool N=%d C=%d kind %d", ErrShape, p.N, p.C, p.Kind)
	}
	for a := 0; a < 3; a++ {
		k, st, dl := p.Kernel[a], max(p.Stride[a], 1), max(p.Dilation[a], 1)
		if k <= 0 || p.In[a] <= 0 || p.PadBegin[a] < 0 || p.PadEnd[a] < 0 || p.PadBegin[a] >= k || p.PadEnd[a] >= k {
			return out, fmt.Errorf("%w: pool axis %d: in %d kernel %d pads %d,%d", ErrShape, a, p.In[a], k, p.PadBegin[a], p.PadEnd[a])
		}
		if p.Kind == AvgPool && dl != 1 {
			return out, fmt.Errorf("%w: average pool with dilation", ErrShape)
		}
		span := p.In[a] + p.PadBegin[a] + p.PadEnd[a] - (dl*(k-1) + 1)
		if span < 0 {
			return out, fmt.Errorf("%w: pool axis %d: window larger than the padded input", ErrShape, a)
		}
		o := span/st + 1
		if p.CeilMode {
			o = (span+st-1)/st + 1
			// The last window must start inside the input or its left
			// padding (ONNX and PyTorch).
			if (o-1)*st >= p.In[a]+p.PadBegin[a] {
				o--
			}
		}
		// With dilation, a window that starts in the left padding can
		// skip over the whole input: refuse it (PyTorch answers -inf).
		for w := 0; w < o && w*st < p.PadBegin[a]; w++ {
			s := w*st - p.PadBegin[a]
			if first := s + (-s+dl-1)/dl*dl; first >= p.In[a] {
				return out, fmt.Errorf("%w: pool axis %d: window %d lies wholly in the padding", ErrShape, a, w)
			}
		}
		out[a] = o
	}
	return out, nil
}

// Voxels is the product of a size.
func Voxels(s [3]int) int { return s[0] * s[1] * s[2] }
