package mathops

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/internal/kernels"
	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// unaryKernel is an elementwise op on one float32 tensor (and optionally
// int64). fwd maps x to y chunk by chunk; bwd writes gx = g * dy/dx for a
// chunk, given x and y; a nil bwd means the derivative is zero everywhere.
type unaryKernel struct {
	fwd  func(y, x []float32)
	bwd  func(gx, g, x, y []float32)
	ints func(y, x []int64)
	cost int // rough cost of one element, in additions
	// fullBwd: bwd writes every element of gx (some leave zeros alone).
	fullBwd bool
}

func (k *unaryKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return k.ForwardAlloc(in, nil)
}

// ForwardAlloc is Forward with a float output from alloc (nil:
// tensor.New): the op maps every element.
func (k *unaryKernel) ForwardAlloc(in []*tensor.Tensor, alloc op.Alloc) ([]*tensor.Tensor, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	switch {
	case x.DType == tensor.Float32:
		y := op.NewOr(alloc, x.Shape...)
		par.For(len(x.F), par.Grain(k.cost), func(lo, hi int) { k.fwd(y.F[lo:hi], x.F[lo:hi]) })
		return []*tensor.Tensor{y}, nil
	case x.DType == tensor.Int64 && k.ints != nil:
		y := tensor.NewInt(x.Shape...)
		k.ints(y.I, x.I)
		return []*tensor.Tensor{y}, nil
	}
	if k.ints != nil {
		return nil, fmt.Errorf("input 0 is %s, want float32 or int64", x.DType)
	}
	return nil, fmt.Errorf("input 0 is %s, want float32", x.DType)
}

// sameShapeBackwardStart is the common start of the backward pass of an
// op whose one output has its input's shape (elementwise ops, softmax):
// it returns y == nil, with res holding what to return, when there is
// nothing to compute (input 0 not needed or not float, no output gradient,
// or zero a gradient: zero says the op's derivative is zero); otherwise the
// input, the output gradient, and the output (from out, or recomputed by
// forward).
func sameShapeBackwardStart(in, out, gout []*tensor.Tensor, need []bool, zero bool, forward func([]*tensor.Tensor) ([]*tensor.Tensor, error)) (res []*tensor.Tensor, x, g, y *tensor.Tensor, err error) {
	res = make([]*tensor.Tensor, len(in))
	x = op.Arg(in, 0)
	if !op.Needs(need, 0) || x == nil || x.DType != tensor.Float32 {
		return res, nil, nil, nil, nil
	}
	g = op.GradAt(gout, 0)
	if g == nil || zero {
		res[0] = zerosLike(x)
		return res, nil, nil, nil, nil
	}
	if len(g.F) != len(x.F) {
		return nil, nil, nil, nil, fmt.Errorf("output gradient has shape %v, want %v", g.Shape, x.Shape)
	}
	y = op.Arg(out, 0)
	if y == nil || len(y.F) != len(x.F) {
		o, err := forward(in[:1])
		if err != nil {
			return nil, nil, nil, nil, err
		}
		y = o[0]
	}
	return res, x, g, y, nil
}

func (k *unaryKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	return k.BackwardAlloc(in, out, gout, need, nil)
}

// BackwardAlloc is Backward with the input's gradient from alloc (nil:
// tensor.New), cleared first unless the op's bwd writes every element.
func (k *unaryKernel) BackwardAlloc(in, out, gout []*tensor.Tensor, need []bool, alloc op.Alloc) ([]*tensor.Tensor, error) {
	res, x, g, y, err := sameShapeBackwardStart(in, out, gout, need, k.bwd == nil, k.Forward)
	if err != nil || y == nil {
		return res, err
	}
	gx := op.NewOr(alloc, x.Shape...)
	if alloc != nil && !k.fullBwd {
		clear(gx.F)
	}
	par.For(len(x.F), par.Grain(k.cost+1), func(lo, hi int) { k.bwd(gx.F[lo:hi], g.F[lo:hi], x.F[lo:hi], y.F[lo:hi]) })
	res[0] = gx
	return res, nil
}

