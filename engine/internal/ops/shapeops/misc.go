package shapeops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// blockMove is DepthToSpace or SpaceToDepth: a reshape to 6-D, a
// transpose and a reshape back to 4-D, done as one strided copy.
type blockMove struct {
	b       int
	toSpace bool
	crd     bool // DepthToSpace mode CRD (else DCR)
}

func newDepthToSpace(n *graph.Node, opset int) (op.Kernel, error) {
	b := n.Int("blocksize", 0)
	if b < 1 {
		return nil, op.Errorf(n, "blocksize %d must be at least 1", b)
	}
	k := blockMove{b: int(b), toSpace: true}
	switch m := n.Str("mode", "DCR"); m {
	case "DCR":
	case "CRD":
		k.crd = true
	default:
		return nil, op.Errorf(n, "mode %q is not supported (DCR or CRD)", m)
	}
	return stridedKernel{plan: k.plan}, nil
}

func newSpaceToDepth(n *graph.Node, opset int) (op.Kernel, error) {
	b := n.Int("blocksize", 0)
	if b < 1 {
		return nil, op.Errorf(n, "blocksize %d must be at least 1", b)
	}
	return stridedKernel{plan: blockMove{b: int(b)}.plan}, nil
}

func (k blockMove) plan(in []*tensor.Tensor) ([]int, strided, error) {
	x := in[0]
	if x.Rank() != 4 {
		return nil, strided{}, fmt.Errorf("input 0 has shape %v, want 4-D [N C H W]", x.Shape)
	}
	n, c, h, w, b := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], k.b
	var six, perm, out []int
	switch {
	case k.toSpace:
		if c%(b*b) != 0 {
			return nil, strided{}, fmt.Errorf("input 0 has shape %v: %d channels are not a multiple of blocksize² = %d", x.Shape, c, b*b)
		}
		cc := c / (b * b)
		if k.crd {
			six, perm = []int{n, cc, b, b, h, w}, []int{0, 1, 4, 2, 5, 3}
		} else {
			six, perm = []int{n, b, b, cc, h, w}, []int{0, 3, 4, 1, 5, 2}
		}
		out = []int{n, cc, h * b, w * b}
	default:
		if h%b != 0 || w%b != 0 {
			return nil, strided{}, fmt.Errorf("input 0 has shape %v: height and width are not multiples of blocksize %d", x.Shape, b)
		}
		six, perm = []int{n, c, h / b, b, w / b, b}, []int{0, 3, 5, 1, 2, 4}
		out = []int{n, c * b * b, h / b, w / b}
	}
	st := tensor.Strides(six)
	v := strided{shape: make([]int, 6), strides: make([]int, 6)}
	for i, p := range perm {
		v.shape[i] = six[p]
		v.strides[i] = st[p]
	}
	return out, v, nil
}

// trilu is Trilu: the upper (or lower) triangle of the last two axes,
// from diagonal k (input 1, default 0); the rest is zero.
type trilu struct {
	upper bool
}

func newTrilu(n *graph.Node, opset int) (op.Kernel, error) {
	return trilu{upper: n.Int("upper", 1) != 0}, nil
}

// keep reports whether element (i, j) of a matrix survives.
func (k trilu) keep(i, j int, diag int64) bool {
	if k.upper {
		return int64(j-i) >= diag
	}
	return int64(j-i) <= diag
}

func (k trilu) diag(in []*tensor.Tensor) (int64, error) {
	if op.Arg(in, 1) == nil {
		return 0, nil
	}
	t := in[1]
	if t.DType != tensor.Int64 || t.Len() != 1 {
		return 0, fmt.Errorf("input 1 (k) is %s%v, want an int64 scalar", t.DType, t.Shape)
	}
	return t.I[0], nil
}

// triluMask copies src to dst (of equal length) keeping the triangle only.
func triluMask[T elem](k trilu, dst, src []T, rows, cols int, diag int64) {
	if rows*cols == 0 {
		return
	}
	m := len(src) / (rows * cols)
	for b := range m {
		for i := range rows {
			o := (b*rows + i) * cols
			for j := range cols {
				if k.keep(i, j, diag) {
					dst[o+j] = src[o+j]
				}
			}
		}
	}
}

func (k trilu) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	if x.Rank() < 2 {
		return nil, fmt.Errorf("input 0 has shape %v, want at least 2-D", x.Shape)
	}
	d, err := k.diag(in)
	if err != nil {
		return nil, err
	}
	r, c := x.Shape[x.Rank()-2], x.Shape[x.Rank()-1]
	out := like(x.DType, x.Shape)
	switch x.DType {
	case tensor.Float32:
		triluMask(k, out.F, x.F, r, c, d)
	case tensor.Int64:
		triluMask(k, out.I, x.I, r, c, d)
	case tensor.Bool:
		triluMask(k, out.B, x.B, r, c, d)
	}
	return []*tensor.Tensor{out}, nil
}

func (k trilu) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return dataGrad(in, need, func(g []float32) error {
		d, err := k.diag(in)
		if err != nil || gout[0] == nil {
			return err
		}
		x := in[0]
		triluMask(k, g, gout[0].F, x.Shape[x.Rank()-2], x.Shape[x.Rank()-1], d)
		return nil
	})
}
