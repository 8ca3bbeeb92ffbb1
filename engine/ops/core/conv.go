package core

import (
	"fmt"
	"sync"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// window describes a sliding window over the spatial dimensions of an NCHW
// (or NCW, seen as height 1) tensor: convolution and pooling share it.
type window struct {
	kh, kw, sh, sw, dh, dw int
	pt, pl, pb, pr         int
	autoPad                string
	ceil                   bool
}

// parseWindow reads kernel_shape, strides, dilations, pads and auto_pad for
// 1-D or 2-D windows; kernel gives the kernel shape when the node has none.
func parseWindow(n *graph.Node, kernel []int) (window, int, error) {
	ks := ints(n.Ints("kernel_shape", nil))
	if ks == nil {
		ks = kernel
	}
	rank := len(ks)
	if rank < 1 || rank > 2 {
		return window{}, 0, op.Errorf(n, "only 1-D and 2-D windows are supported, got kernel_shape %v", ks)
	}
	get := func(name string, def int, k int) ([]int, error) {
		v := ints(n.Ints(name, nil))
		if v == nil {
			v = make([]int, k)
			for i := range v {
				v[i] = def
			}
		}
		if len(v) != k {
			return nil, op.Errorf(n, "%s %v does not fit a %d-D window", name, v, rank)
		}
		return v, nil
	}
	st, err := get("strides", 1, rank)
	if err != nil {
		return window{}, 0, err
	}
	dl, err := get("dilations", 1, rank)
	if err != nil {
		return window{}, 0, err
	}
	pd, err := get("pads", 0, 2*rank)
	if err != nil {
		return window{}, 0, err
	}
	w := window{kh: 1, kw: ks[rank-1], sh: 1, sw: st[rank-1], dh: 1, dw: dl[rank-1], pl: pd[rank-1], pr: pd[2*rank-1]}
	if rank == 2 {
		w.kh, w.sh, w.dh, w.pt, w.pb = ks[0], st[0], dl[0], pd[0], pd[2]
	}
	w.autoPad = n.Str("auto_pad", "NOTSET")
	switch w.autoPad {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return window{}, 0, op.Errorf(n, "unknown auto_pad %q", w.autoPad)
	}
	w.ceil = n.Int("ceil_mode", 0) != 0
	for _, v := range append(append(st, dl...), ks...) {
		if v < 1 {
			return window{}, 0, op.Errorf(n, "kernel_shape, strides and dilations must be positive")
		}
	}
	return w, rank, nil
}

// resolve returns the window with pads fixed for an input of h×w and the
// output size.
func (w window) resolve(h, wd int) (window, int, int, error) {
	out := func(in, k, s, d int, p0, p1 *int) (int, error) {
		ek := (k-1)*d + 1
		switch w.autoPad {
		case "VALID":
			*p0, *p1 = 0, 0
		case "SAME_UPPER", "SAME_LOWER":
			o := (in + s - 1) / s
			total := max((o-1)*s+ek-in, 0)
			if w.autoPad == "SAME_UPPER" {
				*p0, *p1 = total/2, total-total/2
			} else {
				*p0, *p1 = total-total/2, total/2
			}
			return o, nil
		}
		span := in + *p0 + *p1 - ek
		if span < 0 {
			return 0, fmt.Errorf("window of %d (dilated) does not fit input of %d with pads %d,%d", ek, in, *p0, *p1)
		}
		o := span/s + 1
		if w.ceil {
			o = (span+s-1)/s + 1
			if (o-1)*s >= in+*p0 {
				o--
			}
		}
		return o, nil
	}
	oh, err := out(h, w.kh, w.sh, w.dh, &w.pt, &w.pb)
	if err != nil {
		return w, 0, 0, err
	}
	ow, err := out(wd, w.kw, w.sw, w.dw, &w.pl, &w.pr)
	return w, oh, ow, err
}

// spatial returns N, C, H, W of a 3-D or 4-D tensor for a window of rank r.
func spatial(x *tensor.Tensor, rank int) (n, c, h, w int, err error) {
	if x.Rank() != rank+2 {
		return 0, 0, 0, 0, fmt.Errorf("input has shape %v, want rank %d", x.Shape, rank+2)
	}
	if rank == 1 {
		return x.Shape[0], x.Shape[1], 1, x.Shape[2], nil
	}
	return x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], nil
}

