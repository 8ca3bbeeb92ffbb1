package nnops

import (
	"math"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/tensor"
)

// Local rules (op.Local) of this package's ops, for incremental inference:
// convolution and pooling read a window of each spatial axis, and the
// normalizations read the same position (and every channel).

// windowAxes returns the rules of the axes after the batch for a window op
// resolved as g: channels as given (Whole or Same), then each spatial axis.
func windowAxes(g geom, ch op.AxisKind, outC int) []op.AxisRule {
	axes := []op.AxisRule{{Kind: ch, InN: g.C, OutN: outC}}
	if g.rank == 2 {
		axes = append(axes, op.AxisRule{Kind: op.Window, K: g.KH, S: g.SH, D: g.DH, Pad: g.PT, InN: g.H, OutN: g.OH})
	}
	return append(axes, op.AxisRule{Kind: op.Window, K: g.KW, S: g.SW, D: g.DW, Pad: g.PL, InN: g.W, OutN: g.OW})
}

// unpadded returns w without padding, for inputs padded beforehand.
func unpadded(w window) window {
	w.pb, w.pe = [2]int{}, [2]int{}
	w.autoPad = "NOTSET"
	w.ceil = false
	return w
}

// Local: every output channel reads every input channel over a window of
// each spatial axis; the crops run through the same convolution without
// padding (the engine pads with zeros).
func (c *conv) Local(in []*tensor.Tensor) (op.LocalRule, bool) {
	p, g, err := c.setup(in)
	if err != nil {
		return op.LocalRule{}, false
	}
	cw := *c.wins
	for r := range cw.win {
		cw.win[r] = unpadded(cw.win[r])
	}
	return op.LocalRule{Axes: windowAxes(g, op.Whole, p.M), Kernel: &conv{wins: &cw, group: c.group}}, true
}

// Local: each channel over a window of each spatial axis, padded with -Inf
// (which no maximum picks). None when the node asks for the indices.
func (k *maxPool) Local(in []*tensor.Tensor) (op.LocalRule, bool) {
	if k.indices {
		return op.LocalRule{}, false
	}
	_, g, err := k.win.input(in)
	if err != nil {
		return op.LocalRule{}, false
	}
	return op.LocalRule{Axes: windowAxes(g, op.Same, g.C), Kernel: &maxPool{win: unpadded(k.win), nodeForError: k.nodeForError},
		PadValue: float32(math.Inf(-1))}, true
}

// Local: as MaxPool with zero padding, when the divisor is the window's
// size everywhere (count_include_pad, or no padding) and ceil_mode is off.
func (k *avgPool) Local(in []*tensor.Tensor) (op.LocalRule, bool) {
	_, g, err := k.win.input(in)
	if err != nil || k.win.ceil {
		return op.LocalRule{}, false
	}
	if !k.includePads && (g.PT != 0 || g.PB != 0 || g.PL != 0 || g.PR != 0) {
		return op.LocalRule{}, false
	}
	return op.LocalRule{Axes: windowAxes(g, op.Same, g.C), Kernel: &avgPool{win: unpadded(k.win), includePads: true}}, true
}

// sameAxes returns rules reading every channel and the same position of
// every other axis of x ([N, C, ...]).
func sameAxes(in []*tensor.Tensor) (op.LocalRule, bool) {
	x := op.Arg(in, 0)
	if x == nil || x.Rank() < 2 {
		return op.LocalRule{}, false
	}
	axes := make([]op.AxisRule, x.Rank()-1)
	for i := range axes {
		axes[i] = op.AxisRule{Kind: op.Same, InN: x.Shape[i+1], OutN: x.Shape[i+1]}
	}
	axes[0].Kind = op.Whole
	return op.LocalRule{Axes: axes}, true
}

// Local: each position from the same position, with the per-channel
// statistics used whole.
func (k *batchNorm) Local(in []*tensor.Tensor) (op.LocalRule, bool) { return sameAxes(in) }

// Local: each position from the same position of neighbouring channels.
func (k *lrn) Local(in []*tensor.Tensor) (op.LocalRule, bool) { return sameAxes(in) }

// Local: constant padding moves each position by the leading pad; the
// engine pads the crops itself, so the crop kernel copies nothing. None for
// the reflect and edge modes, or pads that crop.
func (k *pad) Local(in []*tensor.Tensor) (op.LocalRule, bool) {
	if k.mode != "constant" {
		return op.LocalRule{}, false
	}
	pl, err := k.plan(in)
	if err != nil {
		return op.LocalRule{}, false
	}
	value := k.value
	if !k.attrs {
		if v := op.Arg(in, 2); v != nil {
			if v.DType != tensor.Float32 || v.Len() != 1 {
				return op.LocalRule{}, false
			}
			value = v.F[0]
		}
	}
	r := len(pl.xs)
	if r < 2 {
		return op.LocalRule{}, false
	}
	axes := make([]op.AxisRule, r-1)
	for a := 0; a < r; a++ {
		n, out := pl.xs[a], pl.shape[a]
		pb := -1
		for o, j := range pl.maps[a] {
			if j >= 0 {
				pb = o - j
				break
			}
		}
		if n == 0 || pb < 0 || out-n-pb < 0 || (a == 0 && out != n) {
			return op.LocalRule{}, false
		}
		if a > 0 {
			axes[a-1] = op.AxisRule{Kind: op.Same, InN: n, OutN: out}
			if out != n {
				axes[a-1] = op.AxisRule{Kind: op.Window, K: 1, S: 1, D: 1, Pad: pb, InN: n, OutN: out}
			}
		}
	}
	return op.LocalRule{Axes: axes, Kernel: asIs{}, PadValue: value}, true
}

// asIs is the kernel that returns its first input: the crop of a padded
// input is already the padded output.
type asIs struct{}

func (asIs) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) { return in[:1], nil }
