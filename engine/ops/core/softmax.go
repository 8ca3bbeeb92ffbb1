package core

import (
	"math"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// softmax is Softmax or LogSoftmax. From opset 13 it works along one axis
// (default -1); before, the input is seen as a matrix split at axis
// (default 1) and the softmax runs over each row.
type softmax struct {
	axis   int64
	legacy bool
	log    bool
}

func newSoftmax(n *graph.Node, opset int) (op.Kernel, error) {
	return newSoftmaxKind(n, opset, false)
}

func newLogSoftmax(n *graph.Node, opset int) (op.Kernel, error) {
	return newSoftmaxKind(n, opset, true)
}

func newSoftmaxKind(n *graph.Node, opset int, log bool) (op.Kernel, error) {
	s := softmax{legacy: opset < 13, log: log}
	def := int64(-1)
	if s.legacy {
		def = 1
	}
	s.axis = n.Int("axis", def)
	return s, nil
}

// layout returns (outer, length, inner): the softmax runs over length
// elements spaced inner apart.
func (s softmax) layout(shape []int) (int, int, int, error) {
	a, err := axis(nil, s.axis, max(len(shape), 1))
	if err != nil {
		return 0, 0, 0, err
	}
	if s.legacy {
		return tensor.Size(shape[:a]), tensor.Size(shape[a:]), 1, nil
	}
	return tensor.Size(shape[:a]), shape[a], tensor.Size(shape[a+1:]), nil
}

func (s softmax) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	x := in[0]
	outer, l, inner, err := s.layout(x.Shape)
	if err != nil {
		return nil, err
	}
	y := tensor.New(x.Shape...)
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*l*inner + i
			m := float32(math.Inf(-1))
			for j := 0; j < l; j++ {
				m = max(m, x.F[base+j*inner])
			}
			var sum float32
			for j := 0; j < l; j++ {
				e := float32(math.Exp(float64(x.F[base+j*inner] - m)))
				y.F[base+j*inner] = e
				sum += e
			}
			if s.log {
				ls := float32(math.Log(float64(sum)))
				for j := 0; j < l; j++ {
					y.F[base+j*inner] = x.F[base+j*inner] - m - ls
				}
			} else {
				for j := 0; j < l; j++ {
					y.F[base+j*inner] /= sum
				}
			}
		}
	}
	return []*tensor.Tensor{y}, nil
}

func (s softmax) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	if !need[0] || gout[0] == nil {
		return []*tensor.Tensor{nil}, nil
	}
	y, g := out[0], gout[0]
	outer, l, inner, err := s.layout(y.Shape)
	if err != nil {
		return nil, err
	}
	gx := tensor.New(y.Shape...)
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*l*inner + i
			var dot float32
			for j := 0; j < l; j++ {
				k := base + j*inner
				if s.log {
					dot += g.F[k]
				} else {
					dot += g.F[k] * y.F[k]
				}
			}
			for j := 0; j < l; j++ {
				k := base + j*inner
				if s.log {
					gx.F[k] = g.F[k] - float32(math.Exp(float64(y.F[k])))*dot
				} else {
					gx.F[k] = y.F[k] * (g.F[k] - dot)
				}
			}
		}
	}
	return []*tensor.Tensor{gx}, nil
}
