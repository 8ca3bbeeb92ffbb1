package nnops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/kernels"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// convWindows holds the window attributes of a convolution node for each
// spatial rank its weight may have (1 or 2) when kernel_shape is absent.
type convWindows struct {
	node *graph.Node
	win  [3]window
	err  [3]error
}

func parseConvWindows(n *graph.Node) (*convWindows, error) {
	cw := &convWindows{node: n}
	if n.Has("kernel_shape") {
		w, err := parseWindow(n, nil, false)
		if err != nil {
			return nil, err
		}
		for r := 1; r <= 2; r++ {
			cw.err[r] = fmt.Errorf("weight rank %d does not match kernel_shape %v", r+2, n.Ints("kernel_shape", nil))
		}
		cw.win[w.rank], cw.err[w.rank] = w, nil
		return cw, nil
	}
	ok := false
	for r := 1; r <= 2; r++ {
		k := []int{1, 1}[:r]
		cw.win[r], cw.err[r] = parseWindow(n, k, false)
		ok = ok || cw.err[r] == nil
	}
	if !ok {
		return nil, cw.err[2]
	}
	return cw, nil
}

// get returns the window for a weight of shape ws ([M, C/g, k...]).
func (cw *convWindows) get(ws []int) (window, error) {
	r := len(ws) - 2
	if r < 1 || r > 2 {
		return window{}, fmt.Errorf("input 1 (weight) has shape %v: only 1-D and 2-D convolutions are supported", ws)
	}
	if cw.err[r] != nil {
		return window{}, fmt.Errorf("input 1 (weight) has shape %v: %v", ws, cw.err[r])
	}
	w := cw.win[r]
	ks := ws[2:]
	if cw.node.Has("kernel_shape") {
		if !tensor.SameShape(ks, []int{w.k[0], w.k[1]}[2-r:]) {
			return w, fmt.Errorf("input 1 (weight) has shape %v, which does not match kernel_shape %v", ws, cw.node.Ints("kernel_shape", nil))
		}
		return w, nil
	}
	for i, k := range ks {
		if k < 1 {
			return w, fmt.Errorf("input 1 (weight) has shape %v with an empty kernel", ws)
		}
		w.k[2-r+i] = k
	}
	return w, nil
}

// conv is the Conv kernel.
type conv struct {
	wins  *convWindows
	group int
}

// parseConv reads the attributes Conv and ConvTranspose share: the window
// and group.
func parseConv(n *graph.Node) (*convWindows, int, error) {
	group := int(n.Int("group", 1))
	if group < 1 {
		return nil, 0, op.Errorf(n, "group %d must be positive", group)
	}
	ws, err := parseConvWindows(n)
	return ws, group, err
}

func newConv(n *graph.Node, opset int) (op.Kernel, error) {
	ws, group, err := parseConv(n)
	if err != nil {
		return nil, err
	}
	return &conv{wins: ws, group: group}, nil
}

// setup validates the inputs and returns the convolution's parameters.
func (c *conv) setup(in []*tensor.Tensor) (convParams, geom, error) {
	var p convParams
	var x, w *tensor.Tensor
	if err := op.FloatArgs(in, &x, &w); err != nil {
		return p, geom{}, err
	}
	win, err := c.wins.get(w.Shape)
	if err != nil {
		return p, geom{}, err
	}
	g, err := win.resolve(x, "input 0")
	if err != nil {
		return p, geom{}, err
	}
	m := w.Shape[0]
	if g.C != w.Shape[1]*c.group {
		return p, g, fmt.Errorf("input 0 has shape %v (%d channels) but input 1 (weight) has shape %v: with group %d it wants %d channels", x.Shape, g.C, w.Shape, c.group, w.Shape[1]*c.group)
	}
	if m%c.group != 0 {
		return p, g, fmt.Errorf("input 1 (weight) has shape %v: %d output channels do not split into %d groups", w.Shape, m, c.group)
	}
	if err := checkBias(in, m); err != nil {
		return p, g, err
	}
	p = convParams{N: g.N, C: g.C, H: g.H, W: g.W, M: m, KH: g.KH, KW: g.KW,
		StrideH: g.SH, StrideW: g.SW, PadT: g.PT, PadL: g.PL, PadB: g.PB, PadR: g.PR,
		DilH: g.DH, DilW: g.DW, Group: c.group}
	return p, g, nil
}

// checkBias checks the optional bias (input 2) of a convolution with m
// output channels.
func checkBias(in []*tensor.Tensor, m int) error {
	if b := op.Arg(in, 2); b != nil {
		if b.DType != tensor.Float32 || b.Rank() != 1 || b.Shape[0] != m || len(b.F) != m {
			return fmt.Errorf("input 2 (bias) is %s%v, want float32 [%d]", b.DType, b.Shape, m)
		}
	}
	return nil
}

