package robust

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// zeroThresh is Captum's threshold below which a gradient element counts
// as zero (the input element is left as it is).
const zeroThresh = 1e-6

// Options holds what FGSM.Perturb and PGD.Perturb take besides the inputs,
// the step and the target, under Captum's names.
type Options struct {
	// Additional feeds the Net's Extra inputs (additional_forward_args).
	Additional []*tensor.Tensor
	// Targeted descends the loss of the target (moves towards it) instead
	// of ascending it (moves away from it).
	Targeted bool
	// Mask, when set, holds one tensor per input that multiplies the step
	// (0 freezes an element); it broadcasts to the input's shape.
	Mask []*tensor.Tensor
}

// FGSM is the Fast Gradient Sign Method (Goodfellow, Shlens and Szegedy,
// "Explaining and Harnessing Adversarial Examples", ICLR 2015), Captum's
// captum.robust.FGSM: x' = clamp(x + s*epsilon*sign(grad_x L)*mask, lower,
// upper), with s = -1 for a targeted attack and +1 otherwise, and x' = x
// where |grad| <= 1e-6. Cost: one forward and one backward pass.
type FGSM struct {
	Net *attr.Net
	// LossFunc is the loss differentiated (Captum's loss_func); nil is
	// Captum's default, NegLog, meant for probability outputs.
	LossFunc Loss
	// LowerBound and UpperBound clamp the perturbed input. Both zero means
	// no bounds (Captum's defaults -inf and inf); use math.Inf for a
	// one-sided bound.
	LowerBound, UpperBound float64
}

// Perturb returns the perturbed inputs (Captum's perturb). target holds one
// class for every example or one per example.
func (a *FGSM) Perturb(ctx context.Context, inputs []*tensor.Tensor, epsilon float64, target []int, o Options) ([]*tensor.Tensor, error) {
	if err := checkAttack(a.Net, inputs, o); err != nil {
		return nil, err
	}
	if err := checkFinite("epsilon", epsilon); err != nil {
		return nil, err
	}
	if err := checkBounds(a.LowerBound, a.UpperBound); err != nil {
		return nil, err
	}
	out, err := fgsmStep(ctx, a.Net, a.LossFunc, inputs, epsilon, target, o)
	if err != nil {
		return nil, err
	}
	for _, t := range out {
		clampTo(t, a.LowerBound, a.UpperBound)
	}
	return out, nil
}

// fgsmStep is one unbounded FGSM step.
func fgsmStep(ctx context.Context, nt *attr.Net, loss Loss, inputs []*tensor.Tensor, epsilon float64, target []int, o Options) ([]*tensor.Tensor, error) {
	grads, err := LossGradient(ctx, nt, loss, inputs, target, o.Additional)
	if err != nil {
		return nil, err
	}
	mult := float32(epsilon)
	if o.Targeted {
		mult = -mult
	}
	out := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		g := grads[i]
		y := x.Clone()
		var mask func(int) float32
		if o.Mask != nil {
			m := o.Mask[i]
			st := tensor.BroadcastStrides(m.Shape, x.Shape)
			xs := tensor.Strides(x.Shape)
			mask = func(k int) float32 {
				off := 0
				for d := range xs {
					off += (k / xs[d] % x.Shape[d]) * st[d]
				}
				return float32(m.Float64At(off))
			}
		}
		for k, v := range g.F {
			if math.Abs(float64(v)) <= zeroThresh {
				continue
			}
			s := float32(1)
			if v < 0 {
				s = -1
			}
			step := mult * s
			if mask != nil {
				step *= mask(k)
			}
			y.F[k] = x.F[k] + step
		}
		out[i] = y
	}
	return out, nil
}

// PGDOptions holds PGD's options besides those of FGSM.
type PGDOptions struct {
	Options
	// Norm is the ball the perturbation stays in: "Linf" (default) or
	// "L2". Each step is a sign step in either case, as in Captum; only
	// the projection differs.
	Norm string
	// RandomStart starts from a random point of the ball (drawn from Rand,
	// which must then be set) instead of the input.
	RandomStart bool
	Rand        *rand.Rand
}

// PGD is Projected Gradient Descent (Madry et al., "Towards Deep Learning
// Models Resistant to Adversarial Attacks", ICLR 2018), Captum's
// captum.robust.PGD: step_num unbounded FGSM steps of size step_size, each
// followed by a projection onto the Linf or L2 ball of the given radius
// around the input (L2: torch.renorm per example) and a clamp to the
// bounds. Cost: step_num forward and backward passes.
type PGD struct {
	Net *attr.Net
	// LossFunc is the loss differentiated; nil is Captum's default, NegLog.
	LossFunc Loss
	// LowerBound and UpperBound clamp the perturbed input; both zero means
	// no bounds.
	LowerBound, UpperBound float64
}