// mapF returns a chunk function applying f to every element (for
// functions computed in float32).
func mapF(f func(float32) float32) func(y, x []float32) {
	return func(y, x []float32) {
		x = x[:len(y)]
		for i, v := range x {
			y[i] = f(v)
		}
	}
}

// mapD returns a chunk function applying a float64 function to every
// element (see mapSlice).
func mapD(f func(float64) float64) func(y, x []float32) {
	return func(y, x []float32) { mapSlice(y, x, f) }
}

// gradF returns a chunk function writing gx = g * d(x) (for derivatives
// computed in float32).
func gradF(d func(x float32) float32) func(gx, g, x, y []float32) {
	return func(gx, g, x, _ []float32) {
		g, x = g[:len(gx)], x[:len(gx)]
		for i, v := range x {
			gx[i] = g[i] * d(v)
		}
	}
}

// gradD returns a chunk function writing gx = g * d(x) for a derivative
// computed in float64.
func gradD(d func(x float64) float64) func(gx, g, x, y []float32) {
	return func(gx, g, x, _ []float32) {
		mapSlice(gx, x, d)
		g = g[:len(gx)]
		for i, v := range g {
			gx[i] *= v
		}
	}
}

// abs32 is |x| without a round trip through float64.
func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

func fixed(k *unaryKernel) op.Factory {
	return func(*graph.Node, int) (op.Kernel, error) { return k, nil }
}

func unaryFactories() map[string]op.Factory {
	return map[string]op.Factory{
		"Relu":        fixed(reluKernel),
		"Sigmoid":     fixed(sigmoidKernel),
		"Tanh":        fixed(tanhKernel),
		"Exp":         fixed(expKernel),
		"Log":         fixed(logKernel),
		"Neg":         fixed(negKernel),
		"Abs":         fixed(absKernel),
		"Sqrt":        fixed(sqrtKernel),
		"Reciprocal":  fixed(reciprocalKernel),
		"Erf":         fixed(erfKernel),
		"Softplus":    fixed(softplusKernel),
		"Softsign":    fixed(softsignKernel),
		"Sign":        fixed(signKernel),
		"Floor":       fixed(&unaryKernel{fwd: mapD(math.Floor), cost: 2}),
		"Ceil":        fixed(&unaryKernel{fwd: mapD(math.Ceil), cost: 2}),
		"Round":       fixed(&unaryKernel{fwd: mapD(math.RoundToEven), cost: 2}),
		"Sin":         fixed(sinKernel),
		"Cos":         fixed(cosKernel),
		"HardSwish":   fixed(hardSwishKernel),
		"LeakyRelu":   newLeakyRelu,
		"Elu":         newElu,
		"Selu":        newSelu,
		"HardSigmoid": newHardSigmoid,
		"Gelu":        newGelu,
		"PRelu":       newPRelu,
	}
}

var reluKernel = &unaryKernel{
	cost: 1,
	fwd:  vRelu, // NaN propagates, as in PyTorch
	// PyTorch (threshold_backward): the gradient passes where x > 0 or x
	// is NaN; the derivative at 0 is 0.
	bwd:     func(gx, g, x, _ []float32) { kernels.ReluGrad(gx, g, x) },
	fullBwd: true,
}

var sigmoidKernel = &unaryKernel{
	cost: 8,
	fwd:  sigmoidSlice,
	// PyTorch's sigmoid_backward: g * (1 - y) * y.
	bwd: func(gx, g, _, y []float32) {
		g, y = g[:len(gx)], y[:len(gx)]
		for i, v := range y {
			gx[i] = g[i] * (1 - v) * v
		}
	},
}

var tanhKernel = &unaryKernel{
	cost: 8,
	fwd:  tanhSlice,
	// PyTorch's tanh_backward: g * (1 - y*y).
	bwd: func(gx, g, _, y []float32) {
		g, y = g[:len(gx)], y[:len(gx)]
		for i, v := range y {
			gx[i] = g[i] * (1 - v*v)
		}
	},
}

var expKernel = &unaryKernel{
	cost: 6,
	fwd:  vExp,
	bwd: func(gx, g, _, y []float32) {
		g, y = g[:len(gx)], y[:len(gx)]
		for i, v := range y {
			gx[i] = g[i] * v
		}
	},
}

