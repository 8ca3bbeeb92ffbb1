package shapeops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// ndIndex resolves the index tuples of GatherND or ScatterND: indices
// (int64, last axis k) address slices of data whose first batch axes follow
// the indices' own. It returns the data offset of each addressed slice, the
// slice length and the shape indices.shape[:-1] that the slices are laid
// out in. which names the indices input in errors.
func ndIndex(data, ind *tensor.Tensor, batch int, which int) (bases []int, inner int, lead []int, err error) {
	if ind.DType != tensor.Int64 {
		return nil, 0, nil, fmt.Errorf("input %d (indices) is %s, want int64", which, ind.DType)
	}
	r, q := data.Rank(), ind.Rank()
	if q < 1 {
		return nil, 0, nil, fmt.Errorf("input %d (indices) is a scalar, want at least 1-D", which)
	}
	if batch < 0 || batch >= q || batch >= r {
		return nil, 0, nil, fmt.Errorf("batch_dims %d is out of range for input 0 of shape %v and input %d of shape %v", batch, data.Shape, which, ind.Shape)
	}
	for d := range batch {
		if ind.Shape[d] != data.Shape[d] {
			return nil, 0, nil, fmt.Errorf("input %d (indices) has shape %v, input 0 has %v: the %d batch axes differ", which, ind.Shape, data.Shape, batch)
		}
	}
	k := ind.Shape[q-1]
	if k < 1 || batch+k > r {
		return nil, 0, nil, fmt.Errorf("input %d (indices) has shape %v: tuples of %d indices do not fit input 0 of shape %v", which, ind.Shape, k, data.Shape)
	}
	st := tensor.Strides(data.Shape)
	inner = tensor.Size(data.Shape[batch+k:])
	lead = copyShape(ind.Shape[:q-1])
	n := tensor.Size(lead)
	perBatch := n / max(tensor.Size(ind.Shape[:batch]), 1)
	batchStride := tensor.Size(data.Shape[batch:])
	bases = make([]int, n)
	for m := range n {
		off := 0
		if perBatch > 0 {
			off = m / perBatch * batchStride
		}
		tup := ind.I[m*k : m*k+k]
		for j, v := range tup {
			dim := int64(data.Shape[batch+j])
			w := v
			if w < 0 {
				w += dim
			}
			if w < 0 || w >= dim {
				return nil, 0, nil, fmt.Errorf("index %d (input %d, tuple %d, position %d) is out of range for axis %d of size %d (input 0 has shape %v)", v, which, m, j, batch+j, dim, data.Shape)
			}
			off += int(w) * st[batch+j]
		}
		bases[m] = off
	}
	return bases, inner, lead, nil
}

// gatherND is GatherND (batch_dims from opset 12): slices of the data
// addressed by tuples of indices.
type gatherND struct {
	batch int
}

func newGatherND(n *graph.Node, opset int) (op.Kernel, error) {
	b := n.Int("batch_dims", 0)
	if b < 0 {
		return nil, op.Errorf(n, "batch_dims %d is negative", b)
	}
	return gatherND{batch: int(b)}, nil
}

func (k gatherND) plan(in []*tensor.Tensor) ([]int, int, []int, error) {
	var x, ind *tensor.Tensor
	if err := op.AnyArgs(in, &x, &ind); err != nil {
		return nil, 0, nil, err
	}
	bases, inner, lead, err := ndIndex(x, ind, k.batch, 1)
	if err != nil {
		return nil, 0, nil, err
	}
	k1 := ind.Shape[ind.Rank()-1]
	shape := append(lead, x.Shape[k.batch+k1:]...)
	return bases, inner, shape, nil
}

func (k gatherND) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	bases, inner, shape, err := k.plan(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	out := like(x.DType, shape)
	switch x.DType {
	case tensor.Float32:
		copySlices(out.F, x.F, bases, inner)
	case tensor.Int64:
		copySlices(out.I, x.I, bases, inner)
	case tensor.Bool:
		copySlices(out.B, x.B, bases, inner)
	}
	return []*tensor.Tensor{out}, nil
}

// copySlices copies the slices of src at bases (inner elements each) one
// after another into dst.
func copySlices[T elem](dst, src []T, bases []int, inner int) {
	if inner == 0 {
		return
	}
	par.For(len(bases), par.Grain(inner), func(lo, hi int) {
		for m := lo; m < hi; m++ {
			copy(dst[m*inner:(m+1)*inner], src[bases[m]:bases[m]+inner])
		}
	})
}

