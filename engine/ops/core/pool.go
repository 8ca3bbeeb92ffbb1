package core

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// pool is MaxPool or AveragePool over 1-D or 2-D windows.
type pool struct {
	win          window
	rank         int
	max          bool
	includePad   bool
	wantsIndices bool
}

func newMaxPool(n *graph.Node, opset int) (op.Kernel, error) {
	w, r, err := parseWindow(n, nil)
	if err != nil {
		return nil, err
	}
	if n.Int("storage_order", 0) != 0 {
		return nil, op.Errorf(n, "storage_order 1 is not supported")
	}
	return pool{win: w, rank: r, max: true, wantsIndices: len(n.Outputs) > 1 && n.Outputs[1] != ""}, nil
}

func newAveragePool(n *graph.Node, opset int) (op.Kernel, error) {
	w, r, err := parseWindow(n, nil)
	if err != nil {
		return nil, err
	}
	return pool{win: w, rank: r, includePad: n.Int("count_include_pad", 0) != 0}, nil
}

// each calls f for every output position with the flat input indices of its
// window (valid positions only) and the window's full size with padding.
func (p pool) geometry(x *tensor.Tensor) (window, int, int, int, int, int, int, error) {
	n, c, h, w, err := spatial(x, p.rank)
	if err != nil {
		return window{}, 0, 0, 0, 0, 0, 0, err
	}
	win, oh, ow, err := p.win.resolve(h, w)
	return win, n * c, h, w, oh, ow, n, err
}

func (p pool) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	x := in[0]
	win, planes, h, w, oh, ow, _, err := p.geometry(x)
	if err != nil {
		return nil, err
	}
	shape := append([]int(nil), x.Shape...)
	if p.rank == 1 {
		shape[2] = ow
	} else {
		shape[2], shape[3] = oh, ow
	}
	y := tensor.New(shape...)
	var idx *tensor.Tensor
	if p.max && p.wantsIndices {
		idx = tensor.NewInt(shape...)
	}
	parallel(planes, planes*oh*ow*win.kh*win.kw, func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			src := x.F[pl*h*w : (pl+1)*h*w]
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					o := pl*oh*ow + oy*ow + ox
					if p.max {
						bi := argmax(win, src, oy, ox, h, w)
						y.F[o] = float32(math.Inf(-1))
						if bi >= 0 {
							y.F[o] = src[bi]
						}
						if idx != nil {
							idx.I[o] = int64(pl*h*w + max(bi, 0))
						}
						continue
					}
					var s float32
					cnt := 0
					eachInWindow(win, oy, ox, h, w, func(i int) {
						s += src[i]
						cnt++
					})
					y.F[o] = s / float32(p.divisor(win, oy, ox, h, w, cnt))
				}
			}
		}
	})
	if idx != nil {
		return []*tensor.Tensor{y, idx}, nil
	}
	return []*tensor.Tensor{y}, nil
}

// eachInWindow calls f with the plane index of every element of the window
// at output position (oy, ox) that lies inside the h×w plane, in row-major
// order.
func eachInWindow(win window, oy, ox, h, w int, f func(i int)) {
	for i := 0; i < win.kh; i++ {
		iy := oy*win.sh - win.pt + i*win.dh
		if iy < 0 || iy >= h {
			continue
		}
		for j := 0; j < win.kw; j++ {
			if ix := ox*win.sw - win.pl + j*win.dw; ix >= 0 && ix < w {
				f(iy*w + ix)
			}
		}
	}
}

// argmax returns the plane index of the window's first maximum in
// row-major scan order (NaN wins, as in PyTorch), or -1 for a window
// entirely in the padding.
func argmax(win window, src []float32, oy, ox, h, w int) int {
	bi := -1
	eachInWindow(win, oy, ox, h, w, func(i int) {
		if v := src[i]; bi < 0 || v > src[bi] || v != v {
			bi = i
		}
	})
	return bi
}

// divisor returns the count an average divides by: the valid elements, or
// with count_include_pad the window clipped to the padded input.
func (p pool) divisor(win window, oy, ox, h, w, cnt int) int {
	if !p.includePad {
		return max(cnt, 1)
	}
	y0 := oy*win.sh - win.pt
	x0 := ox*win.sw - win.pl
	y1 := min(y0+(win.kh-1)*win.dh+1, h+win.pb)
	x1 := min(x0+(win.kw-1)*win.dw+1, w+win.pr)
	return max(((y1-y0+win.dh-1)/win.dh)*((x1-x0+win.dw-1)/win.dw), 1)
}

func (p pool) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	if !need[0] || gout[0] == nil {
		return []*tensor.Tensor{nil}, nil
	}
	x, g := in[0], gout[0]
	win, planes, h, w, oh, ow, _, err := p.geometry(x)
	if err != nil {
		return nil, err
	}
	gx := tensor.New(x.Shape...)
	parallel(planes, planes*oh*ow*win.kh*win.kw, func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			src := x.F[pl*h*w : (pl+1)*h*w]
			dst := gx.F[pl*h*w : (pl+1)*h*w]
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					gv := g.F[pl*oh*ow+oy*ow+ox]
					if p.max {
						if bi := argmax(win, src, oy, ox, h, w); bi >= 0 {
							dst[bi] += gv
						}
						continue
					}
					cnt := 0
					eachInWindow(win, oy, ox, h, w, func(int) { cnt++ })
					share := gv / float32(p.divisor(win, oy, ox, h, w, cnt))
					eachInWindow(win, oy, ox, h, w, func(i int) { dst[i] += share })
				}
			}
		}
	})
	return []*tensor.Tensor{gx}, nil
}

