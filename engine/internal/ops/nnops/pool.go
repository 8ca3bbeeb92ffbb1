package nnops

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/internal/kernels"
	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// taps describes, along one axis, which kernel taps of each output position
// fall inside the input: taps k in [k0[o], k1[o]) at input positions
// start[o] + k*d; incl[o] counts the taps inside the input or its padding.
type taps struct {
	start, k0, k1, incl []int
}

func newTaps(in, out, k, s, d, pb, pe int) taps {
	buf := make([]int, 4*out)
	t := taps{start: buf[:out], k0: buf[out : 2*out], k1: buf[2*out : 3*out], incl: buf[3*out:]}
	for o := 0; o < out; o++ {
		st := o*s - pb
		t.start[o] = st
		k0 := 0
		if st < 0 {
			k0 = ceilDiv(-st, d)
		}
		k1 := min(k, ceilDiv(in-st, d))
		if k1 < k0 {
			k1 = k0
		}
		t.k0[o], t.k1[o] = min(k0, k), max(min(k1, k), min(k0, k))
		t.incl[o] = max(min(k, ceilDiv(in+pe-st, d)), 0)
	}
	return t
}

// input reads a pooling's input 0 (float32) and resolves the window on it.
func (w window) input(in []*tensor.Tensor) (*tensor.Tensor, geom, error) {
	x, err := op.FloatArg(in, 0)
	if err != nil {
		return nil, geom{}, err
	}
	g, err := w.resolve(x, "input 0")
	return x, g, err
}

// poolTaps returns the taps of both axes of a resolved window.
func (g geom) poolTaps() (th, tw taps) {
	return newTaps(g.H, g.OH, g.KH, g.SH, g.DH, g.PT, g.PB), newTaps(g.W, g.OW, g.KW, g.SW, g.DW, g.PL, g.PR)
}

// maxPool is the MaxPool kernel.
type maxPool struct {
	win          window
	indices      bool // the node asks for the Indices output
	columnMajor  bool // storage_order 1
	nodeForError *graph.Node
}

func newMaxPool(n *graph.Node, opset int) (op.Kernel, error) {
	w, err := parseWindow(n, nil, true)
	if err != nil {
		return nil, err
	}
	so := n.Int("storage_order", 0)
	if so != 0 && so != 1 {
		return nil, op.Errorf(n, "unsupported storage_order %d", so)
	}
	return &maxPool{win: w, indices: op.OutputCount(n) > 1, columnMajor: so == 1, nodeForError: n}, nil
}

// windowMax returns the first maximum of one window (as PyTorch's CPU
// kernel: NaN wins) and its position in the plane, or -Inf and -1 when the
// window holds no input element.
func windowMax(xp []float32, w, hs, h0, h1, dh, ws, w0, w1, dw int) (float32, int) {
	if h0 >= h1 || w0 >= w1 {
		return float32(math.Inf(-1)), -1
	}
	best := float32(math.Inf(-1))
	bi := (hs+h0*dh)*w + ws + w0*dw
	for kh := h0; kh < h1; kh++ {
		r := (hs + kh*dh) * w
		for kw := w0; kw < w1; kw++ {
			i := r + ws + kw*dw
			v := xp[i]
			if v > best || v != v {
				best, bi = v, i
			}
		}
	}
	return best, bi
}

