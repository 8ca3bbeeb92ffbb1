package mathops

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// arith names a binary arithmetic operation.
type arith uint8

const (
	opAdd arith = iota
	opSub
	opMul
	opDiv
	opPow
	opMax
	opMin
)

var arithByName = map[string]arith{
	"Add": opAdd, "Sub": opSub, "Mul": opMul, "Div": opDiv, "Pow": opPow,
	"Sum": opAdd, "Mean": opAdd, "Max": opMax, "Min": opMin,
}

// maxf is max propagating NaN (torch.maximum): a when a > b or a is NaN,
// else b.
func maxf[T float32 | float64](a, b T) T {
	if a > b || a != a {
		return a
	}
	return b
}

// minf is min propagating NaN (torch.minimum): a when a < b or a is NaN,
// else b.
func minf[T float32 | float64](a, b T) T {
	if a < b || a != a {
		return a
	}
	return b
}

// powf is a^b in float32, with the exact shortcuts PyTorch takes for common
// scalar exponents.
func powf(a, b float32) float32 {
	switch b {
	case 2:
		return a * a
	case 1:
		return a
	case 3:
		return a * a * a
	case 0.5:
		return float32(math.Sqrt(float64(a)))
	case -1:
		return 1 / a
	}
	return float32(math.Pow(float64(a), float64(b)))
}

// floatLoop computes dst = a op b elementwise. An operand whose flag (ua,
// ub) is false is a single value used for every element.
func floatLoop(op arith, dst, a, b []float32, ua, ub bool) {
	n := len(dst)
	switch {
	case ua && ub:
		a, b = a[:n], b[:n]
		switch op {
		case opAdd:
			vAdd(dst, a, b)
		case opSub:
			vSub(dst, a, b)
		case opMul:
			vMul(dst, a, b)
		case opDiv:
			for i := range dst {
				dst[i] = a[i] / b[i]
			}
		case opPow:
			for i := range dst {
				dst[i] = powf(a[i], b[i])
			}
		case opMax:
			for i := range dst {
				dst[i] = maxf(a[i], b[i])
			}
		case opMin:
			for i := range dst {
				dst[i] = minf(a[i], b[i])
			}
		}
	case ua:
		a = a[:n]
		s := b[0]
		switch op {
		case opAdd:
			vAddS(dst, a, s)
		case opSub:
			vAddS(dst, a, -s) // a - s and a + (-s) round alike
		case opMul:
			vMulS(dst, a, s)
		case opDiv:
			for i, v := range a {
				dst[i] = v / s
			}
		case opPow:
			if s == 2 {
				for i, v := range a {
					dst[i] = v * v
				}
				break
			}
			for i, v := range a {
				dst[i] = powf(v, s)
			}
		case opMax:
			for i, v := range a {
				dst[i] = maxf(v, s)
			}
		case opMin:
			for i, v := range a {
				dst[i] = minf(v, s)
			}
		}
	case ub:
		b = b[:n]
		s := a[0]
		switch op {
		case opAdd:
			vAddS(dst, b, s)
		case opSub:
			vRSubS(dst, b, s)
		case opMul:
			vMulS(dst, b, s)
		case opDiv:
			for i, v := range b {
				dst[i] = s / v
			}
		case opPow:
			for i, v := range b {
				dst[i] = powf(s, v)
			}
		case opMax:
			for i, v := range b {
				dst[i] = maxf(s, v)
			}
		case opMin:
			for i, v := range b {
				dst[i] = minf(s, v)
			}
		}
	default:
		var v float32
		floatLoop(op, dst[:min(n, 1)], a, b, true, true)
		if n > 0 {
			v = dst[0]
		}
		for i := range dst {
			dst[i] = v
		}
	}
}

// ipow is a^b for integers; negative exponents give the truncated real
// result.
func ipow(a, b int64) int64 {
	if b < 0 {
		switch a {
		case 1:
			return 1
		case -1:
			if b%2 == 0 {
				return 1
			}
			return -1
		}
		return 0
	}
	r := int64(1)
	for b > 0 {
		if b&1 == 1 {
			r *= a
		}
		a *= a
		b >>= 1
	}
	return r
}