func (k gatherND) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return dataGrad(in, need, func(g []float32) error {
		bases, inner, _, err := k.plan(in)
		if err != nil || gout[0] == nil {
			return err
		}
		// Tuples may repeat, so the slices are added serially.
		gf := gout[0].F
		for m, b := range bases {
			d := g[b : b+inner]
			for e, v := range gf[m*inner : (m+1)*inner] {
				d[e] += v
			}
		}
		return nil
	})
}

// Scatter reductions (attribute reduction: opset 16 none, add and mul;
// opset 18 max and min).
const (
	redNone = iota
	redAdd
	redMul
	redMax
	redMin
)

func parseReduction(n *graph.Node) (int, error) {
	switch r := n.Str("reduction", "none"); r {
	case "none":
		return redNone, nil
	case "add":
		return redAdd, nil
	case "mul":
		return redMul, nil
	case "max":
		return redMax, nil
	case "min":
		return redMin, nil
	default:
		return 0, op.Errorf(n, "reduction %q is not supported (none, add, mul, max or min)", r)
	}
}

// scatter is ScatterND or ScatterElements: a copy of the data (input 0)
// into which the updates (input 2) are written, or combined by the
// reduction, at the places the indices (input 1) give. Updates that share
// a destination are applied in order.
type scatter struct {
	nd        bool
	axis      int64 // ScatterElements
	reduction int
}

func newScatterND(n *graph.Node, opset int) (op.Kernel, error) {
	red, err := parseReduction(n)
	if err != nil {
		return nil, err
	}
	return scatter{nd: true, reduction: red}, nil
}

func newScatterElements(n *graph.Node, opset int) (op.Kernel, error) {
	red, err := parseReduction(n)
	if err != nil {
		return nil, err
	}
	return scatter{axis: n.Int("axis", 0), reduction: red}, nil
}

// dest returns, for every element of the updates, the flat data offset it
// goes to.
func (k scatter) dest(in []*tensor.Tensor) ([]int, error) {
	var x, ind, u *tensor.Tensor
	if err := op.AnyArgs(in, &x, &ind, &u); err != nil {
		return nil, err
	}
	if u.DType != x.DType {
		return nil, fmt.Errorf("input 2 (updates) is %s, input 0 is %s", u.DType, x.DType)
	}
	if x.DType == tensor.Bool && k.reduction != redNone {
		return nil, fmt.Errorf("input 0 is bool: a reduction needs numbers")
	}
	if k.nd {
		return k.destND(x, ind, u)
	}
	return k.destElements(x, ind, u)
}

func (k scatter) destND(x, ind, u *tensor.Tensor) ([]int, error) {
	bases, inner, lead, err := ndIndex(x, ind, 0, 1)
	if err != nil {
		return nil, err
	}
	want := append(copyShape(lead), x.Shape[ind.Shape[ind.Rank()-1]:]...)
	if !tensor.SameShape(u.Shape, want) {
		return nil, fmt.Errorf("input 2 (updates) has shape %v, want %v (input 0 has shape %v, input 1 %v)", u.Shape, want, x.Shape, ind.Shape)
	}
	dst := make([]int, len(bases)*inner)
	for m, b := range bases {
		row := dst[m*inner : (m+1)*inner]
		for e := range row {
			row[e] = b + e
		}
	}
	return dst, nil
}

func (k scatter) destElements(x, ind, u *tensor.Tensor) ([]int, error) {
	if !tensor.SameShape(ind.Shape, u.Shape) {
		return nil, fmt.Errorf("input 1 (indices) has shape %v, input 2 (updates) %v: they must be equal", ind.Shape, u.Shape)
	}
	p, err := planElements(x, ind, k.axis)
	if err != nil {
		return nil, err
	}
	dst := make([]int, len(p.idx))
	if len(dst) > 0 {
		p.each(0, p.rows(), func(i, off int) { dst[i] = off })
	}
	return dst, nil
}

// number is the element types scatter reductions work on.
type number interface{ ~float32 | ~int64 }

// scatterNum applies the updates u to out at dst with reduction red.
func scatterNum[T number](out, u []T, dst []int, red int) {
	switch red {
	case redNone:
		for i, p := range dst {
			out[p] = u[i]
		}
	case redAdd:
		for i, p := range dst {
			out[p] += u[i]
		}
	case redMul:
		for i, p := range dst {
			out[p] *= u[i]
		}
	case redMax:
		for i, p := range dst {
			out[p] = max(out[p], u[i])
		}
	case redMin:
		for i, p := range dst {
			out[p] = min(out[p], u[i])
		}
	}
}

