package mathops

import (
	"testing"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/engine/internal/op/optest"
	"github.com/loupe-ml/loupe/tensor"
)

func TestCompare(t *testing.T) {
	a := ft(sh(2, 3), 1, 2, 3, 4, 5, 6)
	b := ft(sh(3), 2, 2, 7)
	cases := []struct {
		op   string
		want []bool
	}{
		{"Equal", []bool{false, true, false, false, false, false}},
		{"Less", []bool{true, false, true, false, false, true}},
		{"LessOrEqual", []bool{true, true, true, false, false, true}},
		{"Greater", []bool{false, false, false, true, true, false}},
		{"GreaterOrEqual", []bool{false, true, false, true, true, false}},
	}
	ai := it(sh(2, 3), 1, 2, 3, 4, 5, 6)
	bi := it(sh(3), 2, 2, 7)
	for _, c := range cases {
		k := kern(t, c.op, 13)
		bools(t, fwd(t, k, a, b)[0], sh(2, 3), c.want...)
		bools(t, fwd(t, k, ai, bi)[0], sh(2, 3), c.want...)
		if _, ok := k.(op.Differentiable); ok {
			t.Errorf("%s should not be differentiable", c.op)
		}
		fwdErr(t, k, "want the same type", a, bi)
		fwdErr(t, k, "do not broadcast", a, ft(sh(2)))
	}
	// Large int64 values compare exactly.
	bools(t, fwd(t, kern(t, "Equal", 13), it(sh(1), 1<<60+1), it(sh(1), 1<<60))[0], sh(1), false)
	// Scalar broadcast.
	bools(t, fwd(t, kern(t, "Equal", 13), ai, tensor.ScalarInt(4))[0], sh(2, 3), false, false, false, true, false, false)
	fwdErr(t, kern(t, "Less", 13), "want float32 or int64", bt(sh(1), true), bt(sh(1), true))
}

func TestLogic(t *testing.T) {
	a := bt(sh(2, 2), true, true, false, false)
	b := bt(sh(2), true, false)
	bools(t, fwd(t, kern(t, "And", 13), a, b)[0], sh(2, 2), true, false, false, false)
	bools(t, fwd(t, kern(t, "Or", 13), a, b)[0], sh(2, 2), true, true, true, false)
	bools(t, fwd(t, kern(t, "Xor", 13), a, b)[0], sh(2, 2), false, true, true, false)
	bools(t, fwd(t, kern(t, "Equal", 13), a, b)[0], sh(2, 2), true, false, false, true)
	bools(t, fwd(t, kern(t, "Not", 13), a)[0], sh(2, 2), false, false, true, true)
	fwdErr(t, kern(t, "And", 13), "want bool", ft(sh(1)), ft(sh(1)))
	fwdErr(t, kern(t, "Not", 13), "want bool", ft(sh(1)))
}

func TestWhere(t *testing.T) {
	k := kern(t, "Where", 16)
	c := bt(sh(2, 1), true, false)
	x := ft(sh(3), 1, 2, 3)
	y := ft(sh(2, 3), 10, 20, 30, 40, 50, 60)
	near(t, fwd(t, k, c, x, y)[0], sh(2, 3), []float64{1, 2, 3, 40, 50, 60}, 0)
	ints(t, fwd(t, k, c, it(sh(1), 7), it(sh(1), 9))[0], sh(2, 1), 7, 9)
	bools(t, fwd(t, k, c, bt(sh(), false), bt(sh(), true))[0], sh(2, 1), false, true)
	fwdErr(t, k, "want bool", x, x, x)
	fwdErr(t, k, "want the same type", c, x, it(sh(1), 1))
	fwdErr(t, k, "do not broadcast", c, ft(sh(4)), y)
	g := backward(t, k, []*tensor.Tensor{c, x, y}, []*tensor.Tensor{ft(sh(2, 3), 1, 1, 1, 1, 1, 1)}, false, true, true)
	near(t, g[1], sh(3), []float64{1, 1, 1}, 0)
	near(t, g[2], sh(2, 3), []float64{0, 0, 0, 1, 1, 1}, 0)
	cond := bt(sh(2, 3), true, false, false, true, true, false)
	optest.GradCheck(t, k, []*tensor.Tensor{cond, optest.Rand(1, 3), optest.Rand(2, 2, 1)}, []int{1, 2}, optest.Options{})
}