// Perturb returns the perturbed inputs (Captum's perturb).
func (a *PGD) Perturb(ctx context.Context, inputs []*tensor.Tensor, radius, stepSize float64, stepNum int, target []int, o PGDOptions) ([]*tensor.Tensor, error) {
	if err := checkAttack(a.Net, inputs, o.Options); err != nil {
		return nil, err
	}
	if stepNum < 0 || stepNum > attr.MaxSteps || radius < 0 || math.IsNaN(radius) {
		return nil, fmt.Errorf("robust: PGD needs radius >= 0 and step_num in 0..%d, got %g and %d", attr.MaxSteps, radius, stepNum)
	}
	if err := checkFinite("step_size", stepSize); err != nil {
		return nil, err
	}
	if err := checkBounds(a.LowerBound, a.UpperBound); err != nil {
		return nil, err
	}
	norm := o.Norm
	if norm == "" {
		norm = "Linf"
	}
	if norm != "Linf" && norm != "L2" {
		return nil, fmt.Errorf("robust: PGD norm %q: want Linf or L2", o.Norm)
	}
	cur := inputs
	if o.RandomStart {
		if o.Rand == nil {
			return nil, fmt.Errorf("robust: PGD with RandomStart needs PGDOptions.Rand")
		}
		cur = make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			cur[i] = randomPoint(x, radius, norm, o.Rand, o.Mask, i)
			clampTo(cur[i], a.LowerBound, a.UpperBound)
		}
	}
	for s := 0; s < stepNum; s++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next, err := fgsmStep(ctx, a.Net, a.LossFunc, cur, stepSize, target, o.Options)
		if err != nil {
			return nil, err
		}
		for i, x := range inputs {
			project(x, next[i], radius, norm)
			clampTo(next[i], a.LowerBound, a.UpperBound)
		}
		cur = next
	}
	if stepNum == 0 {
		out := make([]*tensor.Tensor, len(cur))
		for i, t := range cur {
			out[i] = t.Clone()
		}
		return out, nil
	}
	return cur, nil
}

// project moves y into the ball of radius r around x (in place).
func project(x, y *tensor.Tensor, r float64, norm string) {
	if norm == "Linf" {
		rf := float32(r)
		for k := range y.F {
			d := y.F[k] - x.F[k]
			d = min(max(d, -rf), rf)
			y.F[k] = x.F[k] + d
		}
		return
	}
	n := x.Shape[0]
	row := x.Len() / max(n, 1)
	for e := 0; e < n; e++ {
		var ss float64
		for k := e * row; k < (e+1)*row; k++ {
			d := float64(y.F[k] - x.F[k])
			ss += d * d
		}
		nrm := math.Sqrt(ss)
		if nrm <= r {
			continue
		}
		f := float32(r / (nrm + 1e-7))
		for k := e * row; k < (e+1)*row; k++ {
			y.F[k] = x.F[k] + (y.F[k]-x.F[k])*f
		}
	}
}

// randomPoint draws a point of the ball around x, as Captum's
// _random_point.
func randomPoint(x *tensor.Tensor, r float64, norm string, rng *rand.Rand, masks []*tensor.Tensor, i int) *tensor.Tensor {
	d := tensor.New(x.Shape...)
	n := x.Shape[0]
	row := x.Len() / max(n, 1)
	if norm == "Linf" {
		for k := range d.F {
			d.F[k] = float32(rng.Float64()*2*r - r)
		}
	} else {
		for e := 0; e < n; e++ {
			var ss float64
			for k := e * row; k < (e+1)*row; k++ {
				v := rng.NormFloat64()
				d.F[k] = float32(v)
				ss += v * v
			}
			scale := math.Pow(rng.Float64(), 1/float64(row)) * r / math.Max(math.Sqrt(ss), 1e-12)
			for k := e * row; k < (e+1)*row; k++ {
				d.F[k] *= float32(scale)
			}
		}
	}
	y := x.Clone()
	var m *tensor.Tensor
	if masks != nil {
		m = masks[i]
	}
	for k := range y.F {
		f := float32(1)
		if m != nil {
			st := tensor.BroadcastStrides(m.Shape, x.Shape)
			xs := tensor.Strides(x.Shape)
			off := 0
			for dd := range xs {
				off += (k / xs[dd] % x.Shape[dd]) * st[dd]
			}
			f = float32(m.Float64At(off))
		}
		y.F[k] += d.F[k] * f
	}
	return y
}

// clampTo clamps t to [lo, hi] in place; lo == hi == 0 means no bounds.
func clampTo(t *tensor.Tensor, lo, hi float64) {
	if lo == 0 && hi == 0 {
		return
	}
	l, h := float32(lo), float32(hi)
	for k, v := range t.F {
		t.F[k] = min(max(v, l), h)
	}
}

