package core

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// unary is an elementwise float op: f gives y from x, df the derivative
// from x and y.
type unary struct {
	f  func(x float32) float32
	df func(x, y float32) float32
}

func (u unary) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	x := in[0]
	y := tensor.New(x.Shape...)
	parallel(len(x.F), len(x.F)*8, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y.F[i] = u.f(x.F[i])
		}
	})
	return []*tensor.Tensor{y}, nil
}

func (u unary) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	if !need[0] || gout[0] == nil {
		return []*tensor.Tensor{nil}, nil
	}
	x, y, g := in[0], out[0], gout[0]
	gx := tensor.New(x.Shape...)
	parallel(len(x.F), len(x.F)*8, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gx.F[i] = g.F[i] * u.df(x.F[i], y.F[i])
		}
	})
	return []*tensor.Tensor{gx}, nil
}

func newRelu(n *graph.Node, opset int) (op.Kernel, error) {
	return unary{
		f: func(x float32) float32 {
			if x > 0 {
				return x
			}
			return 0
		},
		// PyTorch: the derivative at exactly 0 is 0.
		df: func(x, _ float32) float32 {
			if x > 0 {
				return 1
			}
			return 0
		},
	}, nil
}

func newSigmoid(n *graph.Node, opset int) (op.Kernel, error) {
	return unary{
		f: func(x float32) float32 {
			if x >= 0 {
				return float32(1 / (1 + math.Exp(-float64(x))))
			}
			e := math.Exp(float64(x))
			return float32(e / (1 + e))
		},
		df: func(_, y float32) float32 { return y * (1 - y) },
	}, nil
}

func newTanh(n *graph.Node, opset int) (op.Kernel, error) {
	return unary{
		f:  func(x float32) float32 { return float32(math.Tanh(float64(x))) },
		df: func(_, y float32) float32 { return 1 - y*y },
	}, nil
}

type identity struct{}

func (identity) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if len(in) == 0 || in[0] == nil {
		return nil, fmt.Errorf("input 0 is missing")
	}
	mask := tensor.NewBool(in[0].Shape...)
	for i := range mask.B {
		mask.B[i] = true
	}
	return []*tensor.Tensor{in[0], mask}, nil
}

func (identity) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, len(in))
	if need[0] {
		g[0] = gout[0]
	}
	return g, nil
}

func newIdentity(n *graph.Node, opset int) (op.Kernel, error) { return identity{}, nil }

// binary is a broadcasting arithmetic op on float32 or int64 tensors.
type binary struct{ kind string }

func newBinary(kind string) op.Factory {
	return func(n *graph.Node, opset int) (op.Kernel, error) { return binary{kind}, nil }
}

func (b binary) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if len(in) != 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("%s needs 2 inputs", b.kind)
	}
	x, y := in[0], in[1]
	if x.DType != y.DType {
		return nil, fmt.Errorf("input 0 is %s, input 1 is %s", x.DType, y.DType)
	}
	shape, err := tensor.BroadcastShape(x.Shape, y.Shape)
	if err != nil {
		return nil, err
	}
	switch x.DType {
	case tensor.Float32:
		out := tensor.New(shape...)
		f := floatOp(b.kind)
		if tensor.SameShape(x.Shape, y.Shape) {
			parallel(len(out.F), len(out.F)*4, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					out.F[i] = f(x.F[i], y.F[i])
				}
			})
		} else {
			broadcast2(x.Shape, y.Shape, shape, func(o, i, j int) { out.F[o] = f(x.F[i], y.F[j]) })
		}
		return []*tensor.Tensor{out}, nil
	case tensor.Int64:
		out := tensor.NewInt(shape...)
		var bad error
		broadcast2(x.Shape, y.Shape, shape, func(o, i, j int) {
			a, c := x.I[i], y.I[j]
			switch b.kind {
			case "Add":
				out.I[o] = a + c
			case "Sub":
				out.I[o] = a - c
			case "Mul":
				out.I[o] = a * c
			case "Div":
				if c == 0 {
					bad = fmt.Errorf("integer division by zero")
					return
				}
				out.I[o] = a / c
			}
		})
		return []*tensor.Tensor{out}, bad
	}
	return nil, fmt.Errorf("%s on %s tensors is not supported", b.kind, x.DType)
}

func floatOp(kind string) func(a, b float32) float32 {
	switch kind {
	case "Add":
		return func(a, b float32) float32 { return a + b }
	case "Sub":
		return func(a, b float32) float32 { return a - b }
	case "Mul":
		return func(a, b float32) float32 { return a * b }
	}
	return func(a, b float32) float32 { return a / b }
}

// broadcast2 calls f(outIndex, xIndex, yIndex) for every element of the
// broadcast shape, in order.
func broadcast2(xs, ys, shape []int, f func(o, i, j int)) {
	sx := tensor.BroadcastStrides(xs, shape)
	sy := tensor.BroadcastStrides(ys, shape)
	n := len(shape)
	total := tensor.Size(shape)
	idx := make([]int, n)
	i, j := 0, 0
	for o := 0; o < total; o++ {
		f(o, i, j)
		for d := n - 1; d >= 0; d-- {
			idx[d]++
			i += sx[d]
			j += sy[d]
			if idx[d] < shape[d] {
				break
			}
			i -= sx[d] * idx[d]
			j -= sy[d] * idx[d]
			idx[d] = 0
		}
	}
}

func (b binary) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, 2)
	g := gout[0]
	if g == nil || in[0].DType != tensor.Float32 {
		return grads, nil
	}
	x, y := in[0], in[1]
	shape := g.Shape
	same := tensor.SameShape(x.Shape, y.Shape)
	for k := 0; k < 2; k++ {
		if !need[k] {
			continue
		}
		full := tensor.New(shape...)
		switch {
		case b.kind == "Add" || (b.kind == "Sub" && k == 0):
			copy(full.F, g.F)
		case b.kind == "Sub":
			for i, v := range g.F {
				full.F[i] = -v
			}
		case b.kind == "Mul" && same:
			other := y
			if k == 1 {
				other = x
			}
			for i, v := range g.F {
				full.F[i] = v * other.F[i]
			}
		case b.kind == "Mul":
			broadcast2(x.Shape, y.Shape, shape, func(o, i, j int) {
				if k == 0 {
					full.F[o] = g.F[o] * y.F[j]
				} else {
					full.F[o] = g.F[o] * x.F[i]
				}
			})
		default: // Div
			broadcast2(x.Shape, y.Shape, shape, func(o, i, j int) {
				if k == 0 {
					full.F[o] = g.F[o] / y.F[j]
				} else {
					full.F[o] = -g.F[o] * x.F[i] / (y.F[j] * y.F[j])
				}
			})
		}
		target := x.Shape
		if k == 1 {
			target = y.Shape
		}
		grads[k] = tensor.SumTo(full, target)
	}
	return grads, nil
}