// intOp applies op to two int64 values (division truncates toward zero; the
// caller rules out division by zero).
func intOp(op arith, a, b int64) int64 {
	switch op {
	case opAdd:
		return a + b
	case opSub:
		return a - b
	case opMul:
		return a * b
	case opDiv:
		return a / b
	case opPow:
		return ipow(a, b)
	case opMax:
		return max(a, b)
	default:
		return min(a, b)
	}
}

// broadcastErr describes two inputs whose shapes do not broadcast.
func broadcastErr(i, j int, a, b *tensor.Tensor) error {
	return fmt.Errorf("input %d has shape %v and input %d has shape %v, which do not broadcast", i, a.Shape, j, b.Shape)
}

// binaryApply computes a op b with broadcasting, for float32 or int64
// operands of the same type. ia and ib are the input numbers for messages.
func binaryApply(op arith, a, b *tensor.Tensor, ia, ib int) (*tensor.Tensor, error) {
	return binaryApplyAlloc(op, a, b, ia, ib, nil)
}

// binaryApplyAlloc is binaryApply with a float output from alloc (nil:
// tensor.New); every element of it is written.
func binaryApplyAlloc(art arith, a, b *tensor.Tensor, ia, ib int, alloc op.Alloc) (*tensor.Tensor, error) {
	if a.DType != b.DType {
		return nil, fmt.Errorf("input %d is %s and input %d is %s, want the same type", ia, a.DType, ib, b.DType)
	}
	out, err := tensor.BroadcastShape(a.Shape, b.Shape)
	if err != nil {
		return nil, broadcastErr(ia, ib, a, b)
	}
	out = shapeOf(out)
	switch a.DType {
	case tensor.Float32:
		y := op.NewOr(alloc, out...)
		if y.Len() == 0 {
			return y, nil
		}
		if tensor.SameShape(a.Shape, b.Shape) {
			par.For(y.Len(), par.MinWork, func(lo, hi int) { floatLoop(art, y.F[lo:hi], a.F[lo:hi], b.F[lo:hi], true, true) })
			return y, nil
		}
		if len(b.F) == 1 && len(a.F) == len(y.F) {
			par.For(y.Len(), par.MinWork, func(lo, hi int) { floatLoop(art, y.F[lo:hi], a.F[lo:hi], b.F, true, false) })
			return y, nil
		}
		p := planBcast(out, a.Shape, b.Shape)
		ua, ub := p.unit(0), p.unit(1)
		p.run(1, func(o int, offs []int, run int) {
			floatLoop(art, y.F[o:o+run], a.F[offs[0]:], b.F[offs[1]:], ua, ub)
		})
		return y, nil
	case tensor.Int64:
		if art == opDiv {
			for _, v := range b.I {
				if v == 0 {
					return nil, fmt.Errorf("input %d: integer division by zero", ib)
				}
			}
		}
		y := tensor.NewInt(out...)
		if y.Len() == 0 {
			return y, nil
		}
		p := planBcast(out, a.Shape, b.Shape)
		sa, sb := p.st[0][len(p.dims)-1], p.st[1][len(p.dims)-1]
		p.walk(0, p.n, func(o int, offs []int, run int) {
			i, j := offs[0], offs[1]
			for k := range y.I[o : o+run] {
				y.I[o+k] = intOp(art, a.I[i], b.I[j])
				i += sa
				j += sb
			}
		})
		return y, nil
	}
	return nil, fmt.Errorf("input %d is %s, want float32 or int64", ia, a.DType)
}

// binaryKernel is Add, Sub, Mul, Div or Pow with numpy broadcasting.
type binaryKernel struct{ op arith }

func newBinary(name string) op.Factory {
	o := arithByName[name]
	return func(*graph.Node, int) (op.Kernel, error) { return binaryKernel{op: o}, nil }
}

func (k binaryKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return k.ForwardAlloc(in, nil)
}

// ForwardAlloc is Forward with a float output from alloc (nil: tensor.New;
// Pow allocates its own).
func (k binaryKernel) ForwardAlloc(in []*tensor.Tensor, alloc op.Alloc) ([]*tensor.Tensor, error) {
	var a, b *tensor.Tensor
	if err := op.AnyArgs(in, &a, &b); err != nil {
		return nil, err
	}
	var y *tensor.Tensor
	var err error
	if k.op == opPow {
		y, err = powForward(a, b)
	} else {
		y, err = binaryApplyAlloc(k.op, a, b, 0, 1, alloc)
	}
	if err != nil {
		return nil, err
	}
	return []*tensor.Tensor{y}, nil
}