// poolWindows writes into y the maximum (avg nil) or the average (by
// avg.divisor) of every window of x: over the window's rows first, whole
// input rows at once, then over its columns.
func poolWindows(g geom, th, tw taps, x, y []float32, avg *avgPool) {
	plane, inPlane := g.OH*g.OW, g.H*g.W
	w, dh, dw, ow := g.W, g.DH, g.DW, g.OW
	empty := float32(math.Inf(-1)) // the maximum of no element
	if avg != nil {
		empty = 0
	}
	par.Chunks(g.N*g.C, par.ChunkCount(g.N*g.C, plane*g.KH*g.KW), func(_, lo, hi int) {
		tmp := make([]float32, w)
		for nc := lo; nc < hi; nc++ {
			xp := x[nc*inPlane : (nc+1)*inPlane]
			yp := y[nc*plane : (nc+1)*plane]
			for oh := 0; oh < g.OH; oh++ {
				hs, h0, h1 := th.start[oh], th.k0[oh], th.k1[oh]
				yr := yp[oh*ow : (oh+1)*ow]
				if h0 >= h1 {
					for i := range yr {
						yr[i] = empty
					}
					continue
				}
				r0 := (hs + h0*dh) * w
				copy(tmp, xp[r0:r0+w])
				for kh := h0 + 1; kh < h1; kh++ {
					r := (hs + kh*dh) * w
					row := xp[r : r+w]
					if avg == nil {
						kernels.MaxInto(tmp, row)
					} else {
						for i, v := range row {
							tmp[i] += v
						}
					}
				}
				if avg == nil {
					for o := range yr {
						ws, w0, w1 := tw.start[o], tw.k0[o], tw.k1[o]
						m := empty
						for kw := w0; kw < w1; kw++ {
							m = max(m, tmp[ws+kw*dw])
						}
						yr[o] = m
					}
					continue
				}
				for o := range yr {
					ws, w0, w1 := tw.start[o], tw.k0[o], tw.k1[o]
					var s float32
					for kw := w0; kw < w1; kw++ {
						s += tmp[ws+kw*dw]
					}
					if d := avg.divisor(th, tw, oh, o); d != 0 {
						s /= d
					}
					yr[o] = s
				}
			}
		}
	})
}

func (k *maxPool) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return k.ForwardAlloc(in, nil)
}

// ForwardAlloc is Forward with the output from alloc (nil: tensor.New).
func (k *maxPool) ForwardAlloc(in []*tensor.Tensor, alloc op.Alloc) ([]*tensor.Tensor, error) {
	x, g, err := k.win.input(in)
	if err != nil {
		return nil, err
	}
	y := op.NewOr(alloc, g.outShape(g.C)...)
	var idx *tensor.Tensor
	if k.indices {
		idx = tensor.NewInt(g.outShape(g.C)...)
	}
	th, tw := g.poolTaps()
	plane, inPlane := g.OH*g.OW, g.H*g.W
	if idx == nil {
		poolWindows(g, th, tw, x.F, y.F, nil)
		return []*tensor.Tensor{y}, nil
	}
	par.Chunks(g.N*g.C, par.ChunkCount(g.N*g.C, plane*g.KH*g.KW), func(_, lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			xp := x.F[nc*inPlane : (nc+1)*inPlane]
			yp := y.F[nc*plane : (nc+1)*plane]
			for oh := 0; oh < g.OH; oh++ {
				hs, h0, h1 := th.start[oh], th.k0[oh], th.k1[oh]
				for ow := 0; ow < g.OW; ow++ {
					v, i := windowMax(xp, g.W, hs, h0, h1, g.DH, tw.start[ow], tw.k0[ow], tw.k1[ow], g.DW)
					yp[oh*g.OW+ow] = v
					if idx != nil {
						j := int64(-1)
						if i >= 0 {
							if k.columnMajor {
								j = int64(nc*inPlane + (i%g.W)*g.H + i/g.W)
							} else {
								j = int64(nc*inPlane + i)
							}
						}
						idx.I[nc*plane+oh*g.OW+ow] = j
					}
				}
			}
		}
	})
	if idx != nil {
		return []*tensor.Tensor{y, idx}, nil
	}
	return []*tensor.Tensor{y}, nil
}