func (k scatter) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	dst, err := k.dest(in)
	if err != nil {
		return nil, err
	}
	x, u := in[0], in[2]
	out := withShape(x, x.Shape)
	switch x.DType {
	case tensor.Float32:
		scatterNum(out.F, u.F, dst, k.reduction)
	case tensor.Int64:
		scatterNum(out.I, u.I, dst, k.reduction)
	case tensor.Bool:
		for i, p := range dst {
			out.B[p] = u.B[i]
		}
	}
	return []*tensor.Tensor{out}, nil
}

// Backward follows PyTorch: with no reduction (index_put, scatter) every
// update gets the output gradient at its destination, even one that a
// later duplicate overwrote, and the data gets it where nothing was
// written; add passes the gradient to both; mul multiplies by the other
// factors; max and min share it evenly among the values that equal the
// result (scatter_reduce's amax and amin).
func (k scatter) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	x := in[0]
	if x.DType != tensor.Float32 || !(op.Needs(need, 0) || op.Needs(need, 2)) {
		return grads, nil
	}
	dst, err := k.dest(in)
	if err != nil {
		return nil, err
	}
	u := in[2]
	var g []float32
	if gout[0] != nil {
		g = gout[0].F
	} else {
		g = make([]float32, x.Len())
	}
	gx := tensor.New(x.Shape...)
	gu := tensor.New(u.Shape...)
	switch k.reduction {
	case redNone, redAdd:
		copy(gx.F, g)
		for i, p := range dst {
			gu.F[i] = g[p]
		}
		if k.reduction == redNone {
			for _, p := range dst {
				gx.F[p] = 0
			}
		}
	case redMul:
		scatterMulGrad(gx.F, gu.F, g, x.F, u.F, dst)
	case redMax, redMin:
		scatterExtremeGrad(gx.F, gu.F, g, x.F, u.F, out[0].F, dst)
	}
	if op.Needs(need, 0) {
		grads[0] = gx
	}
	if op.Needs(need, 2) {
		grads[2] = gu
	}
	return grads, nil
}

// scatterMulGrad is the gradient of out[p] = x[p] * prod of the updates
// sent to p: each factor gets g[p] times the product of the others
// (prefix and suffix products, so that zeros need no division).
func scatterMulGrad(gx, gu, g, x, u []float32, dst []int) {
	copy(gx, g)
	// Group the updates by destination (a counting sort, stable).
	start := make([]int, len(x)+1)
	for _, p := range dst {
		start[p+1]++
	}
	for p := range x {
		start[p+1] += start[p]
	}
	order := make([]int, len(dst))
	fillAt := append([]int{}, start[:len(x)]...)
	for i, p := range dst {
		order[fillAt[p]] = i
		fillAt[p]++
	}
	// suf[j] is the product of the group's updates from the j-th on.
	var suf []float64
	for p := range x {
		grp := order[start[p]:start[p+1]]
		if len(grp) == 0 {
			continue
		}
		if cap(suf) < len(grp)+1 {
			suf = make([]float64, 2*len(grp)+1)
		}
		suf = suf[:len(grp)+1]
		suf[len(grp)] = 1
		for j := len(grp) - 1; j >= 0; j-- {
			suf[j] = suf[j+1] * float64(u[grp[j]])
		}
		gp := float64(g[p])
		gx[p] = float32(gp * suf[0])
		prefix := float64(x[p])
		for j, i := range grp {
			gu[i] = float32(gp * prefix * suf[j+1])
			prefix *= float64(u[i])
		}
	}
}

// scatterExtremeGrad shares g[p] evenly among x[p] and the updates sent to
// p that equal the result y[p]; untouched places pass the gradient on.
func scatterExtremeGrad(gx, gu, g, x, u, y []float32, dst []int) {
	copy(gx, g)
	cnt := make([]float32, len(x))
	hit := make([]bool, len(x))
	for _, p := range dst {
		if !hit[p] {
			hit[p] = true
			if x[p] == y[p] {
				cnt[p] = 1
			}
		}
	}
	for i, p := range dst {
		if u[i] == y[p] {
			cnt[p]++
		}
	}
	for p, h := range hit {
		if !h {
			continue
		}
		gx[p] = 0
		if x[p] == y[p] {
			gx[p] = g[p] / cnt[p]
		}
	}
	for i, p := range dst {
		if u[i] == y[p] {
			gu[i] = g[p] / cnt[p]
		}
	}
}
