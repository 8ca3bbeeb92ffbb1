package nnops

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// resize is the Resize and Upsample kernel: nearest or (multi-)linear
// resampling, done one axis at a time from the last axis to the first.
type resize struct {
	linear      bool
	coord       string // coordinate_transformation_mode
	nearest     string // nearest_mode, or "simple" (Upsample, Resize-10)
	aspect      string // keep_aspect_ratio_policy
	axes        []int  // opset 18 axes attribute (nil: all axes)
	scalesAttr  []float32
	scalesInput int // index of the scales input (-1 when an attribute)
	sizesInput  int // index of the sizes input (-1 when none)
}

func newResize(n *graph.Node, opset int) (op.Kernel, error) {
	k := &resize{coord: "asymmetric", nearest: "simple", aspect: "stretch", scalesInput: 1, sizesInput: -1}
	mode := n.Str("mode", "nearest")
	switch mode {
	case "nearest":
	case "linear":
		k.linear = true
	case "cubic":
		return nil, op.Errorf(n, "mode cubic is not supported")
	default:
		return nil, op.Errorf(n, "unsupported mode %q", mode)
	}
	if opset >= 11 {
		k.scalesInput, k.sizesInput = 2, 3
		k.coord = n.Str("coordinate_transformation_mode", "half_pixel")
		switch k.coord {
		case "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn":
		default:
			return nil, op.Errorf(n, "unsupported coordinate_transformation_mode %q", k.coord)
		}
		k.nearest = n.Str("nearest_mode", "round_prefer_floor")
		switch k.nearest {
		case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil":
		default:
			return nil, op.Errorf(n, "unsupported nearest_mode %q", k.nearest)
		}
	}
	if n.Int("antialias", 0) != 0 {
		return nil, op.Errorf(n, "antialias is not supported")
	}
	k.aspect = n.Str("keep_aspect_ratio_policy", "stretch")
	switch k.aspect {
	case "stretch", "not_larger", "not_smaller":
	default:
		return nil, op.Errorf(n, "unsupported keep_aspect_ratio_policy %q", k.aspect)
	}
	if n.Has("axes") {
		k.axes = toInts(n.Ints("axes", nil))
	}
	return k, nil
}

func newUpsample(n *graph.Node, opset int) (op.Kernel, error) {
	k := &resize{coord: "asymmetric", nearest: "simple", aspect: "stretch", scalesInput: 1, sizesInput: -1}
	switch mode := n.Str("mode", "nearest"); mode {
	case "nearest":
	case "linear", "bilinear":
		k.linear = true
	default:
		return nil, op.Errorf(n, "unsupported mode %q", mode)
	}
	if opset < 9 {
		k.scalesAttr = n.Floats("scales", nil)
		if k.scalesAttr == nil {
			return nil, op.Errorf(n, "scales attribute is required before opset 9")
		}
		k.scalesInput = -1
	}
	return k, nil
}

// sample1D is the 1-D resampling of one axis: output o reads input i0[o]
// with weight w0[o] and, for linear, i1[o] with weight w1[o].
type sample1D struct {
	axis, in, out int
	i0, i1        []int
	w0, w1        []float32
}