// poolBackwardStart is the common start of a pooling's backward pass: the
// input's window geometry, its gradient (zero, and the only one), and the
// output gradient, checked; gy is nil when there is nothing to propagate.
func poolBackwardStart(win window, in, gout []*tensor.Tensor, need []bool, alloc op.Alloc) (grads []*tensor.Tensor, g geom, gx, gy *tensor.Tensor, err error) {
	grads = make([]*tensor.Tensor, len(in))
	if !op.Needs(need, 0) {
		return grads, g, nil, nil, nil
	}
	x, g, err := win.input(in)
	if err != nil {
		return nil, g, nil, nil, err
	}
	if alloc != nil {
		gx = alloc(x.Shape...)
		clear(gx.F) // windows add into it
	} else {
		gx = tensor.New(x.Shape...)
	}
	grads[0] = gx
	if gy, err = op.ShapedGrad(gout, 0, g.outShape(g.C)); err != nil {
		return nil, g, nil, nil, err
	}
	return grads, g, gx, gy, nil
}

func (k *maxPool) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return k.BackwardAlloc(in, out, gout, need, nil)
}

// BackwardAlloc is Backward with the input's gradient from alloc (nil:
// tensor.New).
func (k *maxPool) BackwardAlloc(in, out, gout []*tensor.Tensor, need []bool, alloc op.Alloc) ([]*tensor.Tensor, error) {
	grads, g, gx, gy, err := poolBackwardStart(k.win, in, gout, need, alloc)
	if err != nil || gy == nil {
		return grads, err
	}
	x := in[0] // a float tensor: poolBackwardStart checked it
	th, tw := g.poolTaps()
	plane, inPlane := g.OH*g.OW, g.H*g.W
	// Each window's gradient goes to its first maximum in row-major scan
	// order (the last NaN if it holds any), as PyTorch's CPU kernel. The
	// maxima come from the forward output (recomputed when absent); a scan
	// for the first element equal to its window's maximum is cheaper than
	// an argmax, whose branches the data decide at random.
	var y []float32
	if len(out) > 0 && out[0] != nil && out[0].DType == tensor.Float32 && tensor.SameShape(out[0].Shape, gy.Shape) && len(out[0].F) == gy.Len() {
		y = out[0].F
	} else {
		y = make([]float32, gy.Len())
		poolWindows(g, th, tw, x.F, y, nil)
	}
	w, dh, dw, ow := g.W, g.DH, g.DW, g.OW
	par.Chunks(g.N*g.C, par.ChunkCount(g.N*g.C, plane*g.KH*g.KW), func(_, lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			xp := x.F[nc*inPlane : (nc+1)*inPlane]
			gp := gx.F[nc*inPlane : (nc+1)*inPlane]
			gyp := gy.F[nc*plane : (nc+1)*plane]
			yp := y[nc*plane : (nc+1)*plane]
			for oh := 0; oh < g.OH; oh++ {
				hs, h0, h1 := th.start[oh], th.k0[oh], th.k1[oh]
				if h0 >= h1 {
					continue
				}
				gr := gyp[oh*ow : (oh+1)*ow]
				yr := yp[oh*ow : (oh+1)*ow]
				for o, v := range gr {
					ws, w0, w1 := tw.start[o], tw.k0[o], tw.k1[o]
					if w0 >= w1 {
						continue
					}
					// The first element equal to the maximum, by a scan
					// from the last with conditional moves (no branch
					// the data decide); -1 if none is (a NaN maximum).
					m, at := yr[o], -1
					if h1-h0 == 3 && w1-w0 == 3 {
						at = firstOf9(xp, m, (hs+h0*dh)*w+ws+w0*dw, dh*w, dw)
					} else {
						for kh := h1 - 1; kh >= h0; kh-- {
							r := (hs+kh*dh)*w + ws
							for kw := w1 - 1; kw >= w0; kw-- {
								i := r + kw*dw
								if xp[i] == m {
									at = i
								}
							}
						}
					}
					if at < 0 {
						// A NaN maximum, or one the window does not hold.
						_, at = windowMax(xp, w, hs, h0, h1, dh, ws, w0, w1, dw)
					}
					gp[at] += v
				}
			}
		}
	})
	return grads, nil
}

