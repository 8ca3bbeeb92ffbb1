package nnops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// convTranspose is the ConvTranspose kernel, computed as the input gradient
// of the convolution it transposes.
type convTranspose struct {
	wins     *convWindows
	group    int
	outPad   []int // output_padding (nil: zeros)
	outShape []int // output_shape (nil: computed)
}

func newConvTranspose(n *graph.Node, opset int) (op.Kernel, error) {
	ws, group, err := parseConv(n)
	if err != nil {
		return nil, err
	}
	k := &convTranspose{wins: ws, group: group}
	if v := toInts(n.Ints("output_padding", nil)); len(v) > 0 {
		for _, p := range v {
			if p < 0 {
				return nil, op.Errorf(n, "output_padding %v must not be negative", v)
			}
		}
		k.outPad = v
	}
	if v := toInts(n.Ints("output_shape", nil)); len(v) > 0 {
		k.outShape = v
	}
	return k, nil
}

// setup validates the inputs and returns the parameters of the convolution
// whose input gradient this op computes (its input is this op's output).
func (k *convTranspose) setup(in []*tensor.Tensor) (convParams, []int, error) {
	var p convParams
	var x, w *tensor.Tensor
	if err := op.FloatArgs(in, &x, &w); err != nil {
		return p, nil, err
	}
	win, err := k.wins.get(w.Shape)
	if err != nil {
		return p, nil, err
	}
	r := win.rank
	if x.Rank() != r+2 {
		return p, nil, fmt.Errorf("input 0 has shape %v, want rank %d to match input 1 (weight) of shape %v", x.Shape, r+2, w.Shape)
	}
	n, c := x.Shape[0], x.Shape[1]
	if w.Shape[0] != c {
		return p, nil, fmt.Errorf("input 0 has shape %v (%d channels) but input 1 (weight) has shape %v, want %d rows", x.Shape, c, w.Shape, c)
	}
	if c%k.group != 0 {
		return p, nil, fmt.Errorf("input 0 has %d channels, which do not split into %d groups", c, k.group)
	}
	m := w.Shape[1] * k.group
	if err := checkBias(in, m); err != nil {
		return p, nil, err
	}
	if k.outPad != nil && len(k.outPad) != r {
		return p, nil, fmt.Errorf("output_padding %v does not fit a %d-D convolution", k.outPad, r)
	}
	os := k.outShape
	if os != nil && len(os) == r+2 {
		os = os[2:]
	}
	if os != nil && len(os) != r {
		return p, nil, fmt.Errorf("output_shape %v does not fit a %d-D convolution", k.outShape, r)
	}
	inSp := x.Shape[2:]
	var pb, pe [2]int
	out := [2]int{1, 1}
	in2 := [2]int{1, 1}
	for i := 0; i < r; i++ {
		a := 2 - r + i // slot in the 2-D window
		in2[a] = inSp[i]
		s, ek := win.s[a], (win.k[a]-1)*win.d[a]+1
		opad := 0
		if k.outPad != nil {
			opad = k.outPad[i]
		}
		if opad >= s && opad >= win.d[a] {
			return p, nil, fmt.Errorf("output_padding %v must be smaller than the stride or the dilation", k.outPad)
		}
		full := s*(inSp[i]-1) + opad + ek
		switch {
		case os != nil || win.autoPad == "SAME_UPPER" || win.autoPad == "SAME_LOWER":
			o := inSp[i] * s
			if os != nil {
				o = os[i]
			}
			total := full - o
			if win.autoPad == "SAME_UPPER" {
				pb[a], pe[a] = total/2, total-total/2
			} else {
				pb[a], pe[a] = total-total/2, total/2
			}
			out[a] = o
		case win.autoPad == "VALID":
			out[a] = full
		default:
			pb[a], pe[a] = win.pb[a], win.pe[a]
			out[a] = full - pb[a] - pe[a]
		}
		if pb[a] < 0 || out[a] < 1 {
			return p, nil, fmt.Errorf("input 0 of shape %v gives output size %d with pads %d,%d: not supported", x.Shape, out[a], pb[a], pe[a])
		}
		if pe[a] < 0 {
			pe[a] = 0 // the extra trailing outputs receive only the bias
		}
	}
	p = convParams{N: n, C: m, H: out[0], W: out[1], M: c, KH: win.k[0], KW: win.k[1],
		StrideH: win.s[0], StrideW: win.s[1], PadT: pb[0], PadL: pb[1], PadB: pe[0], PadR: pe[1],
		DilH: win.d[0], DilW: win.d[1], Group: k.group}
	if p.OutH() != in2[0] || p.OutW() != in2[1] {
		return p, nil, fmt.Errorf("input 0 of shape %v does not fit output size %v with the node's strides and pads", x.Shape, out[2-r:])
	}
	shape := []int{n, m, out[0], out[1]}
	if r == 1 {
		shape = []int{n, m, out[1]}
	}
	return p, shape, nil
}

func (k *convTranspose) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	p, shape, err := k.setup(in)
	if err != nil {
		return nil, err
	}
	y := tensor.New(shape...)
	if y.Len() == 0 {
		return []*tensor.Tensor{y}, nil
	}
	if in[0].Len() > 0 {
		conv2DInputGrad(p, in[1].F, in[0].F, y.F)
	}
	if b := op.Arg(in, 2); b != nil {
		plane := p.H * p.W
		par.Chunks(p.N*p.C, par.ChunkCount(p.N*p.C, plane), func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				bv := b.F[i%p.C]
				for j := range y.F[i*plane : (i+1)*plane] {
					y.F[i*plane+j] += bv
				}
			}
		})
	}
	return []*tensor.Tensor{y}, nil
}

func (k *convTranspose) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	p, shape, err := k.setup(in)
	if err != nil {
		return nil, err
	}
	gy, err := op.ShapedGrad(gout, 0, shape)
	if err != nil {
		return nil, err
	}
	return convGrads(in, need, gy, p.N, p.C, p.H*p.W, nil,
		func(gx, gy []float32) { conv2D(p, gy, in[1].F, nil, gx) },
		func(gw, gy []float32) { conv2DWeightGrad(p, gy, in[0].F, gw) }), nil
}
