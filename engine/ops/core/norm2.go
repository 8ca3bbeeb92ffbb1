package core

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// extremeReduce is ReduceMax or ReduceMin; the gradient goes to the first
// extreme element in row-major order.
type extremeReduce struct {
	reduce
	max bool
}

func newExtremeReduce(isMax bool) op.Factory {
	return func(n *graph.Node, opset int) (op.Kernel, error) {
		return extremeReduce{reduce{axes: n.Ints("axes", nil), keepdims: n.Int("keepdims", 1) != 0, noopEmpty: n.Int("noop_with_empty_axes", 0) != 0}, isMax}, nil
	}
}

// argext returns the extreme values and their flat indices.
func (r extremeReduce) argext(in []*tensor.Tensor) ([]float32, []int, []int, []bool, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, nil, nil, nil, err
	}
	red, shape, err := r.plan(in)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	x := in[0]
	kept := keptShape(x.Shape, red)
	n := tensor.Size(kept)
	vals := make([]float32, n)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = -1
	}
	broadcast2(x.Shape, kept, x.Shape, func(o, _, j int) {
		v := x.F[o]
		if idx[j] < 0 || (r.max && v > vals[j]) || (!r.max && v < vals[j]) {
			vals[j], idx[j] = v, o
		}
	})
	return vals, idx, shape, red, nil
}

func (r extremeReduce) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	vals, _, shape, _, err := r.argext(in)
	if err != nil {
		return nil, err
	}
	return []*tensor.Tensor{{DType: tensor.Float32, Shape: shape, F: vals}}, nil
}

func (r extremeReduce) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, len(in))
	if !need[0] || gout[0] == nil {
		return g, nil
	}
	_, idx, _, _, err := r.argext(in)
	if err != nil {
		return nil, err
	}
	gx := tensor.New(in[0].Shape...)
	for j, i := range idx {
		gx.F[i] += gout[0].F[j]
	}
	g[0] = gx
	return g, nil
}

// argMax is ArgMax or ArgMin along one axis (int64 output, no gradient).
type argMax struct {
	axis      int64
	keepdims  bool
	last, max bool
}

func newArgMax(isMax bool) op.Factory {
	return func(n *graph.Node, opset int) (op.Kernel, error) {
		return argMax{axis: n.Int("axis", 0), keepdims: n.Int("keepdims", 1) != 0, last: n.Int("select_last_index", 0) != 0, max: isMax}, nil
	}
}

func (a argMax) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	x := in[0]
	ax, err := axis(nil, a.axis, x.Rank())
	if err != nil {
		return nil, err
	}
	outer, l, inner := tensor.Size(x.Shape[:ax]), x.Shape[ax], tensor.Size(x.Shape[ax+1:])
	var shape []int
	for d, v := range x.Shape {
		if d != ax {
			shape = append(shape, v)
		} else if a.keepdims {
			shape = append(shape, 1)
		}
	}
	y := tensor.NewInt(shape...)
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			best := 0
			for j := 1; j < l; j++ {
				v, b := x.F[(o*l+j)*inner+i], x.F[(o*l+best)*inner+i]
				better := (a.max && v > b) || (!a.max && v < b)
				if better || (a.last && v == b) {
					best = j
				}
			}
			y.I[o*inner+i] = int64(best)
		}
	}
	return []*tensor.Tensor{y}, nil
}

// layerNorm is LayerNormalization (opset 17) over the axes from axis on.
type layerNorm struct {
	axis int64
	eps  float32
	outs int
}

func newLayerNorm(n *graph.Node, opset int) (op.Kernel, error) {
	l := layerNorm{n.Int("axis", -1), n.Float("epsilon", 1e-5), len(n.Outputs)}
	for i, o := range n.Outputs {
		if i > 0 && o != "" {
			return nil, op.Errorf(n, "the Mean and InvStdDev outputs are not supported")
		}
	}
	return l, nil
}

func (l layerNorm) split(x *tensor.Tensor) (int, int, error) {
	a, err := axis(nil, l.axis, x.Rank())
	if err != nil {
		return 0, 0, err
	}
	return tensor.Size(x.Shape[:a]), tensor.Size(x.Shape[a:]), nil
}

// stats returns per-row mean and inverse standard deviation.
func (l layerNorm) stats(x *tensor.Tensor, rows, m int) ([]float32, []float32) {
	mean := make([]float32, rows)
	inv := make([]float32, rows)
	for r := 0; r < rows; r++ {
		row := x.F[r*m : (r+1)*m]
		var s float64
		for _, v := range row {
			s += float64(v)
		}
		mu := s / float64(m)
		var q float64
		for _, v := range row {
			d := float64(v) - mu
			q += d * d
		}
		mean[r] = float32(mu)
		inv[r] = float32(1 / math.Sqrt(q/float64(m)+float64(l.eps)))
	}
	return mean, inv
}

func (l layerNorm) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	x := in[0]
	rows, m, err := l.split(x)
	if err != nil {
		return nil, err
	}
	scale, bias := paramOf(in, 1, m), paramOf(in, 2, m)
	if (len(in) > 1 && in[1] != nil && scale == nil) || (len(in) > 2 && in[2] != nil && bias == nil) {
		return nil, fmt.Errorf("scale and bias must have %d elements", m)
	}
	mean, inv := l.stats(x, rows, m)
	y := tensor.New(x.Shape...)
	for r := 0; r < rows; r++ {
		for j := 0; j < m; j++ {
			v := (x.F[r*m+j] - mean[r]) * inv[r]
			if scale != nil {
				v *= scale[j]
			}
			if bias != nil {
				v += bias[j]
			}
			y.F[r*m+j] = v
		}
	}
	return []*tensor.Tensor{y}, nil
}

func paramOf(in []*tensor.Tensor, i, m int) []float32 {
	if len(in) <= i || in[i] == nil || in[i].DType != tensor.Float32 || in[i].Len() != m {
		return nil
	}
	return in[i].F
}

func (l layerNorm) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, len(in))
	gy := gout[0]
	if gy == nil {
		return g, nil
	}
	x := in[0]
	rows, m, err := l.split(x)
	if err != nil {
		return nil, err
	}
	scale := paramOf(in, 1, m)
	mean, inv := l.stats(x, rows, m)
	var gx, gs, gb *tensor.Tensor
	if need[0] {
		gx = tensor.New(x.Shape...)
	}
	if len(in) > 1 && in[1] != nil && need[1] {
		gs = tensor.New(in[1].Shape...)
	}
	if len(in) > 2 && in[2] != nil && need[2] {
		gb = tensor.New(in[2].Shape...)
	}
	xhat := make([]float32, m)
	gh := make([]float32, m)
	for r := 0; r < rows; r++ {
		var s1, s2 float32
		for j := 0; j < m; j++ {
			xhat[j] = (x.F[r*m+j] - mean[r]) * inv[r]
			gv := gy.F[r*m+j]
			if gs != nil {
				gs.F[j] += gv * xhat[j]
			}
			if gb != nil {
				gb.F[j] += gv
			}
			if scale != nil {
				gv *= scale[j]
			}
			gh[j] = gv
			s1 += gv
			s2 += gv * xhat[j]
		}
		if gx != nil {
			for j := 0; j < m; j++ {
				gx.F[r*m+j] = inv[r] * (gh[j] - s1/float32(m) - xhat[j]*s2/float32(m))
			}
		}
	}
	g[0] = gx
	if gs != nil {
		g[1] = gs
	}
	if gb != nil {
		g[2] = gb
	}
	return g, nil
}
