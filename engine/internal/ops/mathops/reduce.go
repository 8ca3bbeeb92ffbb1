package mathops

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

type redKind uint8

const (
	rSum redKind = iota
	rMean
	rMax
	rMin
	rProd
	rL2
	rSumSquare
	rLogSumExp
)

var redByName = map[string]redKind{
	"ReduceSum": rSum, "ReduceMean": rMean, "ReduceMax": rMax, "ReduceMin": rMin,
	"ReduceProd": rProd, "ReduceL2": rL2, "ReduceSumSquare": rSumSquare, "ReduceLogSumExp": rLogSumExp,
}

// reduceKernel is one of the Reduce* ops. The axes come from the optional
// second input when it is given, else from the `axes` attribute (every
// opset's form is accepted for every reduction). With no axes it reduces
// everything, unless noop_with_empty_axes is set, in which case each element
// is reduced alone (the identity for most kinds; x² for ReduceSumSquare and
// |x| for ReduceL2). Sums accumulate in float64. ReduceMax and ReduceMin send
// the gradient to the first extremum in row-major order (as PyTorch's
// max(dim) does), not split among ties.
type reduceKernel struct {
	kind     redKind
	axes     []int64
	keepdims bool
	noop     bool
}

func newReduce(name string) op.Factory {
	kind := redByName[name]
	return func(n *graph.Node, _ int) (op.Kernel, error) {
		return &reduceKernel{
			kind:     kind,
			axes:     n.Ints("axes", nil),
			keepdims: n.Int("keepdims", 1) != 0,
			noop:     n.Int("noop_with_empty_axes", 0) != 0,
		}, nil
	}
}

// plan returns, for input shape x, which axes are reduced, the output shape
// with the reduced axes kept as 1, and the output shape as returned.
func (k *reduceKernel) plan(in []*tensor.Tensor, shape []int) (keep, outShape []int, err error) {
	axes := k.axes
	if a := op.Arg(in, 1); a != nil {
		if a.DType != tensor.Int64 {
			return nil, nil, fmt.Errorf("input 1 (axes) is %s, want int64", a.DType)
		}
		if err := a.Check(); err != nil {
			return nil, nil, fmt.Errorf("input 1 (axes): %v", err)
		}
		if len(a.Shape) > 1 {
			return nil, nil, fmt.Errorf("input 1 (axes) has shape %v, want 1-D", a.Shape)
		}
		axes = a.I
	}
	red := make([]bool, len(shape))
	if len(axes) == 0 {
		if !k.noop {
			for i := range red {
				red[i] = true
			}
		}
	}
	for _, a := range axes {
		ax, err := op.NormAxis(a, len(shape))
		if err != nil {
			return nil, nil, err
		}
		red[ax] = true
	}
	keep = make([]int, len(shape))
	outShape = []int{}
	for i, d := range shape {
		if red[i] {
			keep[i] = 1
			if k.keepdims {
				outShape = append(outShape, 1)
			}
			continue
		}
		keep[i] = d
		outShape = append(outShape, d)
	}
	return keep, outShape, nil
}

func (k *reduceKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	keep, outShape, err := k.plan(in, x.Shape)
	if err != nil {
		return nil, err
	}
	switch x.DType {
	case tensor.Float32:
		y := tensor.New(outShape...)
		copy(y.F, k.reduceFloat(x, keep))
		return []*tensor.Tensor{y}, nil
	case tensor.Int64:
		switch k.kind {
		case rSum, rMax, rMin, rProd:
			y := tensor.NewInt(outShape...)
			copy(y.I, k.reduceInt(x, keep))
			return []*tensor.Tensor{y}, nil
		}
	}
	return nil, fmt.Errorf("input 0 is %s, want float32", x.DType)
}

