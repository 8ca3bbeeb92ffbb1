package mathops

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// clipKernel is Clip. Before opset 11 the bounds are attributes (min, max);
// from 11 they are optional scalar inputs 1 and 2 (attributes, if a node
// carries them anyway, serve when the inputs are omitted). An absent bound
// does not clip. Like PyTorch's clamp, the gradient passes where
// min <= x <= max, and min/max inputs receive the gradient of the elements
// they clip.
type clipKernel struct {
	lo, hi       float64
	hasLo, hasHi bool
}

func newClip(n *graph.Node, _ int) (op.Kernel, error) {
	k := clipKernel{lo: math.Inf(-1), hi: math.Inf(1)}
	if n.Has("min") {
		k.lo, k.hasLo = float64(n.Float("min", 0)), true
	}
	if n.Has("max") {
		k.hi, k.hasHi = float64(n.Float("max", 0)), true
	}
	return k, nil
}

// bounds returns the bounds in effect for a call, as float64 (exact for
// float32 and for int64 up to 2^53) and as int64.
func (k clipKernel) bounds(in []*tensor.Tensor, x *tensor.Tensor) (lo, hi float64, ilo, ihi int64, err error) {
	lo, hi = k.lo, k.hi
	ilo, ihi = math.MinInt64, math.MaxInt64
	if k.hasLo {
		ilo = int64(lo)
	}
	if k.hasHi {
		ihi = int64(hi)
	}
	for i := 1; i <= 2; i++ {
		b := op.Arg(in, i)
		if b == nil {
			continue
		}
		if err = b.Check(); err != nil {
			return
		}
		if b.Len() != 1 {
			err = fmt.Errorf("input %d has shape %v, want a scalar", i, b.Shape)
			return
		}
		if b.DType != x.DType {
			err = fmt.Errorf("input %d is %s, want %s like input 0", i, b.DType, x.DType)
			return
		}
		v := b.Float64At(0)
		var iv int64
		if b.DType == tensor.Int64 {
			iv = b.I[0]
		}
		if i == 1 {
			lo, ilo = v, iv
		} else {
			hi, ihi = v, iv
		}
	}
	return
}

func (k clipKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	lo, hi, ilo, ihi, err := k.bounds(in, x)
	if err != nil {
		return nil, err
	}
	switch x.DType {
	case tensor.Float32:
		y := tensor.New(x.Shape...)
		l, h := float32(lo), float32(hi)
		par.For(len(x.F), par.MinWork, func(a, b int) {
			dst := y.F[a:b]
			for i, v := range x.F[a:b] {
				if v < l {
					v = l
				}
				if v > h {
					v = h
				}
				dst[i] = v
			}
		})
		return []*tensor.Tensor{y}, nil
	case tensor.Int64:
		y := tensor.NewInt(x.Shape...)
		for i, v := range x.I {
			y.I[i] = min(max(v, ilo), ihi)
		}
		return []*tensor.Tensor{y}, nil
	}
	return nil, fmt.Errorf("input 0 is %s, want float32 or int64", x.DType)
}

func (k clipKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res := make([]*tensor.Tensor, len(in))
	x := op.Arg(in, 0)
	if x == nil || x.DType != tensor.Float32 || !op.NeedAny(need) {
		return res, nil
	}
	lo, hi, _, _, err := k.bounds(in, x)
	if err != nil {
		return nil, err
	}
	l, h := float32(lo), float32(hi)
	g := op.GradAt(gout, 0)
	if g == nil {
		g = zerosLike(x)
	} else if len(g.F) != len(x.F) {
		return nil, fmt.Errorf("output gradient has shape %v, want %v", g.Shape, x.Shape)
	}
	if op.Needs(need, 0) {
		gx := zerosLike(x)
		par.For(len(x.F), par.MinWork, func(a, b int) {
			for i := a; i < b; i++ {
				if v := x.F[i]; v >= l && v <= h {
					gx.F[i] = g.F[i]
				}
			}
		})
		res[0] = gx
	}
	// PyTorch's clamp_backward_min_max: min takes the gradient where x < min
	// (if min < max), max where x > max (or everywhere when max < min).
	for i := 1; i <= 2; i++ {
		b := op.Arg(in, i)
		if !op.Needs(need, i) || b == nil || b.DType != tensor.Float32 {
			continue
		}
		s := 0.0
		for e, v := range x.F {
			if (i == 1 && v < l && l < h) || (i == 2 && (v > h || h < l)) {
				s += float64(g.F[e])
			}
		}
		gb := tensor.New(b.Shape...)
		gb.F[0] = float32(s)
		res[i] = gb
	}
	return res, nil
}

// preluKernel is PRelu: y = x for x > 0, slope*x otherwise, with slope
// broadcast to x's shape. Gradients follow PyTorch's prelu.
type preluKernel struct{}

func newPRelu(*graph.Node, int) (op.Kernel, error) { return preluKernel{}, nil }

func (preluKernel) check(in []*tensor.Tensor) (x, s *tensor.Tensor, p *bcast, err error) {
	if err = op.FloatArgs(in, &x, &s); err != nil {
		return
	}
	if out, e := tensor.BroadcastShape(x.Shape, s.Shape); e != nil || !tensor.SameShape(out, x.Shape) {
		err = fmt.Errorf("input 1 (slope) has shape %v, which does not broadcast to input 0's shape %v", s.Shape, x.Shape)
		return
	}
	p = planBcast(x.Shape, s.Shape)
	return
}

func (k preluKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, s, p, err := k.check(in)
	if err != nil {
		return nil, err
	}
	y := tensor.New(x.Shape...)
	st := p.st[0][len(p.dims)-1]
	p.run(1, func(o int, offs []int, run int) {
		j := offs[0]
		for e := o; e < o+run; e++ {
			if v := x.F[e]; v > 0 {
				y.F[e] = v
			} else {
				y.F[e] = s.F[j] * v
			}
			j += st
		}
	})
	return []*tensor.Tensor{y}, nil
}

func (k preluKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res := make([]*tensor.Tensor, len(in))
	x, s, p, err := k.check(in)
	if err != nil {
		return nil, err
	}
	g := op.GradAt(gout, 0)
	if g == nil {
		g = zerosLike(x)
	} else if len(g.F) != len(x.F) {
		return nil, fmt.Errorf("output gradient has shape %v, want %v", g.Shape, x.Shape)
	}
	st := p.st[0][len(p.dims)-1]
	if op.Needs(need, 0) {
		gx := zerosLike(x)
		p.run(1, func(o int, offs []int, run int) {
			j := offs[0]
			for e := o; e < o+run; e++ {
				if x.F[e] > 0 {
					gx.F[e] = g.F[e]
				} else {
					gx.F[e] = s.F[j] * g.F[e]
				}
				j += st
			}
		})
		res[0] = gx
	}
	if op.Needs(need, 1) {
		full := zerosLike(x)
		par.For(len(x.F), par.MinWork, func(a, b int) {
			for e := a; e < b; e++ {
				if v := x.F[e]; !(v > 0) {
					full.F[e] = v * g.F[e]
				}
			}
		})
		res[1] = sumTo(full, s.Shape)
	}
	return res, nil
}
