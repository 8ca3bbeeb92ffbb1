package mathops

import (
	"math"

	"github.com/viterin/vek/vek32"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

type smKind uint8

const (
	smSoftmax smKind = iota
	smLogSoftmax
	smHardmax
)

// softmaxKernel is Softmax, LogSoftmax or Hardmax. From opset 13 the op
// works along `axis` (default -1) alone; before, the input is coerced to 2-D
// at `axis` (default 1) and the op works along the flattened trailing
// dimensions. Softmax subtracts the maximum before exponentiating. Hardmax
// puts 1 at the first maximum; its gradient is zero.
type softmaxKernel struct {
	kind   smKind
	axis   int64
	coerce bool
}

func newSoftmax(kind smKind) op.Factory {
	return func(n *graph.Node, opset int) (op.Kernel, error) {
		coerce := !modern(opset)
		def := int64(-1)
		if coerce {
			def = 1
		}
		return softmaxKernel{kind: kind, axis: n.Int("axis", def), coerce: coerce}, nil
	}
}

// layout returns the (outer, n, inner) decomposition of x's shape.
func (k softmaxKernel) layout(shape []int) (outer, n, inner int, err error) {
	if len(shape) == 0 {
		shape = []int{1}
	}
	a, err := op.NormAxis(k.axis, len(shape))
	if err != nil {
		return
	}
	outer = tensor.Size(shape[:a])
	if k.coerce {
		return outer, tensor.Size(shape[a:]), 1, nil
	}
	return outer, shape[a], tensor.Size(shape[a+1:]), nil
}

func (k softmaxKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.FloatArg(in, 0)
	if err != nil {
		return nil, err
	}
	outer, n, inner, err := k.layout(x.Shape)
	if err != nil {
		return nil, err
	}
	y := tensor.New(x.Shape...)
	if len(y.F) == 0 || n == 0 {
		return []*tensor.Tensor{y}, nil
	}
	if inner == 1 {
		par.For(outer, par.Grain(n*8), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				k.row(y.F[r*n:(r+1)*n], x.F[r*n:(r+1)*n])
			}
		})
		return []*tensor.Tensor{y}, nil
	}
	lanes(outer, n, inner, func(base, j0, j1 int) { k.strided(y.F, x.F, base, n, inner, j0, j1) })
	return []*tensor.Tensor{y}, nil
}

// lanes runs fn over the (outer × inner) independent lanes of a tensor laid
// out as [outer, n, inner], in blocks: fn gets the offset of an outer slab
// and a range [j0, j1) of inner positions.
func lanes(outer, n, inner int, fn func(base, j0, j1 int)) {
	par.For(outer*inner, par.Grain(n*8), func(lo, hi int) {
		for t := lo; t < hi; {
			o, j := t/inner, t%inner
			j1 := min(inner, j+hi-t)
			fn(o*n*inner, j, j1)
			t += j1 - j
		}
	})
}

// row applies the op to one contiguous row.
func (k softmaxKernel) row(y, x []float32) {
	y = y[:len(x)]
	m := x[0]
	mi := 0
	for i, v := range x {
		if v > m {
			m, mi = v, i
		}
	}
	if k.kind == smHardmax {
		y[mi] = 1
		return
	}
	sum := vExpShift(y, x, m)
	if k.kind == smSoftmax {
		vek32.MulNumber_Inplace(y, float32(1/sum))
		return
	}
	ls := float32(math.Log(sum))
	for i, v := range x {
		y[i] = (v - m) - ls
	}
}

// strided applies the op to lanes [j0, j1) of the slab at base, whose
// elements along the axis are inner apart.
func (k softmaxKernel) strided(y, x []float32, base, n, inner, j0, j1 int) {
	w := j1 - j0
	mx := make([]float32, w)
	arg := make([]int, w)
	copy(mx, x[base+j0:base+j1])
	for a := 1; a < n; a++ {
		row := x[base+a*inner+j0 : base+a*inner+j1]
		for j, v := range row {
			if v > mx[j] {
				mx[j], arg[j] = v, a
			}
		}
	}
	if k.kind == smHardmax {
		for j, a := range arg {
			y[base+a*inner+j0+j] = 1
		}
		return
	}
	sum := make([]float64, w)
	for a := 0; a < n; a++ {
		off := base + a*inner
		xr, yr := x[off+j0:off+j1], y[off+j0:off+j1]
		vSub(yr, xr, mx)
		vExp(yr, yr)
		for j, v := range yr {
			sum[j] += float64(v)
		}
	}
	if k.kind == smSoftmax {
		inv := make([]float32, w)
		for j, s := range sum {
			inv[j] = float32(1 / s)
		}
		for a := 0; a < n; a++ {
			off := base + a*inner
			yr := y[off+j0 : off+j1]
			vek32.Mul_Inplace(yr, inv)
		}
		return
	}
	ls := make([]float32, w)
	for j, s := range sum {
		ls[j] = float32(math.Log(s))
	}
	for a := 0; a < n; a++ {
		off := base + a*inner
		xr, yr := x[off+j0:off+j1], y[off+j0:off+j1]
		for j, v := range xr {
			yr[j] = (v - mx[j]) - ls[j]
		}
	}
}

func (k softmaxKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res, x, g, y, err := sameShapeBackwardStart(in, out, gout, need, k.kind == smHardmax, k.Forward)
	if err != nil || y == nil {
		return res, err
	}
	outer, n, inner, err := k.layout(x.Shape)
	if err != nil {
		return nil, err
	}
	gx := zerosLike(x)
	if len(gx.F) == 0 || n == 0 {
		res[0] = gx
		return res, nil
	}
	soft := k.kind == smSoftmax
	if inner == 1 {
		par.For(outer, par.Grain(n*4), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				gr, yr, dst := g.F[r*n:(r+1)*n], y.F[r*n:(r+1)*n], gx.F[r*n:(r+1)*n]
				s := 0.0
				if soft {
					// PyTorch: y * (g - sum(g * y)).
					for i, v := range gr {
						s += float64(v) * float64(yr[i])
					}
					sf := float32(s)
					for i, v := range gr {
						dst[i] = yr[i] * (v - sf)
					}
					continue
				}
				// PyTorch: g - exp(y) * sum(g).
				for _, v := range gr {
					s += float64(v)
				}
				sf := float32(s)
				vExp(dst, yr)
				for i, v := range gr {
					dst[i] = v - dst[i]*sf
				}
			}
		})
		res[0] = gx
		return res, nil
	}
	lanes(outer, n, inner, func(base, j0, j1 int) {
		s := make([]float64, j1-j0)
		for a := 0; a < n; a++ {
			off := base + a*inner
			gr, yr := g.F[off+j0:off+j1], y.F[off+j0:off+j1]
			for j, v := range gr {
				if soft {
					s[j] += float64(v) * float64(yr[j])
				} else {
					s[j] += float64(v)
				}
			}
		}
		sf := make([]float32, len(s))
		for j, v := range s {
			sf[j] = float32(v)
		}
		for a := 0; a < n; a++ {
			off := base + a*inner
			gr, yr, dst := g.F[off+j0:off+j1], y.F[off+j0:off+j1], gx.F[off+j0:off+j1]
			if soft {
				for j, v := range gr {
					dst[j] = yr[j] * (v - sf[j])
				}
				continue
			}
			vExp(dst, yr)
			for j, v := range gr {
				dst[j] = v - dst[j]*sf[j]
			}
		}
	})
	res[0] = gx
	return res, nil
}
