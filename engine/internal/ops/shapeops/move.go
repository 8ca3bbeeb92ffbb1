package shapeops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// transpose is Transpose with a fixed perm, or the reversed axes when the
// node has none (perm nil).
type transpose struct {
	perm []int
}

func newTranspose(n *graph.Node, opset int) (op.Kernel, error) {
	if !n.Has("perm") {
		return transpose{}, nil
	}
	p := n.Ints("perm", nil)
	perm := make([]int, len(p))
	seen := make([]bool, len(p))
	for i, v := range p {
		if v < 0 {
			v += int64(len(p))
		}
		if v < 0 || v >= int64(len(p)) || seen[v] {
			return nil, op.Errorf(n, "perm %v is not a permutation of 0..%d", p, len(p)-1)
		}
		seen[v] = true
		perm[i] = int(v)
	}
	return transpose{perm: perm}, nil
}

func (k transpose) permFor(rank int) ([]int, error) {
	if k.perm == nil {
		p := make([]int, rank)
		for i := range p {
			p[i] = rank - 1 - i
		}
		return p, nil
	}
	if len(k.perm) != rank {
		return nil, fmt.Errorf("perm %v has %d entries, input 0 has rank %d", k.perm, len(k.perm), rank)
	}
	return k.perm, nil
}

// permute returns x transposed by perm.
func permute(x *tensor.Tensor, perm []int) *tensor.Tensor {
	st := tensor.Strides(x.Shape)
	shape := make([]int, len(perm))
	strides := make([]int, len(perm))
	for i, p := range perm {
		shape[i] = x.Shape[p]
		strides[i] = st[p]
	}
	return gatherAny(x, strided{shape: shape, strides: strides}, shape)
}

func (k transpose) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	perm, err := k.permFor(x.Rank())
	if err != nil {
		return nil, err
	}
	return []*tensor.Tensor{permute(x, perm)}, nil
}

func (k transpose) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if !op.Needs(need, 0) || in[0].DType != tensor.Float32 {
		return grads, nil
	}
	perm, err := k.permFor(in[0].Rank())
	if err != nil {
		return nil, err
	}
	if gout[0] == nil {
		grads[0] = tensor.New(in[0].Shape...)
		return grads, nil
	}
	inv := make([]int, len(perm))
	for i, p := range perm {
		inv[p] = i
	}
	grads[0] = permute(gout[0], inv)
	return grads, nil
}

// concat is Concat along axis.
type concat struct {
	axis int64
}

func newConcat(n *graph.Node, opset int) (op.Kernel, error) {
	if !n.Has("axis") {
		return nil, op.Errorf(n, "Concat needs the axis attribute")
	}
	return concat{axis: n.Int("axis", 0)}, nil
}

func (k concat) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	x0, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	r := x0.Rank()
	axis, err := op.NormAxis(k.axis, r)
	if err != nil {
		return nil, fmt.Errorf("input 0 of shape %v: %v", x0.Shape, err)
	}
	shape := copyShape(x0.Shape)
	shape[axis] = 0
	for i := range in {
		x, err := op.AnyArg(in, i)
		if err != nil {
			return nil, err
		}
		if x.DType != x0.DType {
			return nil, fmt.Errorf("input %d is %s, input 0 is %s", i, x.DType, x0.DType)
		}
		if x.Rank() != r {
			return nil, fmt.Errorf("input %d has shape %v, input 0 has %v: ranks differ", i, x.Shape, x0.Shape)
		}
		for d := range r {
			if d != axis && x.Shape[d] != x0.Shape[d] {
				return nil, fmt.Errorf("input %d has shape %v, input 0 has %v: they differ off axis %d", i, x.Shape, x0.Shape, axis)
			}
		}
		shape[axis] += x.Shape[axis]
	}
	out := like(x0.DType, shape)
	outer := tensor.Size(shape[:axis])
	inner := tensor.Size(shape[axis+1:])
	rowOut := shape[axis] * inner
	off := 0
	for _, x := range in {
		w := x.Shape[axis] * inner
		switch x.DType {
		case tensor.Float32:
			copyBlocks(out.F, x.F, outer, w, rowOut, off)
		case tensor.Int64:
			copyBlocks(out.I, x.I, outer, w, rowOut, off)
		case tensor.Bool:
			copyBlocks(out.B, x.B, outer, w, rowOut, off)
		}
		off += w
	}
	return []*tensor.Tensor{out}, nil
}

// copyBlocks copies outer rows of w elements from src into dst rows of
// stride dstRow starting at column off (Concat).
func copyBlocks[T elem](dst, src []T, outer, w, dstRow, off int) {
	moveBlocks(dst, dstRow, off, src, w, 0, outer, w)
}

// extractBlocks is the inverse of copyBlocks: rows of w elements taken from
// column off of src rows of stride srcRow (Split).
func extractBlocks[T elem](dst, src []T, outer, w, srcRow, off int) {
	moveBlocks(dst, w, 0, src, srcRow, off, outer, w)
}