func outShape(rank, n, c, oh, ow int) []int {
	if rank == 1 {
		return []int{n, c, ow}
	}
	return []int{n, c, oh, ow}
}

type conv struct {
	node  *graph.Node
	win   window
	rank  int
	group int
}

func newConv(n *graph.Node, opset int) (op.Kernel, error) {
	c := &conv{node: n, group: int(n.Int("group", 1))}
	if c.group < 1 {
		return nil, op.Errorf(n, "group %d must be positive", c.group)
	}
	if ks := n.Ints("kernel_shape", nil); ks != nil {
		w, r, err := parseWindow(n, ints(ks))
		if err != nil {
			return nil, err
		}
		c.win, c.rank = w, r
	}
	return c, nil
}

// geometry checks the shapes and returns the resolved window and sizes.
func (c *conv) geometry(in []*tensor.Tensor) (win window, rank, n, ch, h, w, m, oh, ow int, err error) {
	for i := 0; i < 2; i++ {
		if err = wantFloat(in, i); err != nil {
			return
		}
	}
	x, wt := in[0], in[1]
	win, rank = c.win, c.rank
	if rank == 0 {
		k := wt.Shape[2:]
		if win, rank, err = parseWindow(c.node, k); err != nil {
			return
		}
	}
	if wt.Rank() != rank+2 {
		err = fmt.Errorf("weight has shape %v, want rank %d", wt.Shape, rank+2)
		return
	}
	if n, ch, h, w, err = spatial(x, rank); err != nil {
		return
	}
	m = wt.Shape[0]
	kh, kw := 1, wt.Shape[2]
	if rank == 2 {
		kh, kw = wt.Shape[2], wt.Shape[3]
	}
	if kh != win.kh || kw != win.kw {
		err = fmt.Errorf("weight shape %v does not match kernel_shape", wt.Shape)
		return
	}
	if ch%c.group != 0 || m%c.group != 0 || wt.Shape[1] != ch/c.group {
		err = fmt.Errorf("input has %d channels and weight shape %v with group %d: they do not match", ch, wt.Shape, c.group)
		return
	}
	if len(in) > 2 && in[2] != nil && (in[2].Len() != m || in[2].DType != tensor.Float32) {
		err = fmt.Errorf("bias has shape %v, want [%d]", in[2].Shape, m)
		return
	}
	win, oh, ow, err = win.resolve(h, w)
	return
}

// im2col writes the patches of one image's channel group into cols
// ([cg*kh*kw, oh*ow]).
func im2col(win window, x []float32, cg, h, w, oh, ow int, cols []float32) {
	row := 0
	for c := 0; c < cg; c++ {
		plane := x[c*h*w : (c+1)*h*w]
		for i := 0; i < win.kh; i++ {
			for j := 0; j < win.kw; j++ {
				dst := cols[row*oh*ow : (row+1)*oh*ow]
				for y := 0; y < oh; y++ {
					iy := y*win.sh - win.pt + i*win.dh
					d := dst[y*ow : (y+1)*ow]
					if iy < 0 || iy >= h {
						clear(d)
						continue
					}
					src := plane[iy*w : (iy+1)*w]
					for xo := 0; xo < ow; xo++ {
						ix := xo*win.sw - win.pl + j*win.dw
						if ix < 0 || ix >= w {
							d[xo] = 0
						} else {
							d[xo] = src[ix]
						}
					}
				}
				row++
			}
		}
	}
}