type globalAvgPool struct{}

func newGlobalAveragePool(n *graph.Node, opset int) (op.Kernel, error) { return globalAvgPool{}, nil }

func (globalAvgPool) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	x := in[0]
	if x.Rank() < 3 {
		return nil, fmt.Errorf("input has shape %v, want N, C and spatial dimensions", x.Shape)
	}
	shape := append([]int(nil), x.Shape...)
	for d := 2; d < len(shape); d++ {
		shape[d] = 1
	}
	y := tensor.New(shape...)
	sp := tensor.Size(x.Shape[2:])
	for p := range y.F {
		var s float32
		for _, v := range x.F[p*sp : (p+1)*sp] {
			s += v
		}
		y.F[p] = s / float32(sp)
	}
	return []*tensor.Tensor{y}, nil
}

func (globalAvgPool) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	if !need[0] || gout[0] == nil {
		return []*tensor.Tensor{nil}, nil
	}
	x := in[0]
	gx := tensor.New(x.Shape...)
	sp := tensor.Size(x.Shape[2:])
	for p, gv := range gout[0].F {
		share := gv / float32(sp)
		row := gx.F[p*sp : (p+1)*sp]
		for i := range row {
			row[i] = share
		}
	}
	return []*tensor.Tensor{gx}, nil
}

// batchNorm is BatchNormalization in inference mode: a per-channel affine map.
type batchNorm struct{ eps float32 }

func newBatchNorm(n *graph.Node, opset int) (op.Kernel, error) {
	if n.Int("training_mode", 0) != 0 {
		return nil, op.Errorf(n, "BatchNormalization in training mode is not supported")
	}
	return batchNorm{n.Float("epsilon", 1e-5)}, nil
}

// affine returns the per-channel scale and shift.
func (b batchNorm) affine(in []*tensor.Tensor) ([]float32, []float32, int, int, error) {
	if len(in) < 5 {
		return nil, nil, 0, 0, fmt.Errorf("BatchNormalization needs 5 inputs, got %d", len(in))
	}
	for i := 0; i < 5; i++ {
		if err := wantFloat(in, i); err != nil {
			return nil, nil, 0, 0, err
		}
	}
	x := in[0]
	if x.Rank() < 2 {
		return nil, nil, 0, 0, fmt.Errorf("input has shape %v, want [N, C, ...]", x.Shape)
	}
	c := x.Shape[1]
	for i := 1; i < 5; i++ {
		if in[i].Len() != c {
			return nil, nil, 0, 0, fmt.Errorf("input %d has %d values for %d channels", i, in[i].Len(), c)
		}
	}
	scale := make([]float32, c)
	shift := make([]float32, c)
	for k := 0; k < c; k++ {
		inv := float32(1 / math.Sqrt(float64(in[4].F[k]+b.eps)))
		scale[k] = in[1].F[k] * inv
		shift[k] = in[2].F[k] - in[3].F[k]*scale[k]
	}
	return scale, shift, c, tensor.Size(x.Shape[2:]), nil
}

func (b batchNorm) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	scale, shift, c, sp, err := b.affine(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	y := tensor.New(x.Shape...)
	planes := x.Shape[0] * c
	parallel(planes, x.Len()*2, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			k := p % c
			s, t := scale[k], shift[k]
			src := x.F[p*sp : (p+1)*sp]
			dst := y.F[p*sp : (p+1)*sp]
			for i, v := range src {
				dst[i] = v*s + t
			}
		}
	})
	return []*tensor.Tensor{y}, nil
}

func (b batchNorm) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	g := gout[0]
	if g == nil {
		return grads, nil
	}
	scale, _, c, sp, err := b.affine(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	if need[0] {
		gx := tensor.New(x.Shape...)
		for p := 0; p < x.Shape[0]*c; p++ {
			s := scale[p%c]
			for i := p * sp; i < (p+1)*sp; i++ {
				gx.F[i] = g.F[i] * s
			}
		}
		grads[0] = gx
	}
	if need[1] || need[2] {
		gs, gb := tensor.New(c), tensor.New(c)
		for p := 0; p < x.Shape[0]*c; p++ {
			k := p % c
			inv := float32(1 / math.Sqrt(float64(in[4].F[k]+b.eps)))
			for i := p * sp; i < (p+1)*sp; i++ {
				gs.F[k] += g.F[i] * (x.F[i] - in[3].F[k]) * inv
				gb.F[k] += g.F[i]
			}
		}
		if need[1] {
			grads[1] = gs
		}
		if need[2] {
			grads[2] = gb
		}
	}
	return grads, nil
}
