package core

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func f64(f func(float64) float64) func(float32) float32 {
	return func(x float32) float32 { return float32(f(float64(x))) }
}

// unaries returns the elementwise ops defined by a function and its
// derivative (given x and y = f(x)).
func unaries() map[string]op.Factory {
	zero := func(_, _ float32) float32 { return 0 }
	simple := func(f func(float32) float32, df func(x, y float32) float32) op.Factory {
		return func(n *graph.Node, opset int) (op.Kernel, error) { return unary{f: f, df: df}, nil }
	}
	return map[string]op.Factory{
		"Exp":        simple(f64(math.Exp), func(_, y float32) float32 { return y }),
		"Log":        simple(f64(math.Log), func(x, _ float32) float32 { return 1 / x }),
		"Neg":        simple(func(x float32) float32 { return -x }, func(_, _ float32) float32 { return -1 }),
		"Abs":        simple(func(x float32) float32 { return float32(math.Abs(float64(x))) }, func(x, _ float32) float32 { return sign(x) }),
		"Sqrt":       simple(f64(math.Sqrt), func(_, y float32) float32 { return 0.5 / y }),
		"Reciprocal": simple(func(x float32) float32 { return 1 / x }, func(_, y float32) float32 { return -y * y }),
		"Sin":        simple(f64(math.Sin), func(x, _ float32) float32 { return float32(math.Cos(float64(x))) }),
		"Cos":        simple(f64(math.Cos), func(x, _ float32) float32 { return -float32(math.Sin(float64(x))) }),
		"Erf":        simple(f64(math.Erf), func(x, _ float32) float32 { return float32(2 / math.SqrtPi * math.Exp(-float64(x)*float64(x))) }),
		"Softplus": simple(f64(func(x float64) float64 {
			if x > 20 {
				return x
			}
			return math.Log1p(math.Exp(x))
		}), func(x, _ float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }),
		"Sign":  simple(sign, zero),
		"Floor": simple(f64(math.Floor), zero),
		"Ceil":  simple(f64(math.Ceil), zero),
		"Round": simple(f64(math.RoundToEven), zero),
		"LeakyRelu": func(n *graph.Node, opset int) (op.Kernel, error) {
			a := n.Float("alpha", 0.01)
			return unary{
				f: func(x float32) float32 {
					if x >= 0 {
						return x
					}
					return a * x
				},
				df: func(x, _ float32) float32 {
					if x > 0 {
						return 1
					}
					return a
				},
			}, nil
		},
		"Elu": func(n *graph.Node, opset int) (op.Kernel, error) {
			a := n.Float("alpha", 1)
			return unary{
				f: func(x float32) float32 {
					if x > 0 {
						return x
					}
					return a * float32(math.Expm1(float64(x)))
				},
				df: func(x, y float32) float32 {
					if x > 0 {
						return 1
					}
					return y + a
				},
			}, nil
		},
		"Selu": func(n *graph.Node, opset int) (op.Kernel, error) {
			a := n.Float("alpha", 1.67326319217681884765625)
			g := n.Float("gamma", 1.05070102214813232421875)
			return unary{
				f: func(x float32) float32 {
					if x > 0 {
						return g * x
					}
					return g * a * float32(math.Expm1(float64(x)))
				},
				df: func(x, y float32) float32 {
					if x > 0 {
						return g
					}
					return y + g*a
				},
			}, nil
		},
		"HardSigmoid": func(n *graph.Node, opset int) (op.Kernel, error) {
			a, b := n.Float("alpha", 0.2), n.Float("beta", 0.5)
			return unary{
				f: func(x float32) float32 { return min(max(a*x+b, 0), 1) },
				df: func(x, _ float32) float32 {
					if v := a*x + b; v > 0 && v < 1 {
						return a
					}
					return 0
				},
			}, nil
		},
		"Gelu": func(n *graph.Node, opset int) (op.Kernel, error) {
			switch n.Str("approximate", "none") {
			case "none":
				return unary{
					f: f64(func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }),
					df: func(x, _ float32) float32 {
						v := float64(x)
						return float32(0.5*(1+math.Erf(v/math.Sqrt2)) + v*math.Exp(-v*v/2)/math.Sqrt(2*math.Pi))
					},
				}, nil
			case "tanh":
				const c = 0.7978845608028654 // sqrt(2/pi)
				return unary{
					f: f64(func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(c*(x+0.044715*x*x*x))) }),
					df: func(x, _ float32) float32 {
						v := float64(x)
						t := math.Tanh(c * (v + 0.044715*v*v*v))
						return float32(0.5*(1+t) + 0.5*v*(1-t*t)*c*(1+3*0.044715*v*v))
					},
				}, nil
			}
			return nil, op.Errorf(n, "Gelu approximate %q is not supported", n.Str("approximate", ""))
		},
	}
}

func sign(x float32) float32 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// clip is Clip: min and max from inputs 1 and 2 (opset 11+) or attributes.
type clip struct{ lo, hi float32 }

func newClip(n *graph.Node, opset int) (op.Kernel, error) {
	return clip{n.Float("min", float32(math.Inf(-1))), n.Float("max", float32(math.Inf(1)))}, nil
}

func (c clip) bounds(in []*tensor.Tensor) (float32, float32, error) {
	lo, hi := c.lo, c.hi
	for i, p := range []*float32{&lo, &hi} {
		if len(in) > i+1 && in[i+1] != nil {
			if in[i+1].Len() != 1 {
				return 0, 0, fmt.Errorf("input %d of Clip must be a scalar, got shape %v", i+1, in[i+1].Shape)
			}
			*p = float32(in[i+1].Float64At(0))
		}
	}
	return lo, hi, nil
}

func (c clip) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := wantFloat(in, 0); err != nil {
		return nil, err
	}
	lo, hi, err := c.bounds(in)
	if err != nil {
		return nil, err
	}
	y := tensor.New(in[0].Shape...)
	for i, v := range in[0].F {
		y.F[i] = min(max(v, lo), hi)
	}
	return []*tensor.Tensor{y}, nil
}

func (c clip) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	g := make([]*tensor.Tensor, len(in))
	if !need[0] || gout[0] == nil {
		return g, nil
	}
	lo, hi, err := c.bounds(in)
	if err != nil {
		return nil, err
	}
	gx := tensor.New(in[0].Shape...)
	for i, v := range in[0].F {
		if v >= lo && v <= hi {
			gx.F[i] = gout[0].F[i]
		}
	}
	g[0] = gx
	return g, nil
}
