package robust

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Metric measures a model output [N, ...] for the targets: a tensor with
// one value per example ([N]) or a single number (a 0-d tensor).
type Metric func(out *tensor.Tensor, target []int) (*tensor.Tensor, error)

// Attack perturbs a batch for AttackComparator; it is given the
// evaluation's target (Captum's additional_attack_arg_names = ["target"]).
// An FGSM or PGD attack is a closure over Perturb; a random augmentation
// is a closure over its random source.
type Attack func(ctx context.Context, inputs []*tensor.Tensor, target []int) ([]*tensor.Tensor, error)

// OriginalKey is the key of the unperturbed inputs' metric.
const OriginalKey = "Original"

// Stats are a metric over an attack's attempts: the elementwise mean, and,
// for attacks of more than one attempt, min and max (nil otherwise).
type Stats struct {
	Mean, Min, Max *tensor.Tensor
}

// AttackComparator measures a metric of a model on a batch and on the
// batch under each added attack, and averages the results over batches,
// Captum's captum.robust.AttackComparator. Cost per Evaluate: one model
// row per example for the original plus one per example and attempt of
// every attack, plus the attacks' own costs.
type AttackComparator struct {
	Model  attr.Model
	Metric Metric

	attacks []attackInfo
	// summary: per key, the sum and count of per-call aggregates.
	sums   map[string]*tensor.Tensor
	counts map[string]int
	order  []string
}

type attackInfo struct {
	name     string
	fn       Attack
	attempts int
}

// AddAttack adds an attack under a unique name; numAttempts above 1 is
// for random attacks (the results then hold mean, min and max over the
// attempts).
func (ac *AttackComparator) AddAttack(name string, attack Attack, numAttempts int) error {
	if attack == nil {
		return fmt.Errorf("robust: attack %q is nil", name)
	}
	if name == "" || name == OriginalKey {
		return fmt.Errorf("robust: attack name %q is not allowed", name)
	}
	for _, a := range ac.attacks {
		if a.name == name {
			return fmt.Errorf("robust: cannot add attack with same name as existing attack %s", name)
		}
	}
	if numAttempts <= 0 {
		numAttempts = 1
	}
	ac.attacks = append(ac.attacks, attackInfo{name, attack, numAttempts})
	return nil
}

// Names returns the attacks' names in the order they were added.
func (ac *AttackComparator) Names() []string {
	out := make([]string, len(ac.attacks))
	for i, a := range ac.attacks {
		out[i] = a.name
	}
	return out
}

// Comparison is the result of one Evaluate: the metric on the original
// inputs and, per attack name, its stats.
type Comparison struct {
	Original *tensor.Tensor
	Attacks  map[string]Stats
}