// reduceFloat returns the reduction of x to shape keep, in row-major order.
func (k *reduceKernel) reduceFloat(x *tensor.Tensor, keep []int) []float32 {
	size := tensor.Size(keep)
	out := make([]float32, size)
	if size == 0 {
		return out
	}
	count := len(x.F) / size
	var acc []float64
	var shift []float32
	switch k.kind {
	case rSum, rMean:
		acc = accumulate(x.F, x.Shape, keep, 2, 0, add64, add64, sumRun)
	case rSumSquare, rL2:
		acc = accumulate(x.F, x.Shape, keep, 2, 0, func(a, v float64) float64 { return a + v*v }, add64, nil)
	case rProd:
		mul := func(a, v float64) float64 { return a * v }
		acc = accumulate(x.F, x.Shape, keep, 2, 1, mul, mul, nil)
	case rMax:
		acc = accumulate(x.F, x.Shape, keep, 2, math.Inf(-1), maxNaN, maxNaN, nil)
	case rMin:
		acc = accumulate(x.F, x.Shape, keep, 2, math.Inf(1), minNaN, minNaN, nil)
	case rLogSumExp:
		m := accumulate(x.F, x.Shape, keep, 2, math.Inf(-1), maxNaN, maxNaN, nil)
		shift = make([]float32, size)
		for i, v := range m {
			if !math.IsInf(v, 0) && !math.IsNaN(v) {
				shift[i] = float32(v)
			}
		}
		acc = sumExpShifted(x.F, x.Shape, keep, shift)
	}
	for i, v := range acc {
		switch k.kind {
		case rMean:
			v /= float64(count)
		case rL2:
			v = math.Sqrt(v)
		case rLogSumExp:
			v = math.Log(v) + float64(shift[i])
		}
		out[i] = float32(v)
	}
	return out
}

func add64(a, v float64) float64 { return a + v }

// seqSum adds a run in order to a.
func seqSum(a float64, xs []float32) float64 {
	s := 0.0
	for _, v := range xs {
		s += float64(v)
	}
	return a + s
}

// maxNaN and minNaN fold value v into the running maximum or minimum a,
// propagating NaN.
func maxNaN(a, v float64) float64 { return maxf(v, a) }
func minNaN(a, v float64) float64 { return minf(v, a) }

// sumRun is the sum of a contiguous run, with four partial sums.
func sumRun(a float64, xs []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		s0 += float64(xs[i])
		s1 += float64(xs[i+1])
		s2 += float64(xs[i+2])
		s3 += float64(xs[i+3])
	}
	for ; i < len(xs); i++ {
		s0 += float64(xs[i])
	}
	return a + ((s0 + s1) + (s2 + s3))
}

// accumulate folds data (of shape from) into a float64 buffer of shape keep
// (from with reduced axes set to 1, or a shape from was broadcast from),
// starting every output at init. f folds one value; run, when not nil,
// folds a contiguous run into one output faster, and marks f as addition
// (so that runs over kept axes add directly). Work is split across cores,
// by the cost of one value, with per-chunk buffers merged by combine, for
// which init must be the identity.
func accumulate(data []float32, from, keep []int, cost int, init float64, f, combine func(a, v float64) float64, run func(a float64, xs []float32) float64) []float64 {
	p := planBcast(from, keep)
	size := tensor.Size(keep)
	c := par.ChunkCount(p.n, cost)
	bufs := make([][]float64, c)
	unit := p.unit(0)
	par.Chunks(p.n, c, func(ci, lo, hi int) {
		acc := make([]float64, size)
		if init != 0 {
			for i := range acc {
				acc[i] = init
			}
		}
		p.walk(lo, hi, func(o int, offs []int, n int) {
			src := data[o : o+n]
			if unit {
				dst := acc[offs[0] : offs[0]+n]
				if run != nil { // f is addition
					for i, v := range src {
						dst[i] += float64(v)
					}
					return
				}
				for i, v := range src {
					dst[i] = f(dst[i], float64(v))
				}
				return
			}
			if run != nil {
				acc[offs[0]] = run(acc[offs[0]], src)
				return
			}
			a := acc[offs[0]]
			for _, v := range src {
				a = f(a, float64(v))
			}
			acc[offs[0]] = a
		})
		bufs[ci] = acc
	})
	for _, b := range bufs[1:] {
		for i, v := range b {
			bufs[0][i] = combine(bufs[0][i], v)
		}
	}
	return bufs[0]
}