// checkAttack checks a gradient attack's net, inputs and masks.
func checkAttack(nt *attr.Net, inputs []*tensor.Tensor, o Options) error {
	if nt == nil || nt.Model == nil {
		return fmt.Errorf("robust: the attack has no Net")
	}
	if len(inputs) != len(nt.Inputs) {
		return fmt.Errorf("robust: %d inputs given, the model attributes %d (%v)", len(inputs), len(nt.Inputs), nt.Inputs)
	}
	if len(o.Additional) != len(nt.Extra) {
		return fmt.Errorf("robust: %d additional inputs given, the model needs %d (%v)", len(o.Additional), len(nt.Extra), nt.Extra)
	}
	for i, x := range inputs {
		if x == nil || x.DType != tensor.Float32 || x.Rank() == 0 {
			return fmt.Errorf("robust: input %d must be a float32 batch", i)
		}
		if err := x.Check(); err != nil {
			return fmt.Errorf("robust: input %d: %w", i, err)
		}
		if x.Shape[0] != inputs[0].Shape[0] {
			return fmt.Errorf("robust: input %d has %d rows, input 0 has %d", i, x.Shape[0], inputs[0].Shape[0])
		}
	}
	if o.Mask != nil {
		if len(o.Mask) != len(inputs) {
			return fmt.Errorf("robust: %d masks for %d inputs", len(o.Mask), len(inputs))
		}
		for i, m := range o.Mask {
			if m == nil {
				return fmt.Errorf("robust: mask %d is nil", i)
			}
			if s, err := tensor.BroadcastShape(m.Shape, inputs[i].Shape); err != nil || !tensor.SameShape(s, inputs[i].Shape) {
				return fmt.Errorf("robust: mask %d of shape %v does not broadcast to input shape %v", i, m.Shape, inputs[i].Shape)
			}
		}
	}
	return nil
}

// LossGradient returns the gradient of the summed per-example losses of
// the net's output with respect to its attributed inputs (loss nil:
// NegLog). Cost: one forward and one backward pass.
func LossGradient(ctx context.Context, nt *attr.Net, loss Loss, inputs []*tensor.Tensor, target []int, additional []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if loss == nil {
		loss = NegLog
	}
	if nt == nil || nt.Model == nil {
		return nil, fmt.Errorf("robust: no Net")
	}
	if len(inputs) == 0 || inputs[0].Rank() == 0 {
		return nil, fmt.Errorf("robust: no input batch")
	}
	tg, err := expandTarget(target, inputs[0].Shape[0])
	if err != nil {
		return nil, err
	}
	p, err := forward(ctx, nt, inputs, additional, true)
	if err != nil {
		return nil, err
	}
	out, err := p.Value(nt.Output)
	if err != nil {
		return nil, err
	}
	_, g, err := loss(out, tg)
	if err != nil {
		return nil, err
	}
	grads, err := p.Backward(ctx, map[string]*tensor.Tensor{nt.Output: g}, nt.Inputs, nil)
	if err != nil {
		return nil, fmt.Errorf("robust: backward: %w", err)
	}
	res := make([]*tensor.Tensor, len(nt.Inputs))
	for i, name := range nt.Inputs {
		res[i] = grads[name]
	}
	return res, nil
}

// forward runs the net on its attributed and additional inputs; names that
// are not model inputs are injected.
func forward(ctx context.Context, nt *attr.Net, inputs, additional []*tensor.Tensor, record bool) (*engine.Pass, error) {
	if len(inputs) != len(nt.Inputs) || len(additional) != len(nt.Extra) {
		return nil, fmt.Errorf("robust: %d inputs and %d additional inputs for a net of %d and %d", len(inputs), len(additional), len(nt.Inputs), len(nt.Extra))
	}
	var names []string
	for _, in := range nt.Model.Inputs() {
		names = append(names, in.Name)
	}
	feeds := map[string]*tensor.Tensor{}
	var inject map[string]*tensor.Tensor
	put := func(name string, t *tensor.Tensor) {
		if slices.Contains(names, name) {
			feeds[name] = t
			return
		}
		if inject == nil {
			inject = map[string]*tensor.Tensor{}
		}
		inject[name] = t
	}
	for name, t := range nt.Inject {
		put(name, t)
	}
	for i, name := range nt.Inputs {
		put(name, inputs[i])
	}
	for i, name := range nt.Extra {
		put(name, additional[i])
	}
	return nt.Model.Forward(ctx, feeds, &engine.Options{Outputs: []string{nt.Output}, Inject: inject, Record: record})
}

// checkFinite refuses a parameter that is NaN or infinite.
func checkFinite(name string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("robust: %s is %g, want a finite number", name, v)
	}
	return nil
}

// checkBounds refuses NaN or crossed bounds of the perturbed input.
func checkBounds(lower, upper float64) error {
	if math.IsNaN(lower) || math.IsNaN(upper) || lower > upper {
		return fmt.Errorf("robust: bounds [%g, %g]: want lower <= upper, not NaN", lower, upper)
	}
	return nil
}