// moveBlocks copies, for o in [0, outer), the w elements of src from
// o*srcRow+srcOff to dst from o*dstRow+dstOff.
func moveBlocks[T elem](dst []T, dstRow, dstOff int, src []T, srcRow, srcOff, outer, w int) {
	if w == 0 {
		return
	}
	par.For(outer, par.Grain(w), func(lo, hi int) {
		for o := lo; o < hi; o++ {
			d, s := o*dstRow+dstOff, o*srcRow+srcOff
			copy(dst[d:d+w], src[s:s+w])
		}
	})
}

func (k concat) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if in[0].DType != tensor.Float32 {
		return grads, nil
	}
	g := gout[0]
	axis, err := op.NormAxis(k.axis, in[0].Rank())
	if err != nil {
		return nil, err
	}
	shape := out[0].Shape
	outer := tensor.Size(shape[:axis])
	inner := tensor.Size(shape[axis+1:])
	off := 0
	for i, x := range in {
		w := x.Shape[axis] * inner
		if op.Needs(need, i) {
			grads[i] = tensor.New(x.Shape...)
			if g != nil {
				extractBlocks(grads[i].F, g.F, outer, w, shape[axis]*inner, off)
			}
		}
		off += w
	}
	return grads, nil
}

// split is Split into a fixed number of outputs.
type split struct {
	axis   int64
	parts  []int64 // split attribute (before opset 13); nil otherwise
	outs   int
	uneven bool // opset 18: the last part may be smaller
}

func newSplit(n *graph.Node, opset int) (op.Kernel, error) {
	k := split{axis: n.Int("axis", 0), outs: len(n.Outputs), uneven: opset >= 18}
	if n.Has("num_outputs") {
		if no := n.Int("num_outputs", 0); int(no) != k.outs {
			return nil, op.Errorf(n, "num_outputs is %d but the node has %d outputs", no, k.outs)
		}
	}
	if n.Has("split") {
		k.parts = n.Ints("split", nil)
		if len(k.parts) != k.outs {
			return nil, op.Errorf(n, "split %v has %d parts but the node has %d outputs", k.parts, len(k.parts), k.outs)
		}
	}
	if k.outs == 0 {
		return nil, op.Errorf(n, "Split has no outputs")
	}
	return k, nil
}

// sizes returns the part sizes along the axis of length dim.
func (k split) sizes(in []*tensor.Tensor, dim int) ([]int, error) {
	parts := k.parts
	if op.Arg(in, 1) != nil {
		p, err := intList(in, 1, "split")
		if err != nil {
			return nil, err
		}
		parts = p
	}
	out := make([]int, k.outs)
	if parts != nil {
		if len(parts) != k.outs {
			return nil, fmt.Errorf("split %v has %d parts, the node has %d outputs", parts, len(parts), k.outs)
		}
		sum := 0
		for i, p := range parts {
			if p < 0 {
				return nil, fmt.Errorf("split %v has a negative part", parts)
			}
			out[i] = int(p)
			sum += int(p)
		}
		if sum != dim {
			return nil, fmt.Errorf("split %v sums to %d, the axis has length %d", parts, sum, dim)
		}
		return out, nil
	}
	if dim%k.outs == 0 {
		for i := range out {
			out[i] = dim / k.outs
		}
		return out, nil
	}
	if !k.uneven {
		return nil, fmt.Errorf("axis of length %d does not split into %d equal parts", dim, k.outs)
	}
	c := (dim + k.outs - 1) / k.outs
	rest := dim
	for i := range out {
		out[i] = min(c, rest)
		rest -= out[i]
	}
	return out, nil
}

func (k split) geometry(x *tensor.Tensor, in []*tensor.Tensor) (int, []int, error) {
	axis, err := op.NormAxis(k.axis, x.Rank())
	if err != nil {
		return 0, nil, fmt.Errorf("input 0 of shape %v: %v", x.Shape, err)
	}
	sizes, err := k.sizes(in, x.Shape[axis])
	return axis, sizes, err
}

func (k split) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	axis, sizes, err := k.geometry(x, in)
	if err != nil {
		return nil, err
	}
	outer := tensor.Size(x.Shape[:axis])
	inner := tensor.Size(x.Shape[axis+1:])
	row := x.Shape[axis] * inner
	res := make([]*tensor.Tensor, len(sizes))
	off := 0
	for i, s := range sizes {
		shape := copyShape(x.Shape)
		shape[axis] = s
		o := like(x.DType, shape)
		w := s * inner
		switch x.DType {
		case tensor.Float32:
			extractBlocks(o.F, x.F, outer, w, row, off)
		case tensor.Int64:
			extractBlocks(o.I, x.I, outer, w, row, off)
		case tensor.Bool:
			extractBlocks(o.B, x.B, outer, w, row, off)
		}
		res[i] = o
		off += w
	}
	return res, nil
}

func (k split) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return dataGrad(in, need, func(g []float32) error {
		x := in[0]
		axis, sizes, err := k.geometry(x, in)
		if err != nil {
			return err
		}
		outer := tensor.Size(x.Shape[:axis])
		inner := tensor.Size(x.Shape[axis+1:])
		row := x.Shape[axis] * inner
		off := 0
		for i, s := range sizes {
			w := s * inner
			if gi := op.GradAt(gout, i); gi != nil {
				copyBlocks(g, gi.F, outer, w, row, off)
			}
			off += w
		}
		return nil
	})
}