// firstOf9 returns the index of the first element equal to m in row-major
// order of the 3×3 window of x whose first element is at i, rows rs and
// columns cs apart, or -1 if none is. It branches on nothing the data
// decide.
func firstOf9(x []float32, m float32, i, rs, cs int) int {
	r0 := x[i : i+2*cs+1]
	r1 := x[i+rs : i+rs+2*cs+1]
	r2 := x[i+2*rs : i+2*rs+2*cs+1]
	at := -1
	if r2[2*cs] == m {
		at = i + 2*rs + 2*cs
	}
	if r2[cs] == m {
		at = i + 2*rs + cs
	}
	if r2[0] == m {
		at = i + 2*rs
	}
	if r1[2*cs] == m {
		at = i + rs + 2*cs
	}
	if r1[cs] == m {
		at = i + rs + cs
	}
	if r1[0] == m {
		at = i + rs
	}
	if r0[2*cs] == m {
		at = i + 2*cs
	}
	if r0[cs] == m {
		at = i + cs
	}
	if r0[0] == m {
		at = i
	}
	return at
}

// avgPool is the AveragePool kernel.
type avgPool struct {
	win         window
	includePads bool
}

func newAveragePool(n *graph.Node, opset int) (op.Kernel, error) {
	w, err := parseWindow(n, nil, true)
	if err != nil {
		return nil, err
	}
	return &avgPool{win: w, includePads: n.Int("count_include_pad", 0) != 0}, nil
}

// divisor returns the number an output window's sum is divided by.
func (k *avgPool) divisor(th, tw taps, oh, ow int) float32 {
	var n int
	if k.includePads {
		n = th.incl[oh] * tw.incl[ow]
	} else {
		n = (th.k1[oh] - th.k0[oh]) * (tw.k1[ow] - tw.k0[ow])
	}
	if n <= 0 {
		return 0
	}
	return float32(n)
}

func (k *avgPool) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return k.ForwardAlloc(in, nil)
}

// ForwardAlloc is Forward with the output from alloc (nil: tensor.New).
func (k *avgPool) ForwardAlloc(in []*tensor.Tensor, alloc op.Alloc) ([]*tensor.Tensor, error) {
	x, g, err := k.win.input(in)
	if err != nil {
		return nil, err
	}
	y := op.NewOr(alloc, g.outShape(g.C)...)
	th, tw := g.poolTaps()
	poolWindows(g, th, tw, x.F, y.F, k)
	return []*tensor.Tensor{y}, nil
}

func (k *avgPool) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads, g, gx, gy, err := poolBackwardStart(k.win, in, gout, need, nil)
	if err != nil || gy == nil {
		return grads, err
	}
	th, tw := g.poolTaps()
	plane, inPlane := g.OH*g.OW, g.H*g.W
	// Spread each output row's gradient over a row of taps, then add that
	// row to every input row its windows cover.
	w, dh, dw, ow := g.W, g.DH, g.DW, g.OW
	par.Chunks(g.N*g.C, par.ChunkCount(g.N*g.C, plane*g.KH*g.KW), func(_, lo, hi int) {
		tmp := make([]float32, w)
		for nc := lo; nc < hi; nc++ {
			gp := gx.F[nc*inPlane : (nc+1)*inPlane]
			yp := gy.F[nc*plane : (nc+1)*plane]
			for oh := 0; oh < g.OH; oh++ {
				hs, h0, h1 := th.start[oh], th.k0[oh], th.k1[oh]
				if h0 >= h1 {
					continue
				}
				clear(tmp)
				for o, gv := range yp[oh*ow : (oh+1)*ow] {
					ws, w0, w1 := tw.start[o], tw.k0[o], tw.k1[o]
					d := k.divisor(th, tw, oh, o)
					if d == 0 {
						continue
					}
					v := gv / d
					for kw := w0; kw < w1; kw++ {
						tmp[ws+kw*dw] += v
					}
				}
				for kh := h0; kh < h1; kh++ {
					r := (hs + kh*dh) * w
					row := gp[r : r+w]
					for i, v := range tmp {
						row[i] += v
					}
				}
			}
		}
	})
	return grads, nil
}

