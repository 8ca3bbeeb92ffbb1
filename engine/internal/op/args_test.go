package op

import (
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

func TestArgs(t *testing.T) {
	x := tensor.New(2)
	i := tensor.ScalarInt(3)
	bad := &tensor.Tensor{DType: tensor.Float32, Shape: []int{3}, F: make([]float32, 1)}
	in := []*tensor.Tensor{x, nil, i, bad}
	if Arg(in, 0) != x || Arg(in, 1) != nil || Arg(in, 9) != nil {
		t.Error("Arg")
	}
	if GradAt(in, 2) != i || GradAt(in, 4) != nil {
		t.Error("GradAt")
	}
	for _, c := range []struct {
		i     int
		float bool
		err   string
	}{
		{0, true, ""},
		{2, false, ""},
		{1, false, "input 1 is missing"},
		{7, true, "input 7 is missing"},
		{2, true, "input 2 is int64, want float32"},
		{3, false, "input 3: "},
	} {
		f := AnyArg
		if c.float {
			f = FloatArg
		}
		got, err := f(in, c.i)
		switch {
		case c.err == "" && (err != nil || got != in[c.i]):
			t.Errorf("input %d: %v, %v", c.i, got, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("input %d: error %v, want %q", c.i, err, c.err)
		}
	}
	var a, b, c *tensor.Tensor
	if err := AnyArgs(in, &a, &b); err == nil || !strings.Contains(err.Error(), "input 1 is missing") || a != x {
		t.Errorf("AnyArgs: %v, %v", a, err)
	}
	if err := FloatArgs(in[:1], &c); err != nil || c != x {
		t.Errorf("FloatArgs: %v, %v", c, err)
	}
	if err := FloatArgs([]*tensor.Tensor{x, i}, &a, &b); err == nil || !strings.Contains(err.Error(), "input 1 is int64") {
		t.Errorf("FloatArgs: %v", err)
	}
	if g, err := ShapedGrad(in, 0, []int{2}); g != x || err != nil {
		t.Errorf("ShapedGrad: %v, %v", g, err)
	}
	if g, err := ShapedGrad(in, 1, []int{2}); g != nil || err != nil {
		t.Errorf("ShapedGrad of an absent gradient: %v, %v", g, err)
	}
	if _, err := ShapedGrad(in, 0, []int{3}); err == nil || err.Error() != "output gradient has shape [2], want [3]" {
		t.Errorf("ShapedGrad: %v", err)
	}
	if _, err := ShapedGrad(in, 2, []int{3}); err == nil || err.Error() != "output 2 gradient has shape [], want [3]" {
		t.Errorf("ShapedGrad: %v", err)
	}
	need := []bool{false, true}
	if Needs(need, 0) || !Needs(need, 1) || Needs(need, 2) {
		t.Error("Needs")
	}
}

func TestNormAxis(t *testing.T) {
	for _, c := range []struct {
		axis int64
		rank int
		want int
	}{{0, 3, 0}, {2, 3, 2}, {-1, 3, 2}, {-3, 3, 0}, {3, 3, -1}, {-4, 3, -1}, {0, 0, -1}} {
		got, err := NormAxis(c.axis, c.rank)
		if c.want < 0 {
			if err == nil || !strings.Contains(err.Error(), "out of range for rank") {
				t.Errorf("NormAxis(%d, %d) = %d, %v, want an error", c.axis, c.rank, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("NormAxis(%d, %d) = %d, %v, want %d", c.axis, c.rank, got, err, c.want)
		}
	}
}

func TestOutputCount(t *testing.T) {
	for _, c := range []struct {
		outs []string
		want int
	}{{nil, 0}, {[]string{"y"}, 1}, {[]string{"y", ""}, 1}, {[]string{"y", "", "z"}, 3}, {[]string{"", ""}, 0}} {
		if got := OutputCount(&graph.Node{Outputs: c.outs}); got != c.want {
			t.Errorf("OutputCount(%q) = %d, want %d", c.outs, got, c.want)
		}
	}
}
