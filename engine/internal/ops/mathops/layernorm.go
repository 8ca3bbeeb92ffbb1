package mathops

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// layerNormKernel is LayerNormalization (opset 17): X is normalized over
// the dimensions from axis (default -1) on, with epsilon (default 1e-5),
// then scaled by Scale and shifted by B (both optional, broadcast to the
// normalized shape). The Mean and InvStdDev outputs are produced only when
// the node names them. Statistics are computed in float64.
type layerNormKernel struct {
	axis int64
	eps  float64
	nOut int
}

func newLayerNorm(n *graph.Node, _ int) (op.Kernel, error) {
	if st := n.Int("stash_type", 1); st != 1 {
		return nil, op.Errorf(n, "unsupported stash_type %d (want 1, float32)", st)
	}
	return layerNormKernel{
		axis: n.Int("axis", -1),
		eps:  float64(n.Float("epsilon", 1e-5)),
		nOut: max(op.OutputCount(n), 1),
	}, nil
}

// lnArgs are a call's checked inputs: x viewed as rows×n, and Scale and B
// expanded to n values (nil when omitted).
type lnArgs struct {
	x                    *tensor.Tensor
	rows, n              int
	normShape, statShape []int
	scale, bias          []float32 // n values each, nil when omitted
	scaleT, biasT        *tensor.Tensor
}

func (k layerNormKernel) args(in []*tensor.Tensor) (*lnArgs, error) {
	x, err := op.FloatArg(in, 0)
	if err != nil {
		return nil, err
	}
	a, err := op.NormAxis(k.axis, len(x.Shape))
	if err != nil {
		return nil, err
	}
	r := &lnArgs{x: x, rows: tensor.Size(x.Shape[:a]), n: tensor.Size(x.Shape[a:]), normShape: x.Shape[a:]}
	r.statShape = shapeOf(x.Shape[:a])
	for range x.Shape[a:] {
		r.statShape = append(r.statShape, 1)
	}
	for i := 1; i <= 2; i++ {
		if op.Arg(in, i) == nil {
			continue
		}
		t, err := op.FloatArg(in, i)
		if err != nil {
			return nil, err
		}
		if s, e := tensor.BroadcastShape(t.Shape, r.normShape); e != nil || !tensor.SameShape(s, r.normShape) {
			return nil, fmt.Errorf("input %d has shape %v, which does not broadcast to the normalized shape %v", i, t.Shape, r.normShape)
		}
		v := t.F
		if len(v) != r.n {
			v = expandTo(t, r.normShape).F
		}
		if i == 1 {
			r.scale, r.scaleT = v, t
		} else {
			r.bias, r.biasT = v, t
		}
	}
	return r, nil
}

// stats returns the mean and 1/sqrt(var+eps) of one row.
func (k layerNormKernel) stats(row []float32) (mean, rstd float64) {
	s := sumRun(0, row)
	mean = s / float64(len(row))
	var v0, v1, v2, v3 float64 // four chains, for throughput
	i := 0
	for ; i+4 <= len(row); i += 4 {
		d0, d1 := float64(row[i])-mean, float64(row[i+1])-mean
		d2, d3 := float64(row[i+2])-mean, float64(row[i+3])-mean
		v0 += d0 * d0
		v1 += d1 * d1
		v2 += d2 * d2
		v3 += d3 * d3
	}
	for ; i < len(row); i++ {
		d := float64(row[i]) - mean
		v0 += d * d
	}
	v := ((v0 + v1) + (v2 + v3)) / float64(len(row))
	return mean, 1 / math.Sqrt(v+k.eps)
}