// sumExpShifted sums exp(x - shift[out]) into each output.
func sumExpShifted(data []float32, from, keep []int, shift []float32) []float64 {
	p := planBcast(from, keep)
	acc := make([]float64, tensor.Size(keep))
	s := p.st[0][len(p.dims)-1]
	p.walk(0, p.n, func(o int, offs []int, n int) {
		j := offs[0]
		for _, v := range data[o : o+n] {
			acc[j] += expd(float64(v - shift[j]))
			j += s
		}
	})
	return acc
}

// reduceInt is the int64 reduction (sum, product, max, min).
func (k *reduceKernel) reduceInt(x *tensor.Tensor, keep []int) []int64 {
	size := tensor.Size(keep)
	acc := make([]int64, size)
	if size == 0 {
		return acc
	}
	seen := make([]bool, size)
	p := planBcast(x.Shape, keep)
	s := p.st[0][len(p.dims)-1]
	p.walk(0, p.n, func(o int, offs []int, n int) {
		j := offs[0]
		for _, v := range x.I[o : o+n] {
			switch {
			case !seen[j]:
				acc[j], seen[j] = v, true
			case k.kind == rSum:
				acc[j] += v
			case k.kind == rProd:
				acc[j] *= v
			case k.kind == rMax:
				acc[j] = max(acc[j], v)
			default:
				acc[j] = min(acc[j], v)
			}
			j += s
		}
	})
	if k.kind == rProd {
		for j, ok := range seen {
			if !ok {
				acc[j] = 1
			}
		}
	}
	return acc
}

func (k *reduceKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res := make([]*tensor.Tensor, len(in))
	x := op.Arg(in, 0)
	if !op.Needs(need, 0) || x == nil || x.DType != tensor.Float32 {
		return res, nil
	}
	keep, outShape, err := k.plan(in, x.Shape)
	if err != nil {
		return nil, err
	}
	g := op.GradAt(gout, 0)
	gx := zerosLike(x)
	res[0] = gx
	if g == nil || len(x.F) == 0 {
		return res, nil
	}
	if len(g.F) != tensor.Size(outShape) {
		return nil, fmt.Errorf("output gradient has shape %v, want %v", g.Shape, outShape)
	}
	var y []float32
	switch k.kind {
	case rMax, rMin, rL2, rLogSumExp, rProd:
		if o := op.Arg(out, 0); o != nil && o.DType == tensor.Float32 && len(o.F) == len(g.F) {
			y = o.F
		} else {
			y = k.reduceFloat(x, keep)
		}
	}
	p := planBcast(x.Shape, keep)
	s := p.st[0][len(p.dims)-1]
	gf := g.F
	switch k.kind {
	case rSum, rMean:
		scale := float32(1)
		if k.kind == rMean {
			scale = float32(1 / float64(len(x.F)/len(g.F)))
		}
		unit := p.unit(0)
		p.run(1, func(o int, offs []int, n int) {
			dst := gx.F[o : o+n]
			if unit {
				src := gf[offs[0] : offs[0]+n]
				for i, v := range src {
					dst[i] = v * scale
				}
				return
			}
			v := gf[offs[0]] * scale
			for i := range dst {
				dst[i] = v
			}
		})
	case rSumSquare, rL2, rLogSumExp:
		kind := k.kind
		p.run(4, func(o int, offs []int, n int) {
			j := offs[0]
			for e := o; e < o+n; e++ {
				xv := x.F[e]
				switch kind {
				case rSumSquare:
					gx.F[e] = 2 * xv * gf[j]
				case rL2:
					// PyTorch's norm backward: g * x / y, 0 where y == 0.
					if y[j] != 0 {
						gx.F[e] = gf[j] * xv / y[j]
					}
				default:
					gx.F[e] = gf[j] * exp32(xv-y[j])
				}
				j += s
			}
		})
	case rMax, rMin:
		done := make([]bool, len(g.F))
		p.walk(0, p.n, func(o int, offs []int, n int) {
			j := offs[0]
			for e := o; e < o+n; e++ {
				if !done[j] {
					if xv, yv := x.F[e], y[j]; xv == yv || (xv != xv && yv != yv) {
						gx.F[e] = gf[j]
						done[j] = true
					}
				}
				j += s
			}
		})
	case rProd:
		// With no zero in a group, dy/dx = prod(others) = (product of the
		// nonzero elements) / x; with one zero only that element gets the
		// product of the others; with more, all get 0.
		zeros := make([]int, len(g.F))
		nz := make([]float64, len(g.F))
		for i := range nz {
			nz[i] = 1
		}
		p.walk(0, p.n, func(o int, offs []int, n int) {
			j := offs[0]
			for _, v := range x.F[o : o+n] {
				if v == 0 {
					zeros[j]++
				} else {
					nz[j] *= float64(v)
				}
				j += s
			}
		})
		p.walk(0, p.n, func(o int, offs []int, n int) {
			j := offs[0]
			for e := o; e < o+n; e++ {
				v := x.F[e]
				switch {
				case zeros[j] == 0:
					gx.F[e] = float32(float64(gf[j]) * (nz[j] / float64(v)))
				case zeros[j] == 1 && v == 0:
					gx.F[e] = float32(float64(gf[j]) * nz[j])
				}
				j += s
			}
		})
	}
	return res, nil
}

