package mathops

import (
	"cmp"
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// cmpOp names a comparison or logical operation.
type cmpOp uint8

const (
	cmpEq cmpOp = iota
	cmpLt
	cmpLe
	cmpGt
	cmpGe
	logAnd
	logOr
	logXor
)

var cmpByName = map[string]cmpOp{
	"Equal": cmpEq, "Less": cmpLt, "LessOrEqual": cmpLe, "Greater": cmpGt,
	"GreaterOrEqual": cmpGe, "And": logAnd, "Or": logOr, "Xor": logXor,
}

// compareKernel is a broadcasting comparison (float32, int64; Equal also
// bool) or logical op (bool). Its output is bool and has no gradient.
type compareKernel struct{ op cmpOp }

func newCompare(name string) op.Factory {
	k := compareKernel{op: cmpByName[name]}
	return func(*graph.Node, int) (op.Kernel, error) { return k, nil }
}

func compareOrdered[T cmp.Ordered](op cmpOp, a, b T) bool {
	switch op {
	case cmpEq:
		return a == b
	case cmpLt:
		return a < b
	case cmpLe:
		return a <= b
	case cmpGt:
		return a > b
	default:
		return a >= b
	}
}

func compareBool(op cmpOp, a, b bool) bool {
	switch op {
	case logAnd:
		return a && b
	case logOr:
		return a || b
	default: // Xor, Equal
		if op == cmpEq {
			return a == b
		}
		return a != b
	}
}

// compareLoop writes op(a, b) over a broadcast plan.
func compareLoop[T any](p *bcast, y []bool, a, b []T, f func(x, z T) bool) {
	sa, sb := p.st[0][len(p.dims)-1], p.st[1][len(p.dims)-1]
	p.run(2, func(o int, offs []int, run int) {
		i, j := offs[0], offs[1]
		for e := o; e < o+run; e++ {
			y[e] = f(a[i], b[j])
			i += sa
			j += sb
		}
	})
}

func (k compareKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	var a, b *tensor.Tensor
	if err := op.AnyArgs(in, &a, &b); err != nil {
		return nil, err
	}
	if a.DType != b.DType {
		return nil, fmt.Errorf("input 0 is %s and input 1 is %s, want the same type", a.DType, b.DType)
	}
	logical := k.op >= logAnd
	switch {
	case logical && a.DType != tensor.Bool:
		return nil, fmt.Errorf("input 0 is %s, want bool", a.DType)
	case !logical && a.DType == tensor.Bool && k.op != cmpEq:
		return nil, fmt.Errorf("input 0 is bool, want float32 or int64")
	}
	out, err := tensor.BroadcastShape(a.Shape, b.Shape)
	if err != nil {
		return nil, broadcastErr(0, 1, a, b)
	}
	y := tensor.NewBool(out...)
	if y.Len() == 0 {
		return []*tensor.Tensor{y}, nil
	}
	p := planBcast(y.Shape, a.Shape, b.Shape)
	o := k.op
	switch a.DType {
	case tensor.Float32:
		compareLoop(p, y.B, a.F, b.F, func(x, z float32) bool { return compareOrdered(o, x, z) })
	case tensor.Int64:
		compareLoop(p, y.B, a.I, b.I, func(x, z int64) bool { return compareOrdered(o, x, z) })
	default:
		compareLoop(p, y.B, a.B, b.B, func(x, z bool) bool { return compareBool(o, x, z) })
	}
	return []*tensor.Tensor{y}, nil
}

// notKernel is logical Not.
type notKernel struct{}

func newNot(*graph.Node, int) (op.Kernel, error) { return notKernel{}, nil }

func (notKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	if x.DType != tensor.Bool {
		return nil, fmt.Errorf("input 0 is %s, want bool", x.DType)
	}
	y := tensor.NewBool(x.Shape...)
	for i, v := range x.B {
		y.B[i] = !v
	}
	return []*tensor.Tensor{y}, nil
}

// whereKernel is Where(condition, X, Y) with three-way broadcasting. X and Y
// may be float32, int64 or bool; the gradient flows to X where the
// condition holds and to Y elsewhere.
type whereKernel struct{}

func newWhere(*graph.Node, int) (op.Kernel, error) { return whereKernel{}, nil }

func whereLoop[T any](p *bcast, dst []T, c []bool, x, y []T) {
	last := len(p.dims) - 1
	sc, sx, sy := p.st[0][last], p.st[1][last], p.st[2][last]
	p.run(2, func(o int, offs []int, run int) {
		i, j, k := offs[0], offs[1], offs[2]
		for e := o; e < o+run; e++ {
			if c[i] {
				dst[e] = x[j]
			} else {
				dst[e] = y[k]
			}
			i += sc
			j += sx
			k += sy
		}
	})
}

func (whereKernel) check(in []*tensor.Tensor) (c, x, y *tensor.Tensor, out []int, err error) {
	if err = op.AnyArgs(in, &c, &x, &y); err != nil {
		return
	}
	if c.DType != tensor.Bool {
		err = fmt.Errorf("input 0 (condition) is %s, want bool", c.DType)
		return
	}
	if x.DType != y.DType {
		err = fmt.Errorf("input 1 is %s and input 2 is %s, want the same type", x.DType, y.DType)
		return
	}
	if out, err = broadcastShapes(c.Shape, x.Shape, y.Shape); err != nil {
		err = fmt.Errorf("inputs of shapes %v, %v and %v do not broadcast", c.Shape, x.Shape, y.Shape)
	}
	return
}

func (k whereKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	c, x, y, out, err := k.check(in)
	if err != nil {
		return nil, err
	}
	r := tensor.Zeros(x.DType, out)
	if r.Len() == 0 {
		return []*tensor.Tensor{r}, nil
	}
	p := planBcast(out, c.Shape, x.Shape, y.Shape)
	switch x.DType {
	case tensor.Float32:
		whereLoop(p, r.F, c.B, x.F, y.F)
	case tensor.Int64:
		whereLoop(p, r.I, c.B, x.I, y.I)
	default:
		whereLoop(p, r.B, c.B, x.B, y.B)
	}
	return []*tensor.Tensor{r}, nil
}

func (k whereKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res := make([]*tensor.Tensor, len(in))
	c, x, y, shape, err := k.check(in)
	if err != nil {
		return nil, err
	}
	if x.DType != tensor.Float32 || (!op.Needs(need, 1) && !op.Needs(need, 2)) {
		return res, nil
	}
	g, err := gradOrZeros(gout, shape)
	if err != nil {
		return nil, err
	}
	p := planBcast(shape, c.Shape)
	sc := p.st[0][len(p.dims)-1]
	for side, t := range []*tensor.Tensor{x, y} {
		if !op.Needs(need, side+1) {
			continue
		}
		keep := side == 0 // X takes the gradient where the condition holds
		full := tensor.New(shape...)
		p.run(1, func(o int, offs []int, run int) {
			i := offs[0]
			for e := o; e < o+run; e++ {
				if c.B[i] == keep {
					full.F[e] = g.F[e]
				}
				i += sc
			}
		})
		res[side+1] = sumTo(full, t.Shape)
	}
	return res, nil
}