func (k layerNormKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	p, err := k.args(in)
	if err != nil {
		return nil, err
	}
	x, n := p.x, p.n
	y := tensor.New(x.Shape...)
	var mt, rt *tensor.Tensor
	if k.nOut > 1 {
		mt = tensor.New(p.statShape...)
		rt = tensor.New(p.statShape...)
	}
	if n > 0 {
		par.For(p.rows, par.Grain(n*4), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				xr, yr := x.F[r*n:(r+1)*n], y.F[r*n:(r+1)*n]
				mean, rstd := k.stats(xr)
				m32, r32 := float32(mean), float32(rstd)
				if mt != nil {
					mt.F[r], rt.F[r] = m32, r32
				}
				switch {
				case p.scale != nil && p.bias != nil:
					sc, bs := p.scale[:len(xr)], p.bias[:len(xr)]
					for i, v := range xr {
						yr[i] = (v-m32)*r32*sc[i] + bs[i]
					}
				default:
					for i, v := range xr {
						h := (v - m32) * r32
						if p.scale != nil {
							h *= p.scale[i]
						}
						if p.bias != nil {
							h += p.bias[i]
						}
						yr[i] = h
					}
				}
			}
		})
	}
	outs := []*tensor.Tensor{y, mt, rt}
	return outs[:min(k.nOut, 3)], nil
}

func (k layerNormKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res := make([]*tensor.Tensor, len(in))
	if !op.NeedAny(need) {
		return res, nil
	}
	p, err := k.args(in)
	if err != nil {
		return nil, err
	}
	x, n, rows := p.x, p.n, p.rows
	gy, gm, gr := op.GradAt(gout, 0), op.GradAt(gout, 1), op.GradAt(gout, 2)
	if gy != nil && len(gy.F) != len(x.F) {
		return nil, fmt.Errorf("output gradient has shape %v, want %v", gy.Shape, x.Shape)
	}
	for _, t := range []*tensor.Tensor{gm, gr} {
		if t != nil && len(t.F) != rows {
			return nil, fmt.Errorf("statistics gradient has shape %v, want %v", t.Shape, p.statShape)
		}
	}
	needX := op.Needs(need, 0)
	needS := op.Needs(need, 1) && p.scale != nil
	needB := op.Needs(need, 2) && p.bias != nil
	var gx *tensor.Tensor
	if needX {
		gx = zerosLike(x)
	}
	c := 1
	if n > 0 {
		c = par.ChunkCount(rows, n*8)
	}
	sBufs := make([][]float64, c)
	bBufs := make([][]float64, c)
	if n > 0 && (gy != nil || gm != nil || gr != nil) {
		par.Chunks(rows, c, func(ci, lo, hi int) {
			var ds, db []float64
			if needS && gy != nil {
				ds = make([]float64, n)
				sBufs[ci] = ds
			}
			if needB && gy != nil {
				db = make([]float64, n)
				bBufs[ci] = db
			}
			dy := make([]float64, n)
			for r := lo; r < hi; r++ {
				xr := x.F[r*n : (r+1)*n]
				mean, rstd := k.stats(xr)
				var gyr []float32
				if gy != nil {
					gyr = gy.F[r*n : (r+1)*n]
				}
				var sdy, sdyh float64
				for i, v := range xr {
					h := (float64(v) - mean) * rstd
					d := 0.0
					if gyr != nil {
						gv := float64(gyr[i])
						if ds != nil {
							ds[i] += gv * h
						}
						if db != nil {
							db[i] += gv
						}
						d = gv
						if p.scale != nil {
							d *= float64(p.scale[i])
						}
					}
					dy[i] = d
					sdy += d
					sdyh += d * h
				}
				if gx == nil {
					continue
				}
				nf := float64(n)
				mdy, mdyh := sdy/nf, sdyh/nf
				var extraM, extraR float64
				if gm != nil {
					extraM = float64(gm.F[r]) / nf
				}
				if gr != nil {
					extraR = -float64(gr.F[r]) * rstd * rstd / nf
				}
				gxr := gx.F[r*n : (r+1)*n]
				for i, v := range xr {
					h := (float64(v) - mean) * rstd
					gxr[i] = float32(rstd*(dy[i]-mdy-h*mdyh) + extraM + extraR*h)
				}
			}
		})
	}
	res[0] = gx
	param := func(bufs [][]float64, t *tensor.Tensor) *tensor.Tensor {
		full := make([]float64, n)
		for _, b := range bufs {
			for i, v := range b {
				full[i] += v
			}
		}
		g := tensor.New(p.normShape...)
		for i, v := range full {
			g.F[i] = float32(v)
		}
		return sumTo(g, t.Shape)
	}
	if needS {
		res[1] = param(sBufs, p.scaleT)
	}
	if needB {
		res[2] = param(bBufs, p.biasT)
	}
	return res, nil
}
