package mathops

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func refLayerNorm(x *tensor.Tensor, axis int, eps float64, scale, bias []float32) (y, mean, rstd []float64) {
	n := tensor.Size(x.Shape[axis:])
	rows := len(x.F) / n
	y = make([]float64, len(x.F))
	for r := 0; r < rows; r++ {
		row := x.F[r*n : (r+1)*n]
		m := 0.0
		for _, v := range row {
			m += float64(v)
		}
		m /= float64(n)
		va := 0.0
		for _, v := range row {
			va += (float64(v) - m) * (float64(v) - m)
		}
		rs := 1 / math.Sqrt(va/float64(n)+eps)
		mean, rstd = append(mean, m), append(rstd, rs)
		for i, v := range row {
			h := (float64(v) - m) * rs
			if scale != nil {
				h *= float64(scale[i])
			}
			if bias != nil {
				h += float64(bias[i])
			}
			y[r*n+i] = h
		}
	}
	return y, mean, rstd
}

func TestLayerNorm(t *testing.T) {
	x := optest.Rand(1, 2, 3, 4)
	for _, c := range []struct {
		axis        int64
		attr        bool
		norm        []int
		scale, bias bool
	}{
		{-1, false, sh(4), true, true},
		{1, true, sh(3, 4), true, true},
		{-2, true, sh(3, 4), true, false},
		{2, true, sh(4), false, false},
		{0, true, sh(2, 3, 4), false, true},
	} {
		var attrs []*graph.Attr
		if c.attr {
			attrs = append(attrs, aI("axis", c.axis))
		}
		attrs = append(attrs, aF("epsilon", 1e-3))
		in := []*tensor.Tensor{x, nil, nil}
		var sv, bv []float32
		if c.scale {
			in[1] = optest.Rand(2, c.norm...)
			sv = in[1].F
		}
		if c.bias {
			in[2] = optest.Rand(3, c.norm...)
			bv = in[2].F
		}
		axis := len(x.Shape) - len(c.norm)
		want, mean, rstd := refLayerNorm(x, axis, 1e-3, sv, bv)
		k := kern(t, "LayerNormalization", 17, attrs...)
		out := fwd(t, k, in...)
		if len(out) != 1 {
			t.Fatalf("%d outputs for a one-output node", len(out))
		}
		near(t, out[0], x.Shape, want, 1e-5)
		wrt := []int{0}
		if c.scale {
			wrt = append(wrt, 1)
		}
		if c.bias {
			wrt = append(wrt, 2)
		}
		optest.GradCheck(t, k, in, wrt, optest.Options{Eps: 1e-3})
		// Three outputs: Mean and InvStdDev, with gradients through them.
		k3 := kernN(t, "LayerNormalization", 17, 3, attrs...)
		out = fwd(t, k3, in...)
		stat := append(append([]int{}, x.Shape[:axis]...), make([]int, len(c.norm))...)
		for i := axis; i < len(stat); i++ {
			stat[i] = 1
		}
		near(t, out[1], stat, mean, 1e-6)
		near(t, out[2], stat, rstd, 1e-5)
		optest.GradCheck(t, k3, in, wrt, optest.Options{Eps: 1e-3})
	}
	// Scale broadcast to the normalized shape.
	k := kern(t, "LayerNormalization", 17, aI("axis", 1))
	s := ft(sh(4), 1, 2, 3, 4)
	full := ft(sh(3, 4), 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4)
	near(t, fwd(t, k, x, s)[0], x.Shape, f64(fwd(t, k, x, full)[0].F...), 0)
	optest.GradCheck(t, k, []*tensor.Tensor{x, s}, []int{0, 1}, optest.Options{Eps: 1e-3})
	fwdErr(t, k, "does not broadcast to the normalized shape", x, ft(sh(3)))
	fwdErr(t, kern(t, "LayerNormalization", 17, aI("axis", 3)), "out of range", x)
	if _, err := registry["LayerNormalization"](mkNode("LayerNormalization", 1, aI("stash_type", 0)), 17); err == nil {
		t.Fatal("stash_type 0 accepted")
	}
}
