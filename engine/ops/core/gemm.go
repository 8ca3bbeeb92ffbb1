package core

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/kernels"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// sgemm is the engine's GEMM (see package kernels).
var sgemm = kernels.Sgemm

type gemm struct {
	alpha, beta    float32
	transA, transB bool
}

func newGemm(n *graph.Node, opset int) (op.Kernel, error) {
	return gemm{
		alpha:  n.Float("alpha", 1),
		beta:   n.Float("beta", 1),
		transA: n.Int("transA", 0) != 0,
		transB: n.Int("transB", 0) != 0,
	}, nil
}

func (g gemm) dims(in []*tensor.Tensor) (m, k, n int, err error) {
	for i := 0; i < 2; i++ {
		if err := wantFloat(in, i); err != nil {
			return 0, 0, 0, err
		}
		if in[i].Rank() != 2 {
			return 0, 0, 0, fmt.Errorf("input %d has shape %v, want a matrix", i, in[i].Shape)
		}
	}
	a, b := in[0].Shape, in[1].Shape
	m, k = a[0], a[1]
	if g.transA {
		m, k = k, m
	}
	kb, n := b[0], b[1]
	if g.transB {
		kb, n = n, kb
	}
	if k != kb {
		return 0, 0, 0, fmt.Errorf("input 0 has shape %v and input 1 %v: inner dimensions %d and %d differ", a, b, k, kb)
	}
	return m, k, n, nil
}

func (g gemm) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	m, k, n, err := g.dims(in)
	if err != nil {
		return nil, err
	}
	y := tensor.New(m, n)
	beta := float32(0)
	if len(in) > 2 && in[2] != nil && g.beta != 0 {
		c := in[2]
		if err := wantFloat(in, 2); err != nil {
			return nil, err
		}
		if _, err := tensor.BroadcastShape(c.Shape, y.Shape); err != nil || c.Rank() > 2 {
			return nil, fmt.Errorf("input 2 has shape %v, which does not broadcast to %v", c.Shape, y.Shape)
		}
		broadcast2(y.Shape, c.Shape, y.Shape, func(o, _, j int) { y.F[o] = c.F[j] })
		beta = g.beta
	}
	sgemm(g.transA, g.transB, m, n, k, g.alpha, in[0].F, in[0].Shape[1], in[1].F, in[1].Shape[1], beta, y.F, n)
	return []*tensor.Tensor{y}, nil
}

func (g gemm) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	gy := gout[0]
	if gy == nil {
		return grads, nil
	}
	m, k, n, err := g.dims(in)
	if err != nil {
		return nil, err
	}
	a, b := in[0], in[1]
	if need[0] {
		// dA' = gy * B'^T (A' = op(A), B' = op(B)), then transposed back if needed.
		ga := tensor.New(a.Shape...)
		if !g.transA {
			sgemm(false, !g.transB, m, k, n, g.alpha, gy.F, n, b.F, b.Shape[1], 0, ga.F, k)
		} else {
			// A is k×m; dA = B' * gy^T.
			sgemm(g.transB, true, k, m, n, g.alpha, b.F, b.Shape[1], gy.F, n, 0, ga.F, m)
		}
		grads[0] = ga
	}
	if need[1] {
		gb := tensor.New(b.Shape...)
		if !g.transB {
			// B is k×n; dB = A'^T * gy.
			sgemm(!g.transA, false, k, n, m, g.alpha, a.F, a.Shape[1], gy.F, n, 0, gb.F, n)
		} else {
			// B is n×k; dB = gy^T * A'.
			sgemm(true, g.transA, n, k, m, g.alpha, gy.F, n, a.F, a.Shape[1], 0, gb.F, k)
		}
		grads[1] = gb
	}
	if len(in) > 2 && in[2] != nil && need[2] {
		full := tensor.New(gy.Shape...)
		for i, v := range gy.F {
			full.F[i] = v * g.beta
		}
		grads[2] = tensor.SumTo(full, in[2].Shape)
	}
	return grads, nil
}

// matmul is numpy's matmul for a batch of matrices times a matrix or a
// batch of the same size (the common exported cases).
type matmul struct{}

func newMatMul(n *graph.Node, opset int) (op.Kernel, error) { return matmul{}, nil }

func (matmul) dims(in []*tensor.Tensor) (batch, m, k, n int, bBatched bool, err error) {
	for i := 0; i < 2; i++ {
		if err := wantFloat(in, i); err != nil {
			return 0, 0, 0, 0, false, err
		}
		if in[i].Rank() < 2 {
			return 0, 0, 0, 0, false, fmt.Errorf("input %d has shape %v; 1-D matmul operands are not supported", i, in[i].Shape)
		}
	}
	a, b := in[0].Shape, in[1].Shape
	m, k = a[len(a)-2], a[len(a)-1]
	kb, n := b[len(b)-2], b[len(b)-1]
	if k != kb {
		return 0, 0, 0, 0, false, fmt.Errorf("input 0 has shape %v and input 1 %v: inner dimensions %d and %d differ", a, b, k, kb)
	}
	batch = tensor.Size(a[:len(a)-2])
	switch {
	case len(b) == 2:
	case tensor.SameShape(a[:len(a)-2], b[:len(b)-2]):
		bBatched = true
	default:
		return 0, 0, 0, 0, false, fmt.Errorf("batch dimensions of %v and %v are not supported together", a, b)
	}
	return batch, m, k, n, bBatched, nil
}

func (mm matmul) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	batch, m, k, n, bb, err := mm.dims(in)
	if err != nil {
		return nil, err
	}
	shape := append(append([]int(nil), in[0].Shape[:in[0].Rank()-1]...), n)
	y := tensor.New(shape...)
	if !bb {
		sgemm(false, false, batch*m, n, k, 1, in[0].F, k, in[1].F, n, 0, y.F, n)
	} else {
		for i := 0; i < batch; i++ {
			sgemm(false, false, m, n, k, 1, in[0].F[i*m*k:], k, in[1].F[i*k*n:], n, 0, y.F[i*m*n:], n)
		}
	}
	return []*tensor.Tensor{y}, nil
}

func (mm matmul) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, 2)
	gy := gout[0]
	if gy == nil {
		return grads, nil
	}
	batch, m, k, n, bb, err := mm.dims(in)
	if err != nil {
		return nil, err
	}
	a, b := in[0], in[1]
	if need[0] {
		ga := tensor.New(a.Shape...)
		if !bb {
			sgemm(false, true, batch*m, k, n, 1, gy.F, n, b.F, n, 0, ga.F, k)
		} else {
			for i := 0; i < batch; i++ {
				sgemm(false, true, m, k, n, 1, gy.F[i*m*n:], n, b.F[i*k*n:], n, 0, ga.F[i*m*k:], k)
			}
		}
		grads[0] = ga
	}
	if need[1] {
		gb := tensor.New(b.Shape...)
		if !bb {
			sgemm(true, false, k, n, batch*m, 1, a.F, k, gy.F, n, 0, gb.F, n)
		} else {
			for i := 0; i < batch; i++ {
				sgemm(true, false, k, n, m, 1, a.F[i*m*k:], k, gy.F[i*m*n:], n, 0, gb.F[i*k*n:], n)
			}
		}
		grads[1] = gb
	}
	return grads, nil
}