// plan returns the output shape and the 1-D passes, last axis first.
func (k *resize) plan(in []*tensor.Tensor) ([]int, []sample1D, error) {
	x := op.Arg(in, 0)
	if x == nil {
		return nil, nil, fmt.Errorf("input 0 is missing")
	}
	if err := x.Check(); err != nil {
		return nil, nil, fmt.Errorf("input 0: %v", err)
	}
	r := x.Rank()
	axes := make([]int, 0, r)
	if k.axes != nil {
		for _, a := range k.axes {
			if a < 0 {
				a += r
			}
			if a < 0 || a >= r {
				return nil, nil, fmt.Errorf("axes %v out of range for input 0 of shape %v", k.axes, x.Shape)
			}
			axes = append(axes, a)
		}
	} else {
		for a := 0; a < r; a++ {
			axes = append(axes, a)
		}
	}
	scale := make([]float32, r)
	out := append([]int(nil), x.Shape...)
	for a := range scale {
		scale[a] = 1
	}
	var sizes *tensor.Tensor
	if k.sizesInput >= 0 {
		if s := op.Arg(in, k.sizesInput); s != nil && s.Len() > 0 {
			sizes = s
		}
	}
	var scales []float32
	if k.scalesInput < 0 {
		scales = k.scalesAttr
	} else if s := op.Arg(in, k.scalesInput); s != nil && s.Len() > 0 {
		if s.DType != tensor.Float32 || s.Check() != nil {
			return nil, nil, fmt.Errorf("input %d (scales) is %s%v, want float32", k.scalesInput, s.DType, s.Shape)
		}
		scales = s.F
	}
	switch {
	case sizes != nil:
		if sizes.DType != tensor.Int64 || sizes.Check() != nil || sizes.Len() != len(axes) {
			return nil, nil, fmt.Errorf("input %d (sizes) is %s%v, want int64 [%d] for input 0 of shape %v", k.sizesInput, sizes.DType, sizes.Shape, len(axes), x.Shape)
		}
		for i, a := range axes {
			if sizes.I[i] < 0 {
				return nil, nil, fmt.Errorf("input %d (sizes) holds negative size %d", k.sizesInput, sizes.I[i])
			}
			out[a] = int(sizes.I[i])
			if x.Shape[a] > 0 {
				scale[a] = float32(out[a]) / float32(x.Shape[a])
			}
		}
		if k.aspect != "stretch" && len(axes) > 0 {
			s := scale[axes[0]]
			for _, a := range axes[1:] {
				if k.aspect == "not_larger" {
					s = min(s, scale[a])
				} else {
					s = max(s, scale[a])
				}
			}
			for _, a := range axes {
				scale[a] = s
				out[a] = int(math.Round(float64(s) * float64(x.Shape[a])))
			}
		}
	case scales != nil:
		if len(scales) != len(axes) {
			return nil, nil, fmt.Errorf("scales %v have %d values, want %d for input 0 of shape %v", scales, len(scales), len(axes), x.Shape)
		}
		for i, a := range axes {
			if !(scales[i] > 0) {
				return nil, nil, fmt.Errorf("scales %v must be positive", scales)
			}
			scale[a] = scales[i]
			out[a] = int(scales[i] * float32(x.Shape[a]))
		}
	default:
		return nil, nil, fmt.Errorf("neither scales nor sizes is given")
	}
	var passes []sample1D
	for a := r - 1; a >= 0; a-- {
		if out[a] == x.Shape[a] && scale[a] == 1 {
			continue
		}
		if x.Shape[a] == 0 && out[a] > 0 {
			return nil, nil, fmt.Errorf("cannot resize the empty axis %d of input 0 (shape %v) to %d", a, x.Shape, out[a])
		}
		passes = append(passes, k.sampler(a, x.Shape[a], out[a], scale[a]))
	}
	return out, passes, nil
}

// sampler builds the 1-D resampling of one axis from n to m elements.
func (k *resize) sampler(axis, n, m int, scale float32) sample1D {
	s := sample1D{axis: axis, in: n, out: m, i0: make([]int, m)}
	if k.linear {
		s.i1, s.w0, s.w1 = make([]int, m), make([]float32, m), make([]float32, m)
	}
	for o := 0; o < m; o++ {
		fo := float32(o)
		var x float32
		switch k.coord {
		case "half_pixel":
			x = (fo+0.5)/scale - 0.5
		case "pytorch_half_pixel":
			if m > 1 {
				x = (fo+0.5)/scale - 0.5
			}
		case "align_corners":
			if m > 1 {
				x = fo * float32(n-1) / float32(m-1)
			}
		case "tf_half_pixel_for_nn":
			x = (fo + 0.5) / scale
		default: // asymmetric
			x = fo / scale
		}
		if k.linear {
			x = min(max(x, 0), float32(n-1))
			i := int(x)
			s.i0[o] = i
			s.i1[o] = min(i+1, n-1)
			s.w1[o] = x - float32(i)
			s.w0[o] = 1 - s.w1[o]
			continue
		}
		var i int
		xf := float32(math.Floor(float64(x)))
		switch k.nearest {
		case "round_prefer_floor":
			if x == xf+0.5 {
				i = int(xf)
			} else {
				i = int(math.Round(float64(x)))
			}
		case "round_prefer_ceil":
			if x == xf+0.5 {
				i = int(xf) + 1
			} else {
				i = int(math.Round(float64(x)))
			}
		case "floor":
			i = int(xf)
		case "ceil":
			i = int(math.Ceil(float64(x)))
		default: // simple
			if scale < 1 {
				i = int(math.Ceil(float64(x)))
			} else {
				i = int(x)
			}
		}
		s.i0[o] = min(max(i, 0), n-1)
	}
	return s
}

