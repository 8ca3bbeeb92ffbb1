package core

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// compare is a broadcasting comparison or logic op with a bool output.
type compare struct{ kind string }

func newCompare(kind string) op.Factory {
	return func(n *graph.Node, opset int) (op.Kernel, error) { return compare{kind}, nil }
}

func (c compare) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if c.kind == "Not" {
		if in[0].DType != tensor.Bool {
			return nil, fmt.Errorf("Not needs a bool input, got %s", in[0].DType)
		}
		y := tensor.NewBool(in[0].Shape...)
		for i, v := range in[0].B {
			y.B[i] = !v
		}
		return []*tensor.Tensor{y}, nil
	}
	if len(in) != 2 || in[0] == nil || in[1] == nil {
		return nil, fmt.Errorf("%s needs 2 inputs", c.kind)
	}
	x, z := in[0], in[1]
	if x.DType != z.DType {
		return nil, fmt.Errorf("input 0 is %s, input 1 is %s", x.DType, z.DType)
	}
	shape, err := tensor.BroadcastShape(x.Shape, z.Shape)
	if err != nil {
		return nil, err
	}
	y := tensor.NewBool(shape...)
	broadcast2(x.Shape, z.Shape, shape, func(o, i, j int) {
		if x.DType == tensor.Bool {
			a, b := x.B[i], z.B[j]
			switch c.kind {
			case "And":
				y.B[o] = a && b
			case "Or":
				y.B[o] = a || b
			case "Xor":
				y.B[o] = a != b
			case "Equal":
				y.B[o] = a == b
			}
			return
		}
		a, b := x.Float64At(i), z.Float64At(j)
		switch c.kind {
		case "Equal":
			y.B[o] = a == b
		case "Less":
			y.B[o] = a < b
		case "LessOrEqual":
			y.B[o] = a <= b
		case "Greater":
			y.B[o] = a > b
		case "GreaterOrEqual":
			y.B[o] = a >= b
		}
	})
	return []*tensor.Tensor{y}, nil
}

// where is Where(condition, X, Y) with broadcasting.
type where struct{}

func newWhere(n *graph.Node, opset int) (op.Kernel, error) { return where{}, nil }

func (where) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if len(in) != 3 || in[0] == nil || in[1] == nil || in[2] == nil {
		return nil, fmt.Errorf("Where needs 3 inputs")
	}
	c, x, z := in[0], in[1], in[2]
	if c.DType != tensor.Bool {
		return nil, fmt.Errorf("condition is %s, want bool", c.DType)
	}
	if x.DType != z.DType {
		return nil, fmt.Errorf("input 1 is %s, input 2 is %s", x.DType, z.DType)
	}
	s, err := tensor.BroadcastShape(c.Shape, x.Shape)
	if err != nil {
		return nil, err
	}
	if s, err = tensor.BroadcastShape(s, z.Shape); err != nil {
		return nil, err
	}
	y := tensor.Zeros(x.DType, s)
	sc, sx, sz := tensor.BroadcastStrides(c.Shape, s), tensor.BroadcastStrides(x.Shape, s), tensor.BroadcastStrides(z.Shape, s)
	idx := make([]int, len(s))
	for o := 0; o < y.Len(); o++ {
		ic, ix, iz := 0, 0, 0
		for d, v := range idx {
			ic += v * sc[d]
			ix += v * sx[d]
			iz += v * sz[d]
		}
		src, j := z, iz
		if c.B[ic] {
			src, j = x, ix
		}
		switch y.DType {
		case tensor.Float32:
			y.F[o] = src.F[j]
		case tensor.Int64:
			y.I[o] = src.I[j]
		default:
			y.B[o] = src.B[j]
		}
		for d := len(s) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < s[d] {
				break
			}
			idx[d] = 0
		}
	}
	return []*tensor.Tensor{y}, nil
}

func (where) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, 3)
	if gout[0] == nil || in[1].DType != tensor.Float32 {
		return g, nil
	}
	c, s := in[0], gout[0].Shape
	for k := 1; k <= 2; k++ {
		if !need[k] {
			continue
		}
		full := tensor.New(s...)
		broadcast2(c.Shape, s, s, func(o, i, _ int) {
			if c.B[i] == (k == 1) {
				full.F[o] = gout[0].F[o]
			}
		})
		g[k] = tensor.SumTo(full, in[k].Shape)
	}
	return g, nil
}

// pow is Pow with broadcasting (float).
type pow struct{}

func newPow(n *graph.Node, opset int) (op.Kernel, error) { return pow{}, nil }

func (pow) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	x, e := in[0], in[1].AsFloat32()
	s, err := tensor.BroadcastShape(x.Shape, e.Shape)
	if err != nil {
		return nil, err
	}
	y := tensor.New(s...)
	broadcast2(x.Shape, e.Shape, s, func(o, i, j int) { y.F[o] = float32(math.Pow(float64(x.F[i]), float64(e.F[j]))) })
	return []*tensor.Tensor{y}, nil
}

func (pow) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, 2)
	if gout[0] == nil {
		return g, nil
	}
	x, e, y := in[0], in[1].AsFloat32(), out[0]
	s := y.Shape
	if need[0] {
		full := tensor.New(s...)
		broadcast2(x.Shape, e.Shape, s, func(o, i, j int) {
			full.F[o] = gout[0].F[o] * e.F[j] * float32(math.Pow(float64(x.F[i]), float64(e.F[j]-1)))
		})
		g[0] = tensor.SumTo(full, x.Shape)
	}
	if need[1] && in[1].DType == tensor.Float32 {
		full := tensor.New(s...)
		broadcast2(x.Shape, e.Shape, s, func(o, i, j int) {
			if x.F[i] > 0 {
				full.F[o] = gout[0].F[o] * y.F[o] * float32(math.Log(float64(x.F[i])))
			}
		})
		g[1] = tensor.SumTo(full, e.Shape)
	}
	return g, nil
}

// extremum is Max or Min of two broadcast inputs; ties send the gradient to
// the first input.
type extremum struct{ max bool }

func newExtremum(isMax bool) op.Factory {
	return func(n *graph.Node, opset int) (op.Kernel, error) {
		if len(n.Inputs) != 2 {
			return nil, op.Errorf(n, "%s with %d inputs is not supported (2 only)", n.OpType, len(n.Inputs))
		}
		return extremum{isMax}, nil
	}
}

func (m extremum) pick(a, b float32) bool { // true: a wins
	if m.max {
		return a >= b
	}
	return a <= b
}

func (m extremum) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	if err := wantFloat(in, 1); err != nil {
		return nil, err
	}
	x, z := in[0], in[1]
	s, err := tensor.BroadcastShape(x.Shape, z.Shape)
	if err != nil {
		return nil, err
	}
	y := tensor.New(s...)
	broadcast2(x.Shape, z.Shape, s, func(o, i, j int) {
		if m.pick(x.F[i], z.F[j]) {
			y.F[o] = x.F[i]
		} else {
			y.F[o] = z.F[j]
		}
	})
	return []*tensor.Tensor{y}, nil
}

func (m extremum) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, 2)
	if gout[0] == nil {
		return g, nil
	}
	x, z := in[0], in[1]
	s := gout[0].Shape
	for k := 0; k < 2; k++ {
		if !need[k] {
			continue
		}
		full := tensor.New(s...)
		broadcast2(x.Shape, z.Shape, s, func(o, i, j int) {
			if m.pick(x.F[i], z.F[j]) == (k == 0) {
				full.F[o] = gout[0].F[o]
			}
		})
		g[k] = tensor.SumTo(full, in[k].Shape)
	}
	return g, nil
}
