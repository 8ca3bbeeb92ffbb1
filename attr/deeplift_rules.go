package attr

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine"
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

// halves returns, for a tensor of 2N rows, x[i] - x[i+N] for the first half
// and the same value for the second (Captum's _compute_diffs).
func halves(t *tensor.Tensor) ([]float32, error) {
	if t.Rank() == 0 || t.Shape[0]%2 != 0 {
		return nil, fmt.Errorf("DeepLift rule: tensor of shape %v does not hold inputs and baselines in two halves", t.Shape)
	}
	half := t.Len() / 2
	d := make([]float32, t.Len())
	for i := 0; i < half; i++ {
		v := t.F[i] - t.F[i+half]
		d[i], d[i+half] = v, v
	}
	return d, nil
}

// rescale returns where(|din| < eps, plain, gout * dout / din).
func rescale(din, dout []float32, gout, plain *tensor.Tensor) *tensor.Tensor {
	out := tensor.New(gout.Shape...)
	for i := range out.F {
		if math.Abs(float64(din[i])) < deepLiftEps {
			out.F[i] = plain.F[i]
		} else {
			out.F[i] = gout.F[i] * dout[i] / din[i]
		}
	}
	return out
}

func rescaleRule(c *engine.RuleContext) ([]*tensor.Tensor, error) {
	plain, err := c.Default()
	if err != nil || c.GradOut[0] == nil || plain[0] == nil {
		return plain, err
	}
	din, err := halves(c.In[0])
	if err != nil {
		return nil, err
	}
	dout, err := halves(c.Out[0])
	if err != nil {
		return nil, err
	}
	g := append([]*tensor.Tensor{rescale(din, dout, hookGradOut(c), plain[0])}, plain[1:]...)
	return g, nil
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
	plain, err := c.Default()
	if err != nil || c.GradOut[0] == nil || plain[0] == nil {
		return plain, err
	}
	x, y, gout := c.In[0], c.Out[0], hookGradOut(c)
	din, err := halves(x)
	if err != nil {
		return nil, err
	}
	if y.Rank() == 0 || y.Shape[0]%2 != 0 {
		return nil, fmt.Errorf("DeepLift rule: tensor of shape %v does not hold inputs and baselines in two halves", y.Shape)
	}
	yh := y.Len() / 2
	dout := make([]float32, y.Len())
	for i := 0; i < yh; i++ {
		m := max(y.F[i], y.F[i+yh])
		dout[i] = m - y.F[i+yh]
		dout[i+yh] = y.F[i] - m
	}
	idx, err := poolArgmax(c, x, y)
	if err != nil {
		return nil, err
	}
	un := make([]float32, x.Len())
	for o, i := range idx {
		un[i] = gout.F[o] * dout[o]
	}
	half := x.Len() / 2
	for i := 0; i < half; i++ {
		s := un[i] + un[i+half]
		un[i], un[i+half] = s, s
	}
	out := tensor.New(x.Shape...)
	for i := range out.F {
		if math.Abs(float64(din[i])) < deepLiftEps {
			out.F[i] = plain[0].F[i]
		} else {
			out.F[i] = un[i] / din[i]
		}
	}
	return []*tensor.Tensor{out}, nil
}

// poolArgmax returns, for each element of a max pool's output y, the flat
// index in x of its window's first maximum.
func poolArgmax(c *engine.RuleContext, x, y *tensor.Tensor) ([]int, error) {
	n := c.Node
	rank := x.Rank() - 2
	if rank < 1 || rank > 2 || y.Rank() != x.Rank() {
		return nil, fmt.Errorf("DeepLift MaxPool rule supports 1-D and 2-D pooling, got input %v", x.Shape)
	}
	ks := n.Ints("kernel_shape", nil)
	if len(ks) != rank {
		return nil, fmt.Errorf("DeepLift MaxPool rule: kernel_shape %v for a %d-D pool", ks, rank)
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
		return nil, fmt.Errorf("DeepLift MaxPool rule: auto_pad %s is not supported", ap)
	}
	// Treat 1-D as 2-D with height 1.
	H, W, OH, OW := 1, x.Shape[2], 1, y.Shape[2]
	KH, KW, SH, SW, DH, DW, PT, PL := 1, int(ks[0]), 1, strides[0], 1, dil[0], 0, pads[0]
	if rank == 2 {
		H, W, OH, OW = x.Shape[2], x.Shape[3], y.Shape[2], y.Shape[3]
		KH, KW, SH, SW, DH, DW, PT, PL = int(ks[0]), int(ks[1]), strides[0], strides[1], dil[0], dil[1], pads[0], pads[1]
	}
	planes := x.Shape[0] * x.Shape[1]
	idx := make([]int, y.Len())
	for p := 0; p < planes; p++ {
		for oh := 0; oh < OH; oh++ {
			for ow := 0; ow < OW; ow++ {
				best, bi := float32(math.Inf(-1)), -1
				for kh := 0; kh < KH; kh++ {
					ih := oh*SH - PT + kh*DH
					if ih < 0 || ih >= H {
						continue
					}
					for kw := 0; kw < KW; kw++ {
						iw := ow*SW - PL + kw*DW
						if iw < 0 || iw >= W {
							continue
						}
						i := p*H*W + ih*W + iw
						if v := x.F[i]; v > best || bi < 0 || math.IsNaN(float64(v)) {
							best, bi = v, i
						}
					}
				}
				if bi < 0 {
					bi = p * H * W
				}
				idx[p*OH*OW+oh*OW+ow] = bi
			}
		}
	}
	return idx, nil
}
