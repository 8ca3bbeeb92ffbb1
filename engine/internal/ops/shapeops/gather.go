package shapeops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// gather is Gather: slices of the data along axis picked by integer
// indices (how exported models look up embeddings).
type gather struct {
	axis int64
}

func newGather(n *graph.Node, opset int) (op.Kernel, error) {
	return gather{axis: n.Int("axis", 0)}, nil
}

// gatherIndices checks the indices t (input 1) and returns their values
// normalized to [0, dim).
func gatherIndices(t *tensor.Tensor, dim int, axis int, dataShape []int) ([]int, error) {
	if t.DType != tensor.Int64 {
		return nil, fmt.Errorf("input 1 (indices) is %s, want int64", t.DType)
	}
	idx := make([]int, len(t.I))
	for i, v := range t.I {
		w := v
		if w < 0 {
			w += int64(dim)
		}
		if w < 0 || w >= int64(dim) {
			return nil, fmt.Errorf("index %d (input 1, element %d) is out of range for axis %d of size %d (input 0 has shape %v)", v, i, axis, dim, dataShape)
		}
		idx[i] = int(w)
	}
	return idx, nil
}

type gatherPlan struct {
	axis, outer, dim, inner int
	idx                     []int
	outShape                []int
}

func (k gather) plan(in []*tensor.Tensor) (gatherPlan, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return gatherPlan{}, err
	}
	axis, err := op.NormAxis(k.axis, x.Rank())
	if err != nil {
		return gatherPlan{}, fmt.Errorf("input 0 of shape %v: %v", x.Shape, err)
	}
	ind, err := op.AnyArg(in, 1)
	if err != nil {
		return gatherPlan{}, err
	}
	p := gatherPlan{axis: axis, outer: tensor.Size(x.Shape[:axis]), dim: x.Shape[axis], inner: tensor.Size(x.Shape[axis+1:])}
	if p.idx, err = gatherIndices(ind, p.dim, axis, x.Shape); err != nil {
		return gatherPlan{}, err
	}
	p.outShape = append(append(copyShape(x.Shape[:axis]), in[1].Shape...), x.Shape[axis+1:]...)
	return p, nil
}

func (k gather) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	p, err := k.plan(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	out := like(x.DType, p.outShape)
	switch x.DType {
	case tensor.Float32:
		gatherBlocks(out.F, x.F, p)
	case tensor.Int64:
		gatherBlocks(out.I, x.I, p)
	case tensor.Bool:
		gatherBlocks(out.B, x.B, p)
	}
	return []*tensor.Tensor{out}, nil
}

func gatherBlocks[T elem](dst, src []T, p gatherPlan) {
	k, in := len(p.idx), p.inner
	if in == 0 {
		return
	}
	par.For(p.outer*k, par.Grain(in), func(lo, hi int) {
		for b := lo; b < hi; b++ {
			o, j := b/k, b%k
			s := (o*p.dim + p.idx[j]) * in
			copy(dst[b*in:b*in+in], src[s:s+in])
		}
	})
}

func (k gather) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return dataGrad(in, need, func(g []float32) error {
		p, err := k.plan(in)
		if err != nil || gout[0] == nil {
			return err
		}
		gf := gout[0].F
		nk, inner := len(p.idx), p.inner
		// Each outer slice owns its own part of g, so outer slices run in
		// parallel; repeated indices within one accumulate serially.
		par.For(p.outer, par.Grain(nk*inner), func(lo, hi int) {
			for o := lo; o < hi; o++ {
				for j, ix := range p.idx {
					d := g[(o*p.dim+ix)*inner : (o*p.dim+ix+1)*inner]
					s := gf[(o*nk+j)*inner : (o*nk+j+1)*inner]
					for e, v := range s {
						d[e] += v
					}
				}
			}
		})
		return nil
	})
}

// gatherElements is GatherElements: out[i] = data[i with its axis
// coordinate replaced by indices[i]].
type gatherElements struct {
	axis int64
}

func newGatherElements(n *graph.Node, opset int) (op.Kernel, error) {
	return gatherElements{axis: n.Int("axis", 0)}, nil
}

type gePlan struct {
	axis  int
	view  strided // index shape, data strides with 0 on axis
	astr  int     // data stride of axis
	idx   []int
	shape []int
}

func (k gatherElements) plan(in []*tensor.Tensor) (gePlan, error) {
	var x, ind *tensor.Tensor
	if err := op.AnyArgs(in, &x, &ind); err != nil {
		return gePlan{}, err
	}
	return planElements(x, ind, k.axis)
}