// apply runs the pass on src of shape shape (shape[s.axis] == s.in) and
// returns the result, whose axis has s.out elements.
func (s *sample1D) apply(src []float32, shape []int) []float32 {
	outer, inner := tensor.Size(shape[:s.axis]), tensor.Size(shape[s.axis+1:])
	dst := make([]float32, outer*s.out*inner)
	par.Chunks(outer, par.ChunkCount(outer, 2*s.out*inner), func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			sb := src[b*s.in*inner : (b+1)*s.in*inner]
			db := dst[b*s.out*inner : (b+1)*s.out*inner]
			if inner == 1 {
				if s.w0 == nil {
					for o, i := range s.i0 {
						db[o] = sb[i]
					}
				} else {
					for o := range db {
						db[o] = s.w0[o]*sb[s.i0[o]] + s.w1[o]*sb[s.i1[o]]
					}
				}
				continue
			}
			for o := 0; o < s.out; o++ {
				d := db[o*inner : (o+1)*inner]
				a := sb[s.i0[o]*inner : (s.i0[o]+1)*inner]
				if s.w0 == nil {
					copy(d, a)
					continue
				}
				c := sb[s.i1[o]*inner : (s.i1[o]+1)*inner]
				w0, w1 := s.w0[o], s.w1[o]
				for j := range d {
					d[j] = w0*a[j] + w1*c[j]
				}
			}
		}
	})
	return dst
}

// transpose runs the adjoint of the pass: gdst (axis s.out) to the gradient
// of its source (axis s.in); shape is the source's shape.
func (s *sample1D) transpose(gdst []float32, shape []int) []float32 {
	outer, inner := tensor.Size(shape[:s.axis]), tensor.Size(shape[s.axis+1:])
	gsrc := make([]float32, outer*s.in*inner)
	par.Chunks(outer, par.ChunkCount(outer, 2*s.out*inner), func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			sb := gsrc[b*s.in*inner : (b+1)*s.in*inner]
			db := gdst[b*s.out*inner : (b+1)*s.out*inner]
			for o := 0; o < s.out; o++ {
				d := db[o*inner : (o+1)*inner]
				a := sb[s.i0[o]*inner : (s.i0[o]+1)*inner]
				if s.w0 == nil {
					for j, v := range d {
						a[j] += v
					}
					continue
				}
				c := sb[s.i1[o]*inner : (s.i1[o]+1)*inner]
				w0, w1 := s.w0[o], s.w1[o]
				for j, v := range d {
					a[j] += w0 * v
					c[j] += w1 * v
				}
			}
		}
	})
	return gsrc
}

func (k *resize) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if _, err := op.FloatArg(in, 0); err != nil {
		return nil, err
	}
	out, passes, err := k.plan(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	if len(passes) == 0 {
		return []*tensor.Tensor{x.Clone()}, nil
	}
	shape := append([]int(nil), x.Shape...)
	data := x.F
	for i := range passes {
		data = passes[i].apply(data, shape)
		shape[passes[i].axis] = passes[i].out
	}
	return []*tensor.Tensor{{DType: tensor.Float32, Shape: out, F: data}}, nil
}

func (k *resize) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if !op.Needs(need, 0) {
		return grads, nil
	}
	if _, err := op.FloatArg(in, 0); err != nil {
		return nil, err
	}
	os, passes, err := k.plan(in)
	if err != nil {
		return nil, err
	}
	x := in[0]
	gy, err := op.ShapedGrad(gout, 0, os)
	if err != nil {
		return nil, err
	}
	if gy == nil {
		grads[0] = tensor.New(x.Shape...)
		return grads, nil
	}
	shape := append([]int(nil), os...)
	data := gy.F
	if len(passes) == 0 {
		data = append([]float32(nil), data...)
	}
	for i := len(passes) - 1; i >= 0; i-- {
		shape[passes[i].axis] = passes[i].in
		data = passes[i].transpose(data, shape)
	}
	grads[0] = &tensor.Tensor{DType: tensor.Float32, Shape: append([]int(nil), x.Shape...), F: data}
	return grads, nil
}
