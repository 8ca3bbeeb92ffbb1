package robust

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

func mlpNet(t *testing.T, name string) *attr.Net {
	t.Helper()
	m, err := engine.Load(testmodels.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

func batch(n, d int) *tensor.Tensor {
	x := tensor.New(n, d)
	for i := range x.F {
		x.F[i] = float32(math.Sin(float64(i)*1.7)) * 0.8
	}
	return x
}

// sumLoss is the summed loss of the net at x.
func sumLoss(t *testing.T, nt *attr.Net, loss Loss, x *tensor.Tensor, target []int) float64 {
	out, err := nt.Eval(context.Background(), []*tensor.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := loss(out, target)
	if err != nil {
		t.Fatal(err)
	}
	s := 0.0
	for _, v := range l {
		s += v
	}
	return s
}

// The loss gradients match central finite differences, for both losses.
func TestLossGradientFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		model string
		loss  Loss
	}{{"mlp_s0.onnx", CrossEntropy}, {"mlp_softmax_s0.onnx", NegLog}} {
		nt := mlpNet(t, tc.model)
		x := batch(3, 6)
		target := []int{0, 2, 3}
		g, err := LossGradient(context.Background(), nt, tc.loss, []*tensor.Tensor{x}, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		const h = 1e-2
		for k := range x.F {
			xp, xm := x.Clone(), x.Clone()
			xp.F[k] += h
			xm.F[k] -= h
			fd := (sumLoss(t, nt, tc.loss, xp, target) - sumLoss(t, nt, tc.loss, xm, target)) / (2 * h)
			if d := math.Abs(fd - float64(g[0].F[k])); d > 2e-3*math.Max(1, math.Abs(fd)) {
				t.Errorf("%s element %d: gradient %g, finite difference %g", tc.model, k, g[0].F[k], fd)
			}
		}
	}
}

// An untargeted FGSM step raises the loss; a targeted one lowers it; every
// changed element moves by exactly epsilon.
func TestFGSMDirection(t *testing.T) {
	nt := mlpNet(t, "mlp_s0.onnx")
	x := batch(4, 6)
	target := []int{1}
	before := sumLoss(t, nt, CrossEntropy, x, []int{1, 1, 1, 1})
	for _, targeted := range []bool{false, true} {
		a := &FGSM{Net: nt, LossFunc: CrossEntropy}
		y, err := a.Perturb(context.Background(), []*tensor.Tensor{x}, 0.01, target, Options{Targeted: targeted})
		if err != nil {
			t.Fatal(err)
		}
		for k := range x.F {
			if d := math.Abs(float64(y[0].F[k] - x.F[k])); d != 0 && math.Abs(d-0.01) > 1e-6 {
				t.Fatalf("element %d moved by %g", k, d)
			}
		}
		after := sumLoss(t, nt, CrossEntropy, y[0], []int{1, 1, 1, 1})
		if targeted == (after > before) {
			t.Errorf("targeted=%v: loss %g -> %g", targeted, before, after)
		}
	}
}

// PGD stays in its ball and in the bounds.
func TestPGDProjection(t *testing.T) {
	nt := mlpNet(t, "mlp_s0.onnx")
	x := batch(4, 6)
	for _, norm := range []string{"Linf", "L2"} {
		a := &PGD{Net: nt, LossFunc: CrossEntropy, LowerBound: -0.7, UpperBound: 0.7}
		y, err := a.Perturb(context.Background(), []*tensor.Tensor{x}, 0.15, 0.1, 5, []int{2}, PGDOptions{Norm: norm})
		if err != nil {
			t.Fatal(err)
		}
		for e := 0; e < 4; e++ {
			var l2, linf float64
			for j := 0; j < 6; j++ {
				k := e*6 + j
				v := y[0].F[k]
				if v < -0.7 || v > 0.7 {
					t.Fatalf("%s: element %d = %g outside the bounds", norm, k, v)
				}
				// Distance to the clamped input: the clamp applies after
				// the projection.
				c := min(max(x.F[k], -0.7), 0.7)
				d := math.Abs(float64(v - c))
				l2 += d * d
				linf = math.Max(linf, d)
			}
			if norm == "Linf" && linf > 0.15+1e-6 || norm == "L2" && math.Sqrt(l2) > 0.15+1e-5 {
				t.Errorf("%s: example %d left the ball (linf %g, l2 %g)", norm, e, linf, math.Sqrt(l2))
			}
		}
	}
	if _, err := (&PGD{Net: nt}).Perturb(context.Background(), []*tensor.Tensor{x}, 0.1, 0.1, 1, []int{0}, PGDOptions{Norm: "L1"}); err == nil {
		t.Error("norm L1 accepted")
	}
}

func TestAttackErrors(t *testing.T) {
	nt := mlpNet(t, "mlp_s0.onnx")
	x := batch(2, 6)
	a := &FGSM{Net: nt, LossFunc: CrossEntropy}
	ctx := context.Background()
	for name, tc := range map[string]struct {
		target []int
		o      Options
		want   string
	}{
		"targets":    {[]int{0, 1, 2}, Options{}, "3 targets"},
		"class":      {[]int{9}, Options{}, "outside"},
		"mask shape": {[]int{0}, Options{Mask: []*tensor.Tensor{tensor.New(3, 6)}}, "mask 0"},
	} {
		if _, err := a.Perturb(ctx, []*tensor.Tensor{x}, 0.1, tc.target, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
	if _, err := (&FGSM{}).Perturb(ctx, []*tensor.Tensor{x}, 0.1, []int{0}, Options{}); err == nil {
		t.Error("FGSM without a Net accepted")
	}
	// Parameters out of range are refused before anything runs.
	nan := math.NaN()
	for name, err := range map[string]error{
		"epsilon NaN":  second(a.Perturb(ctx, []*tensor.Tensor{x}, nan, []int{0}, Options{})),
		"epsilon Inf":  second(a.Perturb(ctx, []*tensor.Tensor{x}, math.Inf(1), []int{0}, Options{})),
		"bounds NaN":   second((&FGSM{Net: nt, LowerBound: nan}).Perturb(ctx, []*tensor.Tensor{x}, 0.1, []int{0}, Options{})),
		"bounds cross": second((&FGSM{Net: nt, LowerBound: 1, UpperBound: -1}).Perturb(ctx, []*tensor.Tensor{x}, 0.1, []int{0}, Options{})),
		"steps 1e9":    second((&PGD{Net: nt}).Perturb(ctx, []*tensor.Tensor{x}, 0.1, 0.01, 1e9, []int{0}, PGDOptions{})),
		"step NaN":     second((&PGD{Net: nt}).Perturb(ctx, []*tensor.Tensor{x}, 0.1, nan, 3, []int{0}, PGDOptions{})),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestPyFloorDiv(t *testing.T) {
	// Values printed by CPython.
	for _, tc := range []struct{ a, b, want float64 }{
		{3.0, 0.05, 59}, {0.05, 0.0005, 100}, {1.0, 0.1, 9}, {0.3, 0.1, 2}, {-1.0, 0.3, -4}, {7.5, 2.5, 3},
	} {
		if got := pyFloorDiv(tc.a, tc.b); got != tc.want {
			t.Errorf("%g // %g = %g, want %g", tc.a, tc.b, got, tc.want)
		}
	}
}

// threshold is a model whose class flips from 0 to 1 when the first input
// exceeds 1: outputs [1, x0].
var threshold = attr.Func(func(_ context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
	x := in[0]
	n := x.Shape[0]
	row := x.Len() / n
	out := tensor.New(n, 2)
	for i := 0; i < n; i++ {
		out.F[2*i] = 1
		out.F[2*i+1] = x.F[i*row]
	}
	return out, nil
})

func addAttack(_ context.Context, in []*tensor.Tensor, p float64) ([]*tensor.Tensor, error) {
	y := in[0].Clone()
	for k := range y.F {
		y.F[k] += float32(p)
	}
	return []*tensor.Tensor{y}, nil
}

// Both searches find the first grid value that flips the class.
func TestMinParamPerturbation(t *testing.T) {
	x, _ := tensor.FromFloat32([]float32{0.2, 0}, 1, 2)
	for _, mode := range []string{"linear", "binary"} {
		for _, ppe := range []int{1, 3} {
			mp := &MinParamPerturbation{Model: threshold, Attack: addAttack, ArgName: "delta", ArgMin: 0, ArgMax: 2, ArgStep: 0.1, Mode: mode}
			r, err := mp.Evaluate(context.Background(), []*tensor.Tensor{x}, MinParamOptions{Target: []int{0}, PerturbationsPerEval: ppe})
			if err != nil {
				t.Fatal(err)
			}
			// 0.2 + p > 1 first at p = 0.9 (float32 arithmetic: 0.2+0.8 = 1.0000001 also flips).
			if !r.Found || (math.Abs(r.Param-0.9) > 1e-9 && math.Abs(r.Param-0.8) > 1e-9) {
				t.Errorf("%s ppe %d: found %v at %g (tried %v)", mode, ppe, r.Found, r.Param, r.Evaluated)
			}
			if mode == "binary" && len(r.Evaluated) > 8 {
				t.Errorf("binary search tried %d values", len(r.Evaluated))
			}
		}
	}
	mp := &MinParamPerturbation{Model: threshold, Attack: addAttack, ArgMin: 0, ArgMax: 0.5, ArgStep: 0.1}
	r, err := mp.Evaluate(context.Background(), []*tensor.Tensor{x}, MinParamOptions{Target: []int{0}})
	if err != nil || r.Found {
		t.Errorf("nothing to find: %+v, %v", r, err)
	}
	bad := &MinParamPerturbation{Model: threshold, Attack: addAttack, ArgMin: 0, ArgMax: 0.1, ArgStep: 0.1}
	if _, err := bad.Evaluate(context.Background(), []*tensor.Tensor{x}, MinParamOptions{Target: []int{0}}); err == nil {
		t.Error("arg_max == arg_min + arg_step accepted")
	}
}

// The comparator's per-call stats and summary, against hand-computed
// values on the threshold model.
func TestAttackComparator(t *testing.T) {
	ac := &AttackComparator{Model: threshold, Metric: func(out *tensor.Tensor, _ []int) (*tensor.Tensor, error) {
		v := tensor.New(out.Shape[0])
		for i := range v.F {
			v.F[i] = out.F[2*i+1]
		}
		return v, nil
	}}
	calls := 0
	if err := ac.AddAttack("Shift", func(ctx context.Context, in []*tensor.Tensor, _ []int) ([]*tensor.Tensor, error) {
		calls++
		return addAttack(ctx, in, float64(calls))
	}, 2); err != nil {
		t.Fatal(err)
	}
	if err := ac.AddAttack("Shift", nil, 1); err == nil {
		t.Error("nil attack accepted")
	}
	x, _ := tensor.FromFloat32([]float32{0, 0, 2, 0}, 2, 2)
	r, err := ac.Evaluate(context.Background(), []*tensor.Tensor{x}, 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := r.Attacks["Shift"]
	// attempts add 1 then 2: values [1, 3] and [2, 4].
	if r.Original.F[1] != 2 || st.Mean.F[0] != 1.5 || st.Min.F[1] != 3 || st.Max.F[1] != 4 {
		t.Errorf("original %v, stats %v %v %v", r.Original.F, st.Mean.F, st.Min.F, st.Max.F)
	}
	if _, err := ac.Evaluate(context.Background(), []*tensor.Tensor{x}, 1, nil, nil); err != nil {
		t.Fatal(err)
	}
	s := ac.Summary()
	// Calls 1 and 2: means over the batch of the mean attempt: 2.5 and 4.5.
	if got := s["Shift Mean Attempt"].F[0]; got != 3.5 {
		t.Errorf("summary mean attempt %g, want 3.5 (keys %v)", got, ac.SummaryKeys())
	}
	if got := s[OriginalKey].F[0]; got != 1 {
		t.Errorf("summary original %g, want 1", got)
	}
}
