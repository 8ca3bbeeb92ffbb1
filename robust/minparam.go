package robust

import (
	"context"
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// ParamAttack perturbs a batch of inputs with the value param of the
// parameter MinParamPerturbation searches (an FGSM epsilon, a noise
// level, a number of dropped features, ...).
type ParamAttack func(ctx context.Context, inputs []*tensor.Tensor, param float64) ([]*tensor.Tensor, error)

// CorrectFn tells whether a model output [N, ...] counts as correct for
// the targets; MinParamPerturbation searches for the first value whose
// attacked output is not correct.
type CorrectFn func(out *tensor.Tensor, target []int) (bool, error)

// DefaultCorrect is Captum's default correct_fn: every example's argmax
// over dimension 1 equals its target (one target for all, or one per
// example); the output must be [N, C].
func DefaultCorrect(out *tensor.Tensor, target []int) (bool, error) {
	if out == nil || out.Rank() != 2 {
		return false, fmt.Errorf("robust: the default correct function needs an output [N, C]")
	}
	n, c := out.Shape[0], out.Shape[1]
	tg, err := expandTarget(target, n)
	if err != nil {
		return false, err
	}
	for i := 0; i < n; i++ {
		if argmax(out, i, c) != tg[i] {
			return false, nil
		}
	}
	return true, nil
}

// argmax returns the first index of row i's largest value.
func argmax(out *tensor.Tensor, i, c int) int {
	best := 0
	for j := 1; j < c; j++ {
		if out.Float64At(i*c+j) > out.Float64At(i*c+best) {
			best = j
		}
	}
	return best
}

// MinParamPerturbation finds the smallest value of an attack's parameter
// for which the model's prediction on the attacked inputs is no longer
// correct, Captum's captum.robust.MinParamPerturbation. Linear mode tries
// ArgMin, ArgMin+ArgStep, ... (accumulated in float64 as Captum does)
// below ArgMax; binary mode bisects [ArgMin, ArgMax] on the grid of
// ArgStep. Cost: NumAttempts attack calls and model rows per value tried
// (linear: up to (ArgMax-ArgMin)/ArgStep values; binary: about
// log2 of that).
type MinParamPerturbation struct {
	Model  attr.Model
	Attack ParamAttack
	// ArgName names the searched parameter (Captum's arg_name; for
	// reports only).
	ArgName                 string
	ArgMin, ArgMax, ArgStep float64
	// Mode is "linear" (default) or "binary".
	Mode string
	// NumAttempts is the number of attack calls per value (default 1;
	// more only for random attacks).
	NumAttempts int
	// CorrectFn decides correctness; nil is DefaultCorrect.
	CorrectFn CorrectFn
}

// MinParamOptions holds what Evaluate takes besides the inputs.
type MinParamOptions struct {
	// Target is passed to the correct function (one class for all
	// examples or one per example).
	Target []int
	// PerturbationsPerEval is how many attacked copies of the batch go
	// through the model in one call (default 1).
	PerturbationsPerEval int
	// Additional is given to the model after the inputs, repeated for
	// every attacked copy when its first dimension is the batch.
	Additional []*tensor.Tensor
	// Progress, if set, is called after each value tried.
	Progress func(tried int)
}

// MinParamResult is what Evaluate finds.
type MinParamResult struct {
	// Found is false when no value in the range fools the model; Param and
	// Perturbed are then unset.
	Found     bool
	Param     float64
	Perturbed []*tensor.Tensor
	// Evaluated lists every value the attack was called with, in order.
	Evaluated []float64
}

// Evaluate runs the search on a batch (Captum's evaluate).
func (mp *MinParamPerturbation) Evaluate(ctx context.Context, inputs []*tensor.Tensor, o MinParamOptions) (*MinParamResult, error) {
	if mp.Model == nil || mp.Attack == nil {
		return nil, fmt.Errorf("robust: MinParamPerturbation needs a Model and an Attack")
	}
	if !(mp.ArgMax > mp.ArgMin+mp.ArgStep) || !(mp.ArgStep > 0) {
		return nil, fmt.Errorf("robust: MinParamPerturbation needs arg_step > 0 and arg_max > arg_min + arg_step (got min %g, max %g, step %g)", mp.ArgMin, mp.ArgMax, mp.ArgStep)
	}
	if len(inputs) == 0 || inputs[0] == nil || inputs[0].Rank() == 0 {
		return nil, fmt.Errorf("robust: no input batch")
	}
	if (mp.ArgMax-mp.ArgMin)/mp.ArgStep > 1e7 {
		return nil, fmt.Errorf("robust: MinParamPerturbation range %g..%g in steps of %g has too many values", mp.ArgMin, mp.ArgMax, mp.ArgStep)
	}
	s := &search{mp: mp, o: o, inputs: inputs, res: &MinParamResult{}}
	if s.o.PerturbationsPerEval <= 0 {
		s.o.PerturbationsPerEval = 1
	}
	if s.mp.NumAttempts <= 0 {
		s.attempts = 1
	} else {
		s.attempts = mp.NumAttempts
	}
	s.correct = mp.CorrectFn
	if s.correct == nil {
		s.correct = DefaultCorrect
	}
	var err error
	switch mp.Mode {
	case "", "linear":
		err = s.linear(ctx)
	case "binary":
		err = s.binary(ctx)
	default:
		return nil, fmt.Errorf("robust: MinParamPerturbation mode %q: want linear or binary", mp.Mode)
	}
	if err != nil {
		return nil, err
	}
	return s.res, nil
}

// search is one run of Evaluate.
type search struct {
	mp       *MinParamPerturbation
	o        MinParamOptions
	inputs   []*tensor.Tensor
	attempts int
	correct  CorrectFn
	res      *MinParamResult
	tried    int
}

// pending is an attacked batch waiting for evaluation.
type pending struct {
	in    []*tensor.Tensor
	param float64
}

func (s *search) attack(ctx context.Context, p float64) (pending, error) {
	s.res.Evaluated = append(s.res.Evaluated, p)
	x, err := s.mp.Attack(ctx, s.inputs, p)
	if err != nil {
		return pending{}, fmt.Errorf("robust: attack with %s=%g: %w", s.mp.ArgName, p, err)
	}
	if len(x) != len(s.inputs) {
		return pending{}, fmt.Errorf("robust: attack with %s=%g returned %d tensors for %d inputs", s.mp.ArgName, p, len(x), len(s.inputs))
	}
	return pending{x, p}, nil
}

// first evaluates the batches together and returns the index of the first
// one that is not correct, or -1.
func (s *search) first(ctx context.Context, list []pending) (int, error) {
	ins := make([][]*tensor.Tensor, len(list))
	for i, p := range list {
		ins[i] = p.in
	}
	outs, err := evalCopies(ctx, s.mp.Model, ins, s.o.Additional)
	if err != nil {
		return -1, err
	}
	for i, out := range outs {
		ok, err := s.correct(out, s.o.Target)
		if err != nil {
			return -1, err
		}
		if !ok {
			return i, nil
		}
	}
	return -1, nil
}

func (s *search) found(p pending) {
	s.res.Found, s.res.Param, s.res.Perturbed = true, p.param, p.in
}

func (s *search) progress() {
	s.tried++
	if s.o.Progress != nil {
		s.o.Progress(s.tried)
	}
}

func (s *search) linear(ctx context.Context) error {
	var list []pending
	for cur := s.mp.ArgMin; cur < s.mp.ArgMax; cur += s.mp.ArgStep {
		if err := ctx.Err(); err != nil {
			return err
		}
		for a := 0; a < s.attempts; a++ {
			p, err := s.attack(ctx, cur)
			if err != nil {
				return err
			}
			list = append(list, p)
			if len(list) == s.o.PerturbationsPerEval {
				i, err := s.first(ctx, list)
				if err != nil {
					return err
				}
				if i >= 0 {
					s.found(list[i])
					return nil
				}
				list = nil
			}
		}
		s.progress()
	}
	if len(list) > 0 {
		i, err := s.first(ctx, list)
		if err != nil {
			return err
		}
		if i >= 0 {
			s.found(list[i])
		}
	}
	return nil
}

func (s *search) binary(ctx context.Context) error {
	lo, hi := s.mp.ArgMin, s.mp.ArgMax
	step := s.mp.ArgStep
	for hi > lo {
		if err := ctx.Err(); err != nil {
			return err
		}
		midStep := math.Floor(pyFloorDiv(hi-lo, step) / 2)
		if midStep == 0 && lo+step < hi {
			midStep = 1
		}
		mid := lo + midStep*step
		var list []pending
		success := false
		for a := 0; a < s.attempts; a++ {
			p, err := s.attack(ctx, mid)
			if err != nil {
				return err
			}
			list = append(list, p)
			if len(list) == s.o.PerturbationsPerEval || a == s.attempts-1 {
				i, err := s.first(ctx, list)
				if err != nil {
					return err
				}
				if i >= 0 {
					success = true
					hi = mid
					if !s.res.Found || s.res.Param > mid {
						s.found(list[i])
					}
					break
				}
				list = nil
			}
		}
		s.progress()
		if isClose(lo, mid) {
			break
		}
		if !success {
			lo = mid
		}
	}
	return nil
}

// pyFloorDiv is Python's float floor division a // b.
func pyFloorDiv(a, b float64) float64 {
	mod := math.Mod(a, b)
	div := (a - mod) / b
	if mod != 0 && (b < 0) != (mod < 0) {
		div -= 1
	}
	if div == 0 {
		return math.Copysign(0, a/b)
	}
	f := math.Floor(div)
	if div-f > 0.5 {
		f++
	}
	return f
}

// isClose is Python's math.isclose with its default tolerances.
func isClose(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// evalCopies runs the model once on the attacked copies concatenated along
// the batch and splits the output back into one per copy.
func evalCopies(ctx context.Context, m attr.Model, copies [][]*tensor.Tensor, additional []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if len(copies) == 0 {
		return nil, nil
	}
	n := copies[0][0].Shape[0]
	k := len(copies)
	batch := make([]*tensor.Tensor, 0, len(copies[0])+len(additional))
	for i := range copies[0] {
		parts := make([]*tensor.Tensor, k)
		for c := range copies {
			parts[c] = copies[c][i]
			if parts[c].Rank() == 0 || parts[c].Shape[0] != n {
				return nil, fmt.Errorf("robust: attacked input %d has shape %v, want %d rows", i, parts[c].Shape, n)
			}
		}
		t, err := concatRows(parts)
		if err != nil {
			return nil, err
		}
		batch = append(batch, t)
	}
	for _, a := range additional {
		if a.Rank() > 0 && a.Shape[0] == n && k > 1 {
			parts := make([]*tensor.Tensor, k)
			for c := range parts {
				parts[c] = a
			}
			t, err := concatRows(parts)
			if err != nil {
				return nil, err
			}
			a = t
		}
		batch = append(batch, a)
	}
	out, err := m.Eval(ctx, batch)
	if err != nil {
		return nil, err
	}
	if out.Rank() == 0 || out.Shape[0] != n*k {
		return nil, fmt.Errorf("robust: the model returned shape %v for %d rows", out.Shape, n*k)
	}
	return splitRows(out, k), nil
}

// concatRows concatenates tensors of equal trailing shape along dim 0.
func concatRows(parts []*tensor.Tensor) (*tensor.Tensor, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	shape := append([]int(nil), parts[0].Shape...)
	rows := 0
	for _, p := range parts {
		if p.DType != parts[0].DType || !tensor.SameShape(p.Shape[1:], parts[0].Shape[1:]) {
			return nil, fmt.Errorf("robust: cannot stack shapes %v and %v", parts[0].Shape, p.Shape)
		}
		rows += p.Shape[0]
	}
	shape[0] = rows
	out := tensor.Zeros(parts[0].DType, shape)
	off := 0
	for _, p := range parts {
		switch p.DType {
		case tensor.Float32:
			copy(out.F[off:], p.F)
		case tensor.Int64:
			copy(out.I[off:], p.I)
		case tensor.Bool:
			copy(out.B[off:], p.B)
		}
		off += p.Len()
	}
	return out, nil
}

// splitRows cuts t into k equal row blocks.
func splitRows(t *tensor.Tensor, k int) []*tensor.Tensor {
	if k == 1 {
		return []*tensor.Tensor{t}
	}
	n := t.Shape[0] / k
	row := t.Len() / t.Shape[0]
	out := make([]*tensor.Tensor, k)
	for c := range out {
		shape := append([]int{n}, t.Shape[1:]...)
		p := tensor.Zeros(t.DType, shape)
		switch t.DType {
		case tensor.Float32:
			copy(p.F, t.F[c*n*row:(c+1)*n*row])
		case tensor.Int64:
			copy(p.I, t.I[c*n*row:(c+1)*n*row])
		case tensor.Bool:
			copy(p.B, t.B[c*n*row:(c+1)*n*row])
		}
		out[c] = p
	}
	return out
}