var logKernel = &unaryKernel{
	cost: 10,
	fwd:  mapD(math.Log),
	bwd: func(gx, g, x, _ []float32) {
		g, x = g[:len(gx)], x[:len(gx)]
		for i, v := range x {
			gx[i] = g[i] / v
		}
	},
}

var negKernel = &unaryKernel{
	cost: 1,
	fwd: func(y, x []float32) {
		x = x[:len(y)]
		for i, v := range x {
			y[i] = -v
		}
	},
	bwd: func(gx, g, _, _ []float32) {
		g = g[:len(gx)]
		for i, v := range g {
			gx[i] = -v
		}
	},
	ints: func(y, x []int64) {
		for i, v := range x {
			y[i] = -v
		}
	},
}

var absKernel = &unaryKernel{
	cost: 1,
	fwd: func(y, x []float32) {
		x = x[:len(y)]
		for i, v := range x {
			y[i] = abs32(v)
		}
	},
	// PyTorch: g * sign(x), 0 at x = 0.
	bwd: func(gx, g, x, _ []float32) {
		g, x = g[:len(gx)], x[:len(gx)]
		for i, v := range x {
			switch {
			case v > 0:
				gx[i] = g[i]
			case v < 0:
				gx[i] = -g[i]
			}
		}
	},
	ints: func(y, x []int64) {
		for i, v := range x {
			if v < 0 {
				v = -v
			}
			y[i] = v
		}
	},
}

var sqrtKernel = &unaryKernel{
	cost: 4,
	fwd:  mapD(math.Sqrt),
	// PyTorch: g / (2 y).
	bwd: func(gx, g, _, y []float32) {
		g, y = g[:len(gx)], y[:len(gx)]
		for i, v := range y {
			gx[i] = g[i] / (2 * v)
		}
	},
}

var reciprocalKernel = &unaryKernel{
	cost: 2,
	fwd: func(y, x []float32) {
		x = x[:len(y)]
		for i, v := range x {
			y[i] = 1 / v
		}
	},
	// PyTorch: -g * y^2.
	bwd: func(gx, g, _, y []float32) {
		g, y = g[:len(gx)], y[:len(gx)]
		for i, v := range y {
			gx[i] = -g[i] * (v * v)
		}
	},
}

var erfKernel = &unaryKernel{
	cost: 20,
	fwd:  mapD(math.Erf),
	bwd:  gradD(func(x float64) float64 { return 2 / math.SqrtPi * expd(-x*x) }),
}

var softplusKernel = &unaryKernel{
	cost: 16,
	fwd:  mapD(softplusd),
	bwd:  gradD(sigmoidd),
}

var softsignKernel = &unaryKernel{
	cost: 2,
	fwd:  mapF(func(x float32) float32 { return x / (1 + abs32(x)) }),
	bwd: gradF(func(x float32) float32 {
		d := 1 + abs32(x)
		return 1 / (d * d)
	}),
}

// Sign is piecewise constant: its gradient is zero, as in PyTorch.
var signKernel = &unaryKernel{
	cost: 1,
	fwd: mapF(func(x float32) float32 {
		switch {
		case x > 0:
			return 1
		case x < 0:
			return -1
		}
		return x // 0, -0 or NaN
	}),
	ints: func(y, x []int64) {
		for i, v := range x {
			switch {
			case v > 0:
				y[i] = 1
			case v < 0:
				y[i] = -1
			}
		}
	},
}

var sinKernel = &unaryKernel{
	cost: 10,
	fwd:  mapD(math.Sin),
	bwd:  gradD(math.Cos),
}

var cosKernel = &unaryKernel{
	cost: 10,
	fwd:  mapD(math.Cos),
	bwd:  gradD(func(x float64) float64 { return -math.Sin(x) }),
}

// HardSwish is x * clamp(x/6 + 1/2, 0, 1); its gradient follows PyTorch's
// hardswish_backward (0 below -3, x/3 + 1/2 up to 3 inclusive, 1 above).
var hardSwishKernel = &unaryKernel{
	cost: 2,
	fwd: mapF(func(x float32) float32 {
		switch {
		case x <= -3:
			return 0
		case x >= 3:
			return x
		}
		return x * (x + 3) / 6
	}),
	bwd: gradF(func(x float32) float32 {
		switch {
		case x < -3:
			return 0
		case x <= 3:
			return x/3 + 0.5
		}
		return 1
	}),
}