// planElements checks the indices ind (input 1) of GatherElements or
// ScatterElements against the data x (input 0) and plans the walk.
func planElements(x, ind *tensor.Tensor, axisAttr int64) (gePlan, error) {
	r := x.Rank()
	axis, err := op.NormAxis(axisAttr, r)
	if err != nil {
		return gePlan{}, fmt.Errorf("input 0 of shape %v: %v", x.Shape, err)
	}
	if ind.Rank() != r {
		return gePlan{}, fmt.Errorf("input 1 (indices) has shape %v, input 0 has %v: ranks differ", ind.Shape, x.Shape)
	}
	for d := range r {
		if d != axis && ind.Shape[d] > x.Shape[d] {
			return gePlan{}, fmt.Errorf("input 1 (indices) has shape %v, larger than input 0's %v off axis %d", ind.Shape, x.Shape, axis)
		}
	}
	idx, err := gatherIndices(ind, x.Shape[axis], axis, x.Shape)
	if err != nil {
		return gePlan{}, err
	}
	st := tensor.Strides(x.Shape)
	vs := copyShape(st)
	vs[axis] = 0
	return gePlan{axis: axis, view: strided{shape: ind.Shape, strides: vs}, astr: st[axis], idx: idx, shape: copyShape(ind.Shape)}, nil
}

// each walks the index tensor row by row (its last dimension), giving for
// each element its flat position and the data offset it reads.
func (p gePlan) each(lo, hi int, fn func(i, off int)) {
	r := len(p.shape)
	n := p.shape[r-1]
	s := p.view.strides[r-1]
	walkRows(p.view, lo, hi, func(row, off int) {
		for j := range n {
			i := row*n + j
			fn(i, off+j*s+p.idx[i]*p.astr)
		}
	})
}

func (p gePlan) rows() int {
	n := p.shape[len(p.shape)-1]
	if n == 0 {
		return 0
	}
	return tensor.Size(p.shape) / n
}

func (k gatherElements) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	p, err := k.plan(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	out := like(x.DType, p.shape)
	par.For(p.rows(), par.Grain(p.shape[len(p.shape)-1]), func(lo, hi int) {
		switch x.DType {
		case tensor.Float32:
			p.each(lo, hi, func(i, off int) { out.F[i] = x.F[off] })
		case tensor.Int64:
			p.each(lo, hi, func(i, off int) { out.I[i] = x.I[off] })
		case tensor.Bool:
			p.each(lo, hi, func(i, off int) { out.B[i] = x.B[off] })
		}
	})
	return []*tensor.Tensor{out}, nil
}

func (k gatherElements) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return dataGrad(in, need, func(g []float32) error {
		p, err := k.plan(in)
		if err != nil || gout[0] == nil {
			return err
		}
		gf := gout[0].F
		p.each(0, p.rows(), func(i, off int) { g[off] += gf[i] })
		return nil
	})
}

// expand is Expand: numpy broadcasting of the input to the shape input.
type expand struct{}

func newExpand(n *graph.Node, opset int) (op.Kernel, error) {
	return stridedKernel{plan: expand{}.plan, repeats: true}, nil
}

func (expand) plan(in []*tensor.Tensor) ([]int, strided, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, strided{}, err
	}
	spec, err := intList(in, 1, "shape")
	if err != nil {
		return nil, strided{}, err
	}
	want := make([]int, len(spec))
	for i, d := range spec {
		if d < 0 {
			return nil, strided{}, fmt.Errorf("shape %v (input 1) has a negative dimension", spec)
		}
		want[i] = int(d)
	}
	shape, err := tensor.BroadcastShape(x.Shape, want)
	if err != nil {
		return nil, strided{}, fmt.Errorf("cannot expand input 0 to input 1: %v", err)
	}
	return shape, strided{shape: shape, strides: tensor.BroadcastStrides(x.Shape, shape)}, nil
}

// tile is Tile: the input repeated along each axis.
type tile struct{}

func newTile(n *graph.Node, opset int) (op.Kernel, error) {
	return stridedKernel{plan: tile{}.plan, repeats: true}, nil
}

func (tile) plan(in []*tensor.Tensor) ([]int, strided, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, strided{}, err
	}
	reps, err := intList(in, 1, "repeats")
	if err != nil {
		return nil, strided{}, err
	}
	r := x.Rank()
	if len(reps) != r {
		return nil, strided{}, fmt.Errorf("repeats %v (input 1) has %d entries, input 0 of shape %v has rank %d", reps, len(reps), x.Shape, r)
	}
	st := tensor.Strides(x.Shape)
	shape := make([]int, r)
	vs := make([]int, 2*r)
	vst := make([]int, 2*r)
	for d, rep := range reps {
		if rep < 0 {
			return nil, strided{}, fmt.Errorf("repeats %v (input 1) has a negative entry", reps)
		}
		shape[d] = x.Shape[d] * int(rep)
		vs[2*d], vs[2*d+1] = int(rep), x.Shape[d]
		vst[2*d], vst[2*d+1] = 0, st[d]
	}
	return shape, strided{shape: vs, strides: vst}, nil
}