// powForward is ONNX Pow: the exponent may have another numeric type than
// the base; the result has the base's type.
func powForward(a, b *tensor.Tensor) (*tensor.Tensor, error) {
	if b.DType == tensor.Bool {
		return nil, fmt.Errorf("input 1 is bool, want float32 or int64")
	}
	switch a.DType {
	case tensor.Float32:
		return binaryApply(opPow, a, b.AsFloat32(), 0, 1)
	case tensor.Int64:
		if b.DType == tensor.Int64 {
			return binaryApply(opPow, a, b, 0, 1)
		}
		y, err := binaryApply(opPow, a.AsFloat32(), b, 0, 1)
		if err != nil {
			return nil, err
		}
		return y.AsInt64(), nil
	}
	return nil, fmt.Errorf("input 0 is %s, want float32 or int64", a.DType)
}

func (k binaryKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res := make([]*tensor.Tensor, len(in))
	a, b := op.Arg(in, 0), op.Arg(in, 1)
	if a == nil || b == nil {
		return nil, fmt.Errorf("backward needs both inputs")
	}
	needA := op.Needs(need, 0) && a.DType == tensor.Float32
	needB := op.Needs(need, 1) && b.DType == tensor.Float32
	if !needA && !needB {
		return res, nil
	}
	if a.DType != tensor.Float32 || b.DType != tensor.Float32 {
		// Pow with an integer exponent: only the base is differentiable.
		b = b.AsFloat32()
		needB = false
	}
	outShape, err := tensor.BroadcastShape(a.Shape, b.Shape)
	if err != nil {
		return nil, broadcastErr(0, 1, a, b)
	}
	g, err := gradOrZeros(gout, outShape)
	if err != nil {
		return nil, err
	}
	switch k.op {
	case opAdd:
		if needA {
			res[0] = sumTo(g, a.Shape)
		}
		if needB {
			res[1] = sumTo(g, b.Shape)
		}
		return res, nil
	case opSub:
		if needA {
			res[0] = sumTo(g, a.Shape)
		}
		if needB {
			gb := sumTo(g, b.Shape)
			neg := tensor.New(gb.Shape...)
			for i, v := range gb.F {
				neg.F[i] = -v
			}
			res[1] = neg
		}
		return res, nil
	}
	var y *tensor.Tensor
	if k.op == opPow && needB {
		y = op.Arg(out, 0)
		if y == nil || !tensor.SameShape(y.Shape, outShape) || y.DType != tensor.Float32 {
			if y, err = binaryApply(opPow, a, b, 0, 1); err != nil {
				return nil, err
			}
		}
	}
	ga, gb := binaryGrads(k.op, g, a, b, y, needA, needB)
	if needA {
		res[0] = sumTo(ga, a.Shape)
	}
	if needB {
		res[1] = sumTo(gb, b.Shape)
	}
	return res, nil
}

// binaryGrads returns the output-shaped gradients of Mul, Div and Pow with
// respect to a and b (before summing over broadcast dimensions). y is the
// forward output, needed by Pow's exponent gradient.
func binaryGrads(op arith, g, a, b, y *tensor.Tensor, needA, needB bool) (ga, gb *tensor.Tensor) {
	var err error
	switch op {
	case opMul:
		if needA {
			ga, err = binaryApply(opMul, g, b, 0, 1)
		}
		if needB && err == nil {
			gb, err = binaryApply(opMul, g, a, 0, 1)
		}
		if err != nil {
			panic(err) // shapes were checked by the caller
		}
		return ga, gb
	case opDiv:
		if needA {
			// PyTorch: g / b.
			if ga, err = binaryApply(opDiv, g, b, 0, 1); err != nil {
				panic(err)
			}
		}
		if !needB {
			return ga, nil
		}
	}
	if needA && ga == nil {
		ga = tensor.New(g.Shape...)
	}
	if needB {
		gb = tensor.New(g.Shape...)
	}
	if len(g.F) == 0 {
		return ga, gb
	}
	p := planBcast(g.Shape, a.Shape, b.Shape)
	sa, sb := p.st[0][len(p.dims)-1], p.st[1][len(p.dims)-1]
	p.run(4, func(o int, offs []int, run int) {
		gs := g.F[o : o+run]
		ia, ib := offs[0], offs[1]
		if op == opDiv {
			// PyTorch: gb = -g * a / (b * b).
			for i, gv := range gs {
				bv := b.F[ib]
				gb.F[o+i] = -gv * a.F[ia] / (bv * bv)
				ia += sa
				ib += sb
			}
			return
		}
		// Pow. PyTorch: ga = g * b * a^(b-1) (0 where b == 0);
		// gb = g * y * log(a) (0 where a == 0 and b >= 0).
		for i, gv := range gs {
			av, bv := a.F[ia], b.F[ib]
			if needA && bv != 0 {
				ga.F[o+i] = gv * (bv * powf(av, bv-1))
			}
			if needB && !(av == 0 && bv >= 0) {
				gb.F[o+i] = gv * (y.F[o+i] * float32(math.Log(float64(av))))
			}
			ia += sa
			ib += sb
		}
	})
	return ga, gb
}

