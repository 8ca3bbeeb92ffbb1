package nnops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// window holds the sliding-window attributes of a convolution or pooling
// node over 1 or 2 spatial dimensions. Index 0 is height, 1 width; a 1-D
// window has height 1 (kernel 1, stride 1, dilation 1, no pads).
type window struct {
	rank    int // 1 or 2; 0 while the kernel shape is still unknown (Conv)
	k       [2]int
	s       [2]int
	d       [2]int
	pb, pe  [2]int // pads at the beginning and end of each axis
	autoPad string
	ceil    bool
}

// geom is a window resolved against an input: all sizes of one call.
type geom struct {
	N, C, H, W, OH, OW     int
	KH, KW, SH, SW, DH, DW int
	PT, PL, PB, PR         int
	rank                   int
}

// parseWindow reads kernel_shape (or uses kernel when the node has none),
// strides, dilations, pads, auto_pad and, when pool is true, ceil_mode.
// A nil kernel and no kernel_shape leaves the rank 0 (resolved later).
func parseWindow(n *graph.Node, kernel []int, pool bool) (window, error) {
	w := window{k: [2]int{1, 1}, s: [2]int{1, 1}, d: [2]int{1, 1}}
	ks := toInts(n.Ints("kernel_shape", nil))
	if ks == nil {
		ks = kernel
	}
	w.autoPad = n.Str("auto_pad", "NOTSET")
	switch w.autoPad {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return w, op.Errorf(n, "unsupported auto_pad %q", w.autoPad)
	}
	if pool {
		w.ceil = n.Int("ceil_mode", 0) != 0
	}
	if ks == nil {
		if pool {
			return w, op.Errorf(n, "kernel_shape is required")
		}
		return w, nil
	}
	r := len(ks)
	if r < 1 || r > 2 {
		return w, op.Errorf(n, "only 1-D and 2-D windows are supported, got kernel_shape %v", ks)
	}
	w.rank = r
	list := func(name string, def, k int) ([]int, error) {
		v := toInts(n.Ints(name, nil))
		if v == nil || len(v) == 0 {
			v = make([]int, k)
			for i := range v {
				v[i] = def
			}
		}
		if len(v) != k {
			return nil, op.Errorf(n, "%s %v does not fit a %d-D window", name, v, r)
		}
		return v, nil
	}
	st, err := list("strides", 1, r)
	if err != nil {
		return w, err
	}
	dl, err := list("dilations", 1, r)
	if err != nil {
		return w, err
	}
	pd, err := list("pads", 0, 2*r)
	if err != nil {
		return w, err
	}
	o := 2 - r // 1-D windows live in slot 1 (width)
	for i := 0; i < r; i++ {
		if ks[i] < 1 || st[i] < 1 || dl[i] < 1 {
			return w, op.Errorf(n, "kernel_shape %v, strides %v and dilations %v must be positive", ks, st, dl)
		}
		if pd[i] < 0 || pd[i+r] < 0 {
			return w, op.Errorf(n, "pads %v must not be negative", pd)
		}
		w.k[o+i], w.s[o+i], w.d[o+i] = ks[i], st[i], dl[i]
		w.pb[o+i], w.pe[o+i] = pd[i], pd[i+r]
	}
	return w, nil
}

// withKernel returns w with the kernel shape taken from ks when w has none
// yet (Conv infers it from the weight). It checks a given shape against ks.
func (w window) withKernel(n *graph.Node, ks []int) (window, error) {
	if w.rank != 0 {
		kr := []int{w.k[0], w.k[1]}[2-w.rank:]
		if !tensor.SameShape(kr, ks) {
			return w, fmt.Errorf("weight has kernel %v, node kernel_shape is %v", ks, kr)
		}
		return w, nil
	}
	nw, err := parseWindow(n, ks, false)
	if err != nil {
		return w, err
	}
	return nw, nil
}

// resolve fixes pads and output sizes for input x (rank w.rank+2).
func (w window) resolve(x *tensor.Tensor, what string) (geom, error) {
	var g geom
	if x.Rank() != w.rank+2 {
		return g, fmt.Errorf("%s has shape %v, want rank %d (N, C and %d spatial dims)", what, x.Shape, w.rank+2, w.rank)
	}
	g.rank = w.rank
	g.N, g.C = x.Shape[0], x.Shape[1]
	g.H, g.W = 1, x.Shape[2]
	if w.rank == 2 {
		g.H, g.W = x.Shape[2], x.Shape[3]
	}
	in := [2]int{g.H, g.W}
	var out [2]int
	pb, pe := w.pb, w.pe
	for i := 0; i < 2; i++ {
		ek := (w.k[i]-1)*w.d[i] + 1
		s := w.s[i]
		switch w.autoPad {
		case "VALID":
			pb[i], pe[i] = 0, 0
		case "SAME_UPPER", "SAME_LOWER":
			o := ceilDiv(in[i], s)
			total := max((o-1)*s+ek-in[i], 0)
			if w.autoPad == "SAME_UPPER" {
				pb[i], pe[i] = total/2, total-total/2
			} else {
				pb[i], pe[i] = total-total/2, total/2
			}
		}
		span := in[i] + pb[i] + pe[i] - ek
		if span < 0 {
			return g, fmt.Errorf("%s has shape %v: the window (%d after dilation) does not fit spatial size %d with pads %d+%d", what, x.Shape, ek, in[i], pb[i], pe[i])
		}
		o := span/s + 1
		if w.ceil && w.autoPad != "VALID" && w.autoPad != "SAME_UPPER" && w.autoPad != "SAME_LOWER" {
			o = ceilDiv(span, s) + 1
			// As PyTorch: the last window must start inside the input or
			// its leading padding.
			if (o-1)*s >= in[i]+pb[i] {
				o--
			}
		}
		out[i] = o
	}
	g.OH, g.OW = out[0], out[1]
	g.KH, g.KW = w.k[0], w.k[1]
	g.SH, g.SW = w.s[0], w.s[1]
	g.DH, g.DW = w.d[0], w.d[1]
	g.PT, g.PL, g.PB, g.PR = pb[0], pb[1], pe[0], pe[1]
	return g, nil
}

// outShape returns [N, c, OH, OW] (or [N, c, OW] for 1-D).
func (g geom) outShape(c int) []int {
	if g.rank == 1 {
		return []int{g.N, c, g.OW}
	}
	return []int{g.N, c, g.OH, g.OW}
}

// validRange returns the output positions [lo, hi) whose tap
// o*s - p + k*d falls inside [0, n).
func validRange(n, outN, s, p, kd int) (int, int) {
	lo := max(ceilDiv(p-kd, s), 0)
	hi := min(floorDiv(n-1+p-kd, s)+1, outN)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}
