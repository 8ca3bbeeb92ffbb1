package attr

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// deepLiftEps is Captum's threshold below which DeepLift falls back to the
// plain gradient.
const deepLiftEps = 1e-10

// deepLiftRules returns DeepLift's rescale rules for a batch whose first
// half holds the inputs and whose second half holds their baselines: the
// nonlinear rule on Relu, LeakyRelu, Elu, Sigmoid, Tanh and Softplus, the
// Softmax rule and the MaxPool rule, as Captum applies them to those
// modules. Other ops keep their gradient.
func deepLiftRules(strict bool) engine.Rules {
	r := engine.OpRules{
		"Relu":      rescaleRule,
		"LeakyRelu": rescaleRule,
		"Elu":       rescaleRule,
		"Sigmoid":   rescaleRule,
		"Tanh":      rescaleRule,
		"Softplus":  rescaleRule,
		"Softmax":   softmaxRule,
		"MaxPool":   maxPoolRule,
	}
	if strict {
		return r
	}
	return captumRules{r}
}

// captumRules are rules that see the gradient at a node's output as
// Captum's module hooks do (engine.RuleContext.RawGradOut): when a node with
// a rule feeds another node with a rule (a ReLU into a MaxPool), Captum's
// hook on the first sees the second's plain gradient, not its rule's.
type captumRules struct{ engine.OpRules }

// RawGradients asks the engine for RuleContext.RawGradOut.
func (captumRules) RawGradients() bool { return true }

// hookGradOut returns the gradient at a node's first output as Captum's
// hook sees it.
func hookGradOut(c *engine.RuleContext) *tensor.Tensor {
	if c.RawGradOut != nil && c.RawGradOut[0] != nil {
		return c.RawGradOut[0]
	}
	return c.GradOut[0]
}

// halvesOf returns half the length of a tensor of 2N rows (Captum's
// _compute_diffs pairs row i with row i+N), or an error when it does not
// split so.
func halvesOf(t *tensor.Tensor) (int, error) {
	if t.Rank() == 0 || t.Shape[0]%2 != 0 {
		return 0, fmt.Errorf("DeepLift rule: tensor of shape %v does not hold inputs and baselines in two halves", t.Shape)
	}
	return t.Len() / 2, nil
}

// ruleGrain is the number of elements below which a rule's loop stays on
// one goroutine.
const ruleGrain = 1 << 14

// rescaleRule is DeepLift's rescale rule for an elementwise op: the
// gradient at the output times Δout/Δin, where Δ is an element of the input
// half minus its baseline (the same for both halves); where |Δin| is below
// eps the op's own gradient is kept. That gradient is computed only when
// some element needs it.
func rescaleRule(c *engine.RuleContext) ([]*tensor.Tensor, error) {
	if c.GradOut[0] == nil || !c.Need[0] {
		return c.Default()
	}
	x, y, g := c.In[0], c.Out[0], hookGradOut(c)
	h, err := halvesOf(x)
	if err != nil {
		return nil, err
	}
	if y.Len() != x.Len() || g.Len() != x.Len() {
		return nil, fmt.Errorf("DeepLift rule: %s maps %v to %v, want an elementwise op", c.Node, x.Shape, y.Shape)
	}
	out := tensor.New(g.Shape...)
	var small atomic.Bool // some |Δin| < eps
	par.For(h, ruleGrain, func(lo, hi int) {
		found := false
		xa, xb, ya, yb := x.F[lo:hi], x.F[h+lo:h+hi], y.F[lo:hi], y.F[h+lo:h+hi]
		ga, gb, oa, ob := g.F[lo:hi], g.F[h+lo:h+hi], out.F[lo:hi], out.F[h+lo:h+hi]
		for i, v := range xa {
			din := v - xb[i]
			if math.Abs(float64(din)) < deepLiftEps {
				found = true
				continue
			}
			dout := ya[i] - yb[i]
			oa[i] = ga[i] * dout / din
			ob[i] = gb[i] * dout / din
		}
		if found {
			small.Store(true)
		}
	})
	grads := []*tensor.Tensor{out}
	if small.Load() || len(c.In) > 1 {
		plain, err := c.Default()
		if err != nil {
			return nil, err
		}
		if small.Load() {
			keepPlain(out.F, plain[0].F, x.F, h)
		}
		grads = append(grads, plain[1:]...)
	}
	return grads, nil
}

// keepPlain copies into out, in both halves, the plain gradient where the
// input differs from its baseline (x[i] - x[i+h]) by less than eps.
func keepPlain(out, plain, x []float32, h int) {
	par.For(h, ruleGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if math.Abs(float64(x[i]-x[i+h])) < deepLiftEps {
				out[i], out[i+h] = plain[i], plain[i+h]
			}
		}
	})
}

// softmaxRule is the rescale rule followed by subtracting the mean of the
// whole gradient tensor (both halves, all classes), as Captum does.
func softmaxRule(c *engine.RuleContext) ([]*tensor.Tensor, error) {
	g, err := rescaleRule(c)
	if err != nil || g[0] == nil {
		return g, err
	}
	var s float32
	for _, v := range g[0].F {
		s += v
	}
	mean := s / float32(len(g[0].F))
	for i := range g[0].F {
		g[0].F[i] -= mean
	}
	return g, nil
}