func (c *conv) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return c.forward(in, nil, nil)
}

// ForwardAlloc is Forward with the output from alloc (the convolution
// writes every element).
func (c *conv) ForwardAlloc(in []*tensor.Tensor, alloc op.Alloc) ([]*tensor.Tensor, error) {
	return c.forward(in, nil, alloc)
}

func (c *conv) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return c.backward(in, gout, need, nil, nil)
}

// BackwardAlloc is Backward with the input's gradient from alloc.
func (c *conv) BackwardAlloc(in, out, gout []*tensor.Tensor, need []bool, alloc op.Alloc) ([]*tensor.Tensor, error) {
	return c.backward(in, gout, need, nil, alloc)
}

// prepFunc returns, for the convolution p of a call with inputs in, the
// weights prepared for it (grad: for its input gradient), or nil.
type prepFunc func(in []*tensor.Tensor, p convParams, grad bool) []float32

// forward is Forward, with the prepared weights prep gives (if any) and
// the output from alloc (if not nil).
func (c *conv) forward(in []*tensor.Tensor, prep prepFunc, alloc op.Alloc) ([]*tensor.Tensor, error) {
	p, g, err := c.setup(in)
	if err != nil {
		return nil, err
	}
	var bias []float32
	if b := op.Arg(in, 2); b != nil {
		bias = b.F
	}
	y := op.NewOr(alloc, g.outShape(p.M)...)
	if y.Len() > 0 {
		var u []float32
		if prep != nil {
			u = prep(in, p, false)
		}
		kernels.Conv2DPrepared(kernels.ConvParams(p), in[0].F, in[1].F, u, bias, y.F)
	}
	return []*tensor.Tensor{y}, nil
}

// backward is Backward, with the prepared weights prep gives (if any) and
// the input's gradient from alloc (if not nil).
func (c *conv) backward(in, gout []*tensor.Tensor, need []bool, prep prepFunc, alloc op.Alloc) ([]*tensor.Tensor, error) {
	p, g, err := c.setup(in)
	if err != nil {
		return nil, err
	}
	gy, err := op.ShapedGrad(gout, 0, g.outShape(p.M))
	if err != nil {
		return nil, err
	}
	var u []float32
	if prep != nil && op.Needs(need, 0) && gy != nil {
		u = prep(in, p, true)
	}
	return convGrads(in, need, gy, p.N, p.M, g.OH*g.OW, alloc,
		func(gx, gy []float32) {
			kernels.Conv2DInputGradPrepared(kernels.ConvParams(p), in[1].F, u, gy, gx)
		},
		func(gw, gy []float32) { conv2DWeightGrad(p, in[0].F, gy, gw) }), nil
}

// convGrads returns the gradients of a convolution or its transpose that
// need asks for, given the output gradient gy (nil when absent): of x
// (input 0) and the weight (input 1), zero and then filled by gradX and
// gradW from gy when both are not empty, and of the bias (input 2), the
// sums of gy ([n, channels, plane]) per channel.
func convGrads(in []*tensor.Tensor, need []bool, gy *tensor.Tensor, n, channels, plane int, alloc op.Alloc, gradX, gradW func(g, gy []float32)) []*tensor.Tensor {
	grads := make([]*tensor.Tensor, len(in))
	for i, fill := range [2]func(g, gy []float32){gradX, gradW} {
		if !op.Needs(need, i) {
			continue
		}
		var g *tensor.Tensor
		if i == 0 && alloc != nil {
			// gradX overwrites every element; without gy the gradient is 0.
			g = alloc(in[i].Shape...)
			if gy == nil {
				clear(g.F)
			}
		} else {
			g = tensor.New(in[i].Shape...)
		}
		if gy != nil && g.Len() > 0 {
			fill(g.F, gy.F)
		}
		grads[i] = g
	}
	if op.Needs(need, 2) && op.Arg(in, 2) != nil {
		gb := tensor.New(channels)
		if gy != nil {
			channelSums(gy.F, n, channels, plane, gb.F)
		}
		grads[2] = gb
	}
	return grads
}

// channelSums sets sum[c] to the sum of x [n, c, plane] over n and plane.
func channelSums(x []float32, n, c, plane int, sum []float32) {
	for ci := 0; ci < c; ci++ {
		var acc float64
		for ni := 0; ni < n; ni++ {
			var s float32
			for _, v := range x[(ni*c+ci)*plane : (ni*c+ci+1)*plane] {
				s += v
			}
			acc += float64(s)
		}
		sum[ci] = float32(acc)
	}
}