// Evaluate measures the metric on the inputs and under every attack
// (Captum's evaluate). The original and attacked batches go through the
// model perturbationsPerEval at a time, concatenated along the batch.
func (ac *AttackComparator) Evaluate(ctx context.Context, inputs []*tensor.Tensor, perturbationsPerEval int, target []int, additional []*tensor.Tensor) (*Comparison, error) {
	if ac.Model == nil || ac.Metric == nil {
		return nil, fmt.Errorf("robust: AttackComparator needs a Model and a Metric")
	}
	if len(inputs) == 0 || inputs[0] == nil || inputs[0].Rank() == 0 {
		return nil, fmt.Errorf("robust: no input batch")
	}
	if perturbationsPerEval <= 0 {
		perturbationsPerEval = 1
	}
	type job struct {
		key string
		in  []*tensor.Tensor
	}
	values := map[string][]*tensor.Tensor{}
	var jobs []job
	flush := func() error {
		if len(jobs) == 0 {
			return nil
		}
		ins := make([][]*tensor.Tensor, len(jobs))
		for i, j := range jobs {
			ins[i] = j.in
		}
		outs, err := evalCopies(ctx, ac.Model, ins, additional)
		if err != nil {
			return err
		}
		for i, out := range outs {
			v, err := ac.Metric(out, target)
			if err != nil {
				return fmt.Errorf("robust: metric on %s: %w", jobs[i].key, err)
			}
			values[jobs[i].key] = append(values[jobs[i].key], v)
		}
		jobs = jobs[:0]
		return nil
	}
	add := func(key string, in []*tensor.Tensor) error {
		jobs = append(jobs, job{key, in})
		if len(jobs) == perturbationsPerEval {
			return flush()
		}
		return nil
	}
	if err := add(OriginalKey, inputs); err != nil {
		return nil, err
	}
	for _, a := range ac.attacks {
		for t := 0; t < a.attempts; t++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			x, err := a.fn(ctx, inputs, target)
			if err != nil {
				return nil, fmt.Errorf("robust: attack %s: %w", a.name, err)
			}
			if err := add(a.name, x); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	res := &Comparison{Attacks: map[string]Stats{}}
	res.Original = values[OriginalKey][0]
	if err := ac.record(OriginalKey, res.Original); err != nil {
		return nil, err
	}
	for _, a := range ac.attacks {
		vs := values[a.name]
		st, err := stats(vs, a.attempts > 1)
		if err != nil {
			return nil, fmt.Errorf("robust: attack %s: %w", a.name, err)
		}
		res.Attacks[a.name] = st
		if a.attempts == 1 {
			err = ac.record(a.name, st.Mean)
		} else {
			for _, kv := range []struct {
				k string
				t *tensor.Tensor
			}{{"Mean", st.Mean}, {"Min", st.Min}, {"Max", st.Max}} {
				if err = ac.record(a.name+" "+kv.k+" Attempt", kv.t); err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// stats computes the elementwise mean (and min and max) of equally shaped
// metric values.
func stats(vs []*tensor.Tensor, minmax bool) (Stats, error) {
	if len(vs) == 0 {
		return Stats{}, fmt.Errorf("no metric values")
	}
	shape := vs[0].Shape
	sum := make([]float64, vs[0].Len())
	mn := make([]float64, len(sum))
	mx := make([]float64, len(sum))
	for i, v := range vs {
		if !tensor.SameShape(v.Shape, shape) {
			return Stats{}, fmt.Errorf("metric shapes %v and %v differ between attempts", shape, v.Shape)
		}
		for k := range sum {
			x := v.Float64At(k)
			sum[k] += x
			if i == 0 || x < mn[k] {
				mn[k] = x
			}
			if i == 0 || x > mx[k] {
				mx[k] = x
			}
		}
	}
	mk := func(f func(k int) float64) *tensor.Tensor {
		t := tensor.New(shape...)
		for k := range t.F {
			t.F[k] = float32(f(k))
		}
		return t
	}
	st := Stats{Mean: mk(func(k int) float64 { return sum[k] / float64(len(vs)) })}
	if minmax {
		st.Min = mk(func(k int) float64 { return mn[k] })
		st.Max = mk(func(k int) float64 { return mx[k] })
	}
	return st, nil
}

// record adds a call's value, averaged over its first dimension, to the
// running summary of key.
func (ac *AttackComparator) record(key string, v *tensor.Tensor) error {
	agg := v
	if v.Rank() > 0 {
		n := v.Shape[0]
		if n == 0 {
			return fmt.Errorf("robust: empty metric for %s", key)
		}
		agg = tensor.New(v.Shape[1:]...)
		row := agg.Len()
		for i := 0; i < n; i++ {
			for k := 0; k < row; k++ {
				agg.F[k] += float32(v.Float64At(i*row + k))
			}
		}
		for k := range agg.F {
			agg.F[k] /= float32(n)
		}
	}
	if ac.sums == nil {
		ac.sums, ac.counts = map[string]*tensor.Tensor{}, map[string]int{}
	}
	s, ok := ac.sums[key]
	if !ok {
		ac.sums[key] = agg.AsFloat32().Clone()
		ac.counts[key] = 1
		ac.order = append(ac.order, key)
		return nil
	}
	if !tensor.SameShape(s.Shape, agg.Shape) {
		return fmt.Errorf("robust: metric of %s changed shape from %v to %v", key, s.Shape, agg.Shape)
	}
	a := agg.AsFloat32()
	for k := range s.F {
		s.F[k] += a.F[k]
	}
	ac.counts[key]++
	return nil
}

// Summary returns, per key, the mean over Evaluate calls of each call's
// value averaged over the batch (Captum's summary). Keys are OriginalKey,
// the names of single-attempt attacks, and "<name> Mean Attempt",
// "<name> Min Attempt", "<name> Max Attempt" for the others.
func (ac *AttackComparator) Summary() map[string]*tensor.Tensor {
	out := map[string]*tensor.Tensor{}
	for _, k := range ac.order {
		s := ac.sums[k].Clone()
		for i := range s.F {
			s.F[i] /= float32(ac.counts[k])
		}
		out[k] = s
	}
	return out
}

// SummaryKeys returns Summary's keys in the order they first appeared.
func (ac *AttackComparator) SummaryKeys() []string { return append([]string(nil), ac.order...) }

// TargetProb is a Metric: softmax(out)[i, target_i] per example.
func TargetProb(out *tensor.Tensor, target []int) (*tensor.Tensor, error) {
	if out == nil || out.Rank() != 2 {
		return nil, fmt.Errorf("robust: TargetProb needs an output [N, C]")
	}
	n := out.Shape[0]
	tg, err := expandTarget(target, n)
	if err != nil {
		return nil, err
	}
	loss, _, err := CrossEntropy(out.AsFloat32(), tg)
	if err != nil {
		return nil, err
	}
	t := tensor.New(n)
	for i, l := range loss {
		t.F[i] = float32(expNeg(l))
	}
	return t, nil
}

// Accuracy is a Metric: the share of examples whose argmax is the target,
// as a 0-d tensor.
func Accuracy(out *tensor.Tensor, target []int) (*tensor.Tensor, error) {
	if out == nil || out.Rank() != 2 {
		return nil, fmt.Errorf("robust: Accuracy needs an output [N, C]")
	}
	n, c := out.Shape[0], out.Shape[1]
	tg, err := expandTarget(target, n)
	if err != nil {
		return nil, err
	}
	hit := 0
	for i := 0; i < n; i++ {
		if argmax(out, i, c) == tg[i] {
			hit++
		}
	}
	return tensor.Scalar(float32(float64(hit) / float64(max(n, 1)))), nil
}