// argKernel is ArgMax or ArgMin: int64 indices along axis (default 0), with
// keepdims (default 1) and select_last_index (default 0). NaN counts as the
// extremum, as in numpy and PyTorch.
type argKernel struct {
	max      bool
	axis     int64
	keepdims bool
	last     bool
}

func newArg(isMax bool) op.Factory {
	return func(n *graph.Node, _ int) (op.Kernel, error) {
		return argKernel{
			max:      isMax,
			axis:     n.Int("axis", 0),
			keepdims: n.Int("keepdims", 1) != 0,
			last:     n.Int("select_last_index", 0) != 0,
		}, nil
	}
}

func (k argKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	if x.DType != tensor.Float32 && x.DType != tensor.Int64 {
		return nil, fmt.Errorf("input 0 is %s, want float32 or int64", x.DType)
	}
	a, err := op.NormAxis(k.axis, len(x.Shape))
	if err != nil {
		return nil, err
	}
	n := x.Shape[a]
	outer, inner := tensor.Size(x.Shape[:a]), tensor.Size(x.Shape[a+1:])
	outShape := shapeOf(x.Shape[:a])
	if k.keepdims {
		outShape = append(outShape, 1)
	}
	outShape = append(outShape, x.Shape[a+1:]...)
	y := tensor.NewInt(outShape...)
	if len(y.I) == 0 {
		return []*tensor.Tensor{y}, nil
	}
	if n == 0 {
		return nil, fmt.Errorf("input 0 has size 0 along axis %d", a)
	}
	for o := 0; o < outer; o++ {
		for j := 0; j < inner; j++ {
			base := o*n*inner + j
			best := 0
			if x.DType == tensor.Float32 {
				bv := x.F[base]
				for i := 1; i < n; i++ {
					if v := x.F[base+i*inner]; k.better(float64(v), float64(bv)) {
						best, bv = i, v
					}
				}
			} else {
				bv := x.I[base]
				for i := 1; i < n; i++ {
					v := x.I[base+i*inner]
					if (k.max && (v > bv || (k.last && v == bv))) || (!k.max && (v < bv || (k.last && v == bv))) {
						best, bv = i, v
					}
				}
			}
			y.I[o*inner+j] = int64(best)
		}
	}
	return []*tensor.Tensor{y}, nil
}

// better reports whether v replaces the current extremum cur.
func (k argKernel) better(v, cur float64) bool {
	vn, cn := v != v, cur != cur
	if cn {
		return k.last && vn
	}
	if vn {
		return true
	}
	if k.max {
		return v > cur || (k.last && v == cur)
	}
	return v < cur || (k.last && v == cur)
}