func newLeakyRelu(n *graph.Node, _ int) (op.Kernel, error) {
	alpha := n.Float("alpha", 0.01)
	return &unaryKernel{
		cost: 1,
		fwd: func(y, x []float32) {
			x = x[:len(y)]
			for i, v := range x {
				if v > 0 {
					y[i] = v
				} else {
					y[i] = v * alpha
				}
			}
		},
		// PyTorch: g where x > 0, alpha*g elsewhere (0 included).
		bwd: func(gx, g, x, _ []float32) {
			g, x = g[:len(gx)], x[:len(gx)]
			for i, v := range x {
				if v > 0 {
					gx[i] = g[i]
				} else {
					gx[i] = g[i] * alpha
				}
			}
		},
	}, nil
}

func newElu(n *graph.Node, _ int) (op.Kernel, error) {
	alpha := float64(n.Float("alpha", 1))
	return &unaryKernel{
		cost: 8,
		fwd: mapD(func(x float64) float64 {
			if x > 0 {
				return x
			}
			return alpha * math.Expm1(x)
		}),
		// PyTorch: 1 for x > 0, alpha e^x for x <= 0.
		bwd: gradD(func(x float64) float64 {
			if x > 0 {
				return 1
			}
			return alpha * expd(x)
		}),
	}, nil
}

func newSelu(n *graph.Node, _ int) (op.Kernel, error) {
	alpha := float64(n.Float("alpha", 1.67326319217681884765625))
	gamma := float64(n.Float("gamma", 1.05070102214813232421875))
	return &unaryKernel{
		cost: 8,
		fwd: mapD(func(x float64) float64 {
			if x > 0 {
				return gamma * x
			}
			return gamma * alpha * math.Expm1(x)
		}),
		bwd: gradD(func(x float64) float64 {
			if x > 0 {
				return gamma
			}
			return gamma * alpha * expd(x)
		}),
	}, nil
}

func newHardSigmoid(n *graph.Node, _ int) (op.Kernel, error) {
	alpha := n.Float("alpha", 0.2)
	beta := n.Float("beta", 0.5)
	return &unaryKernel{
		cost: 2,
		fwd: mapF(func(x float32) float32 {
			return min(max(alpha*x+beta, 0), 1)
		}),
		// PyTorch's hardsigmoid_backward: alpha strictly inside the ramp.
		bwd: gradF(func(x float32) float32 {
			if v := alpha*x + beta; v > 0 && v < 1 {
				return alpha
			}
			return 0
		}),
	}, nil
}

func newGelu(n *graph.Node, _ int) (op.Kernel, error) {
	const (
		invSqrt2   = 0.7071067811865476
		invSqrt2Pi = 0.3989422804014327
		sqrt2OverP = 0.7978845608028654 // sqrt(2/pi)
		c          = 0.044715
	)
	switch a := n.Str("approximate", "none"); a {
	case "none":
		return &unaryKernel{
			cost: 20,
			fwd:  mapD(func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x*invSqrt2)) }),
			bwd: gradD(func(x float64) float64 {
				cdf := 0.5 * (1 + math.Erf(x*invSqrt2))
				return cdf + x*invSqrt2Pi*expd(-0.5*x*x)
			}),
		}, nil
	case "tanh":
		return &unaryKernel{
			cost: 12,
			fwd:  mapD(func(x float64) float64 { return 0.5 * x * (1 + tanhd(sqrt2OverP*(x+c*x*x*x))) }),
			bwd: gradD(func(x float64) float64 {
				t := tanhd(sqrt2OverP * (x + c*x*x*x))
				return 0.5*(1+t) + 0.5*x*(1-t*t)*sqrt2OverP*(1+3*c*x*x)
			}),
		}, nil
	default:
		return nil, op.Errorf(n, "unsupported approximate %q (want \"none\" or \"tanh\")", a)
	}
}