// col2im adds cols back into the image (the adjoint of im2col).
func col2im(win window, cols []float32, cg, h, w, oh, ow int, x []float32) {
	row := 0
	for c := 0; c < cg; c++ {
		plane := x[c*h*w : (c+1)*h*w]
		for i := 0; i < win.kh; i++ {
			for j := 0; j < win.kw; j++ {
				src := cols[row*oh*ow : (row+1)*oh*ow]
				for y := 0; y < oh; y++ {
					iy := y*win.sh - win.pt + i*win.dh
					if iy < 0 || iy >= h {
						continue
					}
					dst := plane[iy*w : (iy+1)*w]
					s := src[y*ow : (y+1)*ow]
					for xo := 0; xo < ow; xo++ {
						ix := xo*win.sw - win.pl + j*win.dw
						if ix >= 0 && ix < w {
							dst[ix] += s[xo]
						}
					}
				}
				row++
			}
		}
	}
}

var colPool = sync.Pool{New: func() any { return new([]float32) }}

func getCols(n int) *[]float32 {
	p := colPool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

func (c *conv) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	win, rank, n, ch, h, w, m, oh, ow, err := c.geometry(in)
	if err != nil {
		return nil, err
	}
	x, wt := in[0], in[1]
	g := c.group
	cg, mg := ch/g, m/g
	kk := cg * win.kh * win.kw
	y := tensor.New(outShape(rank, n, m, oh, ow)...)
	sp := oh * ow
	parallel(n, n*2*m*kk*sp, func(lo, hi int) {
		cols := getCols(kk * sp)
		defer colPool.Put(cols)
		for b := lo; b < hi; b++ {
			for gi := 0; gi < g; gi++ {
				xb := x.F[(b*ch+gi*cg)*h*w:]
				yb := y.F[(b*m+gi*mg)*sp:]
				im2col(win, xb, cg, h, w, oh, ow, *cols)
				sgemm(false, false, mg, sp, kk, 1, wt.F[gi*mg*kk:], kk, *cols, sp, 0, yb, sp)
			}
			if len(in) > 2 && in[2] != nil {
				for o := 0; o < m; o++ {
					bv := in[2].F[o]
					row := y.F[(b*m+o)*sp : (b*m+o+1)*sp]
					for i := range row {
						row[i] += bv
					}
				}
			}
		}
	})
	return []*tensor.Tensor{y}, nil
}

func (c *conv) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	gy := gout[0]
	if gy == nil {
		return grads, nil
	}
	win, _, n, ch, h, w, m, oh, ow, err := c.geometry(in)
	if err != nil {
		return nil, err
	}
	x, wt := in[0], in[1]
	g := c.group
	cg, mg := ch/g, m/g
	kk := cg * win.kh * win.kw
	sp := oh * ow
	if need[0] {
		gx := tensor.New(x.Shape...)
		parallel(n, n*2*m*kk*sp, func(lo, hi int) {
			cols := getCols(kk * sp)
			defer colPool.Put(cols)
			for b := lo; b < hi; b++ {
				for gi := 0; gi < g; gi++ {
					sgemm(true, false, kk, sp, mg, 1, wt.F[gi*mg*kk:], kk, gy.F[(b*m+gi*mg)*sp:], sp, 0, *cols, sp)
					col2im(win, *cols, cg, h, w, oh, ow, gx.F[(b*ch+gi*cg)*h*w:])
				}
			}
		})
		grads[0] = gx
	}
	if need[1] {
		gw := tensor.New(wt.Shape...)
		cols := make([]float32, kk*sp)
		for b := 0; b < n; b++ {
			for gi := 0; gi < g; gi++ {
				im2col(win, x.F[(b*ch+gi*cg)*h*w:], cg, h, w, oh, ow, cols)
				sgemm(false, true, mg, kk, sp, 1, gy.F[(b*m+gi*mg)*sp:], sp, cols, sp, 1, gw.F[gi*mg*kk:], kk)
			}
		}
		grads[1] = gw
	}
	if len(in) > 2 && in[2] != nil && need[2] {
		gb := tensor.New(m)
		for b := 0; b < n; b++ {
			for o := 0; o < m; o++ {
				var s float32
				for _, v := range gy.F[(b*m+o)*sp : (b*m+o+1)*sp] {
					s += v
				}
				gb.F[o] += s
			}
		}
		grads[2] = gb
	}
	return grads, nil
}