// maxPoolRule is Captum's: with m = max(y, y_ref) per output element, the
// input half's gradient is weighted by m - y_ref and the baseline half's by
// y - m; both are unpooled to the argmax of their own windows (a later
// window overwrites an earlier one at the same position, as max_unpool
// does), the two halves are added, and the sum is divided by the input
// difference; where that is below eps, the plain gradient is kept.
func maxPoolRule(c *engine.RuleContext) ([]*tensor.Tensor, error) {
	if c.GradOut[0] == nil || !c.Need[0] {
		return c.Default()
	}
	x, y, gout := c.In[0], c.Out[0], hookGradOut(c)
	half, err := halvesOf(x)
	if err != nil {
		return nil, err
	}
	yh, err := halvesOf(y)
	if err != nil {
		return nil, err
	}
	if gout.Len() != y.Len() || c.GradOut[0].Len() != y.Len() {
		return nil, fmt.Errorf("DeepLift MaxPool rule: gradient of shape %v for output %v", gout.Shape, y.Shape)
	}
	g, err := poolGeometry(c.Node, x, y)
	if err != nil {
		return nil, err
	}
	// un: each output's weighted gradient unpooled to its window's first
	// maximum (a later window overwriting an earlier one); plain: the
	// pool's own gradient, the same windows' gradients summed at their
	// maxima in the same order (as the MaxPool kernel's). Planes are
	// disjoint; the windows of a plane run in order.
	plainAt := c.GradOut[0].F
	un := make([]float32, x.Len())
	plain := make([]float32, x.Len())
	inPlane, outPlane := g.H*g.W, g.OH*g.OW
	par.For(g.planes, max(1, ruleGrain/max(1, outPlane*g.KH*g.KW)), func(lo, hi int) {
		for p := lo; p < hi; p++ {
			xp := x.F[p*inPlane : (p+1)*inPlane]
			up := un[p*inPlane : (p+1)*inPlane]
			pp := plain[p*inPlane : (p+1)*inPlane]
			for oh := 0; oh < g.OH; oh++ {
				for ow := 0; ow < g.OW; ow++ {
					o := p*outPlane + oh*g.OW + ow
					var d float32
					if o < yh {
						d = max(y.F[o], y.F[o+yh]) - y.F[o+yh]
					} else {
						d = y.F[o-yh] - max(y.F[o-yh], y.F[o])
					}
					at := g.argmax(xp, oh, ow)
					up[at] = gout.F[o] * d
					pp[at] += plainAt[o]
				}
			}
		}
	})
	out := tensor.New(x.Shape...)
	par.For(half, ruleGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			din := x.F[i] - x.F[i+half]
			if math.Abs(float64(din)) < deepLiftEps {
				out.F[i], out.F[i+half] = plain[i], plain[i+half]
				continue
			}
			s := un[i] + un[i+half]
			out.F[i], out.F[i+half] = s/din, s/din
		}
	})
	return []*tensor.Tensor{out}, nil
}

// poolGeom is a max pool's window on planes of H×W (1-D pools have H = 1).
type poolGeom struct {
	planes, H, W, OH, OW           int
	KH, KW, SH, SW, DH, DW, PT, PL int
}

// poolGeometry reads a MaxPool node's window for input x and output y.
func poolGeometry(n *graph.Node, x, y *tensor.Tensor) (poolGeom, error) {
	rank := x.Rank() - 2
	if rank < 1 || rank > 2 || y.Rank() != x.Rank() {
		return poolGeom{}, fmt.Errorf("DeepLift MaxPool rule supports 1-D and 2-D pooling, got input %v", x.Shape)
	}
	ks := n.Ints("kernel_shape", nil)
	if len(ks) != rank {
		return poolGeom{}, fmt.Errorf("DeepLift MaxPool rule: kernel_shape %v for a %d-D pool", ks, rank)
	}
	get := func(name string, def int64, k int) []int {
		v := n.Ints(name, nil)
		out := make([]int, k)
		for i := range out {
			out[i] = int(def)
			if i < len(v) {
				out[i] = int(v[i])
			}
		}
		return out
	}
	strides := get("strides", 1, rank)
	dil := get("dilations", 1, rank)
	pads := get("pads", 0, 2*rank)
	if ap := n.Str("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "VALID" {
		return poolGeom{}, fmt.Errorf("DeepLift MaxPool rule: auto_pad %s is not supported", ap)
	}
	// Treat 1-D as 2-D with height 1.
	g := poolGeom{planes: x.Shape[0] * x.Shape[1], H: 1, W: x.Shape[2], OH: 1, OW: y.Shape[2],
		KH: 1, KW: int(ks[0]), SH: 1, SW: strides[0], DH: 1, DW: dil[0], PL: pads[0]}
	if rank == 2 {
		g.H, g.W, g.OH, g.OW = x.Shape[2], x.Shape[3], y.Shape[2], y.Shape[3]
		g.KH, g.KW, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL = int(ks[0]), int(ks[1]), strides[0], strides[1], dil[0], dil[1], pads[0], pads[1]
	}
	if y.Shape[0]*y.Shape[1] != g.planes {
		return poolGeom{}, fmt.Errorf("DeepLift MaxPool rule: output %v for input %v", y.Shape, x.Shape)
	}
	return g, nil
}

// argmax returns the index in the plane xp of the first maximum of output
// (oh, ow)'s window (the last NaN if it holds any; the plane's first
// element if the window holds no input element), as PyTorch's CPU kernel.
func (g *poolGeom) argmax(xp []float32, oh, ow int) int {
	best, bi := float32(math.Inf(-1)), -1
	for kh := 0; kh < g.KH; kh++ {
		ih := oh*g.SH - g.PT + kh*g.DH
		if ih < 0 || ih >= g.H {
			continue
		}
		row := xp[ih*g.W : (ih+1)*g.W]
		for kw := 0; kw < g.KW; kw++ {
			iw := ow*g.SW - g.PL + kw*g.DW
			if iw < 0 || iw >= g.W {
				continue
			}
			if v := row[iw]; v > best || bi < 0 || v != v {
				best, bi = v, ih*g.W+iw
			}
		}
	}
	return max(bi, 0)
}