// variadicKernel is Sum, Mean, Max or Min over one or more inputs with
// broadcasting.
type variadicKernel struct {
	op   arith
	mean bool
}

func newVariadic(name string) op.Factory {
	k := variadicKernel{op: arithByName[name], mean: name == "Mean"}
	return func(*graph.Node, int) (op.Kernel, error) { return k, nil }
}

func (k variadicKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	y, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	if y.DType == tensor.Bool || (k.mean && y.DType != tensor.Float32) {
		return nil, fmt.Errorf("input 0 is %s, want float32", y.DType)
	}
	for i := 1; i < len(in); i++ {
		x, err := op.AnyArg(in, i)
		if err != nil {
			return nil, err
		}
		if y, err = binaryApply(k.op, y, x, 0, i); err != nil {
			return nil, err
		}
	}
	if k.mean && len(in) > 1 {
		n := float32(len(in))
		for i := range y.F {
			y.F[i] /= n
		}
	}
	return []*tensor.Tensor{y}, nil
}

func (k variadicKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res := make([]*tensor.Tensor, len(in))
	if !op.NeedAny(need) {
		return res, nil
	}
	shapes := make([][]int, len(in))
	for i, x := range in {
		if x == nil {
			return nil, fmt.Errorf("input %d is missing", i)
		}
		shapes[i] = x.Shape
	}
	outShape, err := broadcastShapes(shapes...)
	if err != nil {
		return nil, err
	}
	g, err := gradOrZeros(gout, outShape)
	if err != nil {
		return nil, err
	}
	if k.op == opAdd {
		scale := float32(1)
		if k.mean {
			scale = 1 / float32(len(in))
		}
		for i, x := range in {
			if !op.Needs(need, i) || x.DType != tensor.Float32 {
				continue
			}
			gi := sumTo(g, x.Shape)
			if scale != 1 {
				s := tensor.New(gi.Shape...)
				for j, v := range gi.F {
					s.F[j] = v * scale
				}
				gi = s
			}
			res[i] = gi
		}
		return res, nil
	}
	// Max, Min: the gradient goes to the inputs equal to the result, split
	// evenly between ties (as torch.maximum does for two inputs).
	y := op.Arg(out, 0)
	if y == nil || !tensor.SameShape(y.Shape, outShape) || y.DType != tensor.Float32 {
		o, err := k.Forward(in)
		if err != nil {
			return nil, err
		}
		y = o[0]
	}
	if y.DType != tensor.Float32 {
		return res, nil
	}
	cnt := make([]float32, len(y.F))
	plans := make([]*bcast, len(in))
	for i, x := range in {
		p := planBcast(outShape, x.Shape)
		plans[i] = p
		s := p.st[0][len(p.dims)-1]
		p.walk(0, p.n, func(o int, offs []int, run int) {
			j := offs[0]
			for e := o; e < o+run; e++ {
				if x.F[j] == y.F[e] {
					cnt[e]++
				}
				j += s
			}
		})
	}
	for i, x := range in {
		if !op.Needs(need, i) {
			continue
		}
		full := tensor.New(outShape...)
		p := plans[i]
		s := p.st[0][len(p.dims)-1]
		p.walk(0, p.n, func(o int, offs []int, run int) {
			j := offs[0]
			for e := o; e < o+run; e++ {
				if x.F[j] == y.F[e] {
					full.F[e] = g.F[e] / cnt[e]
				}
				j += s
			}
		})
		res[i] = sumTo(full, x.Shape)
	}
	return res, nil
}