// globalPool is GlobalAveragePool (max false) or GlobalMaxPool (max true).
type globalPool struct{ max bool }

func newGlobalAveragePool(n *graph.Node, opset int) (op.Kernel, error) {
	return globalPool{}, nil
}

func newGlobalMaxPool(n *graph.Node, opset int) (op.Kernel, error) {
	return globalPool{max: true}, nil
}

// input reads input 0 (float32, [N, C, spatial dims]) and returns it with
// N*C, the spatial size and the output shape.
func (k globalPool) input(in []*tensor.Tensor) (x *tensor.Tensor, nc, plane int, os []int, err error) {
	if x, err = op.FloatArg(in, 0); err != nil {
		return nil, 0, 0, nil, err
	}
	if x.Rank() < 2 {
		return nil, 0, 0, nil, fmt.Errorf("input 0 has shape %v, want rank >= 2 (N, C, spatial dims)", x.Shape)
	}
	os = make([]int, x.Rank())
	os[0], os[1] = x.Shape[0], x.Shape[1]
	for i := 2; i < len(os); i++ {
		os[i] = 1
	}
	return x, x.Shape[0] * x.Shape[1], tensor.Size(x.Shape[2:]), os, nil
}

// planeMax returns the first maximum of p (NaN wins, as PyTorch) and its
// index, or -Inf and -1 for an empty p.
func planeMax(p []float32) (float32, int) {
	best, bi := float32(math.Inf(-1)), -1
	if len(p) > 0 {
		bi = 0
	}
	for i, v := range p {
		if v > best || v != v {
			best, bi = v, i
		}
	}
	return best, bi
}

func (k globalPool) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return k.ForwardAlloc(in, nil)
}

// ForwardAlloc is Forward with the output from alloc (nil: tensor.New).
func (k globalPool) ForwardAlloc(in []*tensor.Tensor, alloc op.Alloc) ([]*tensor.Tensor, error) {
	x, nc, plane, os, err := k.input(in)
	if err != nil {
		return nil, err
	}
	y := op.NewOr(alloc, os...)
	par.Chunks(nc, par.ChunkCount(nc, plane), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			p := x.F[i*plane : (i+1)*plane]
			if k.max {
				y.F[i], _ = planeMax(p)
				continue
			}
			y.F[i] = mean(p)
		}
	})
	return []*tensor.Tensor{y}, nil
}

// mean returns the mean of p, summed in float32 blocks and float64 overall.
func mean(p []float32) float32 {
	if len(p) == 0 {
		return float32(math.NaN())
	}
	n := len(p)
	var acc float64
	for len(p) > 0 {
		b := p[:min(len(p), 256)]
		p = p[len(b):]
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= len(b); i += 4 {
			s0 += b[i]
			s1 += b[i+1]
			s2 += b[i+2]
			s3 += b[i+3]
		}
		for ; i < len(b); i++ {
			s0 += b[i]
		}
		acc += float64((s0 + s1) + (s2 + s3))
	}
	return float32(acc / float64(n))
}

func (k globalPool) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if !op.Needs(need, 0) {
		return grads, nil
	}
	x, nc, plane, os, err := k.input(in)
	if err != nil {
		return nil, err
	}
	gx := tensor.New(x.Shape...)
	grads[0] = gx
	gy, err := op.ShapedGrad(gout, 0, os)
	if err != nil {
		return nil, err
	}
	if gy == nil {
		return grads, nil
	}
	par.Chunks(nc, par.ChunkCount(nc, plane), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			gp := gx.F[i*plane : (i+1)*plane]
			if k.max {
				if _, j := planeMax(x.F[i*plane : (i+1)*plane]); j >= 0 {
					gp[j] = gy.F[i]
				}
				continue
			}
			v := gy.F[i] / float32(plane)
			for j := range gp {
				gp[j] = v
			}
		}
	})
	return grads, nil
}
