package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/robust"
	"github.com/loupe-ml/loupe/tensor"
)

// robustRunners returns the runners of captum.robust's classes.
func robustRunners() map[string]runner {
	return map[string]runner{
		"FGSM":                 runFGSM,
		"PGD":                  runFGSM,
		"MinParamPerturbation": runMinParam,
		"AttackComparator":     runAttackComparator,
	}
}

// lossSpec is a case's loss_func description.
type lossSpec struct {
	Kind      string `json:"kind"`
	Reduction string `json:"reduction"`
}

func (l lossSpec) loss() (robust.Loss, error) {
	switch l.Kind {
	case "neg_log":
		return robust.NegLog, nil
	case "cross_entropy":
		if l.Reduction != "none" {
			return nil, fmt.Errorf("cross_entropy reduction %q", l.Reduction)
		}
		return robust.CrossEntropy, nil
	}
	return nil, fmt.Errorf("%w: loss %q", errNotImplemented, l.Kind)
}

// attackCtor is the constructor of an FGSM or PGD.
type attackCtor struct {
	Loss  lossSpec        `json:"loss_func"`
	Lower json.RawMessage `json:"lower_bound"`
	Upper json.RawMessage `json:"upper_bound"`
}

// bound decodes a bound written as a number or "-inf"/"inf".
func bound(raw json.RawMessage, def float64) (float64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return def, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "inf":
			return math.Inf(1), nil
		case "-inf":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("bound %q", s)
	}
	var f float64
	err := json.Unmarshal(raw, &f)
	return f, err
}

func (a attackCtor) parts() (robust.Loss, float64, float64, error) {
	l, err := a.Loss.loss()
	if err != nil {
		return nil, 0, 0, err
	}
	lo, err := bound(a.Lower, math.Inf(-1))
	if err != nil {
		return nil, 0, 0, err
	}
	hi, err := bound(a.Upper, math.Inf(1))
	return l, lo, hi, err
}

// intList decodes an int or a list of ints.
func intOrList(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return []int{one}, nil
	}
	var list []int
	err := json.Unmarshal(raw, &list)
	return list, err
}

// caseNet prepares the case's model for gradient attacks.
func caseNet(c *Case, m *engine.Model) *attr.Net {
	return &attr.Net{Model: m, Inputs: c.Model.AttributedInputs, Extra: c.Model.AdditionalForwardArgInputs, Output: c.Model.ONNXOutput}
}

// tolAt returns the tolerance at a path of the first exact check's
// fields: a dict with atol is a tolerance for everything below it.
func (c *Case) tolAt(path ...string) (Tol, error) {
	for _, raw := range c.Checks {
		var chk struct {
			Kind   string          `json:"kind"`
			Fields json.RawMessage `json:"fields"`
		}
		if err := json.Unmarshal(raw, &chk); err != nil {
			return Tol{}, err
		}
		if chk.Kind != "exact" || chk.Fields == nil {
			continue
		}
		cur := chk.Fields
		for i := 0; ; i++ {
			var probe map[string]json.RawMessage
			if json.Unmarshal(cur, &probe) == nil {
				if _, ok := probe["atol"]; ok {
					var t Tol
					return t, json.Unmarshal(cur, &t)
				}
			}
			var list []json.RawMessage
			if json.Unmarshal(cur, &list) == nil && len(list) > 0 {
				cur = list[0]
				if i == len(path) {
					continue
				}
			}
			if i == len(path) {
				break
			}
			if probe == nil {
				if json.Unmarshal(cur, &probe) != nil {
					break
				}
			}
			next, ok := probe[path[i]]
			if !ok {
				break
			}
			cur = next
		}
	}
	return Tol{}, fmt.Errorf("no tolerance for %s", strings.Join(path, "."))
}

// expectedField decodes expected.<name>.
func (c *Case) expectedField(name string) (json.RawMessage, error) {
	var exp map[string]json.RawMessage
	if err := json.Unmarshal(c.Expected, &exp); err != nil {
		return nil, fmt.Errorf("expected: %w", err)
	}
	raw, ok := exp[name]
	if !ok {
		return nil, fmt.Errorf("expected has no %q", name)
	}
	return raw, nil
}

// comparePerturbed compares the attacked inputs with expected.perturbed.
func comparePerturbed(c *Case, got []*tensor.Tensor) error {
	raw, err := c.expectedField("perturbed")
	if err != nil {
		return err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("expected.perturbed: %w", err)
	}
	tols, err := c.ExactTols("perturbed")
	if err != nil {
		return err
	}
	if len(got) != len(list) {
		return fmt.Errorf("%d perturbed tensors, want %d", len(got), len(list))
	}
	for i, r := range list {
		want, err := c.Tensor(r)
		if err != nil {
			return err
		}
		if err := Compare(got[i], want, tols[min(i, len(tols)-1)]); err != nil {
			return fmt.Errorf("perturbed[%d]: %w", i, err)
		}
	}
	return nil
}

func runFGSM(ctx context.Context, c *Case, m *engine.Model) error {
	var ctor attackCtor
	if err := json.Unmarshal(c.Constructor, &ctor); err != nil {
		return fmt.Errorf("constructor: %w", err)
	}
	loss, lo, hi, err := ctor.parts()
	if err != nil {
		return err
	}
	in, err := c.Inputs()
	if err != nil {
		return err
	}
	target, err := intOrList(c.Params["target"])
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	targeted, err := c.Bool("targeted", false)
	if err != nil {
		return err
	}
	o := robust.Options{Targeted: targeted}
	if c.Has("mask") {
		mk, err := c.Tensor(c.Params["mask"])
		if err != nil {
			return fmt.Errorf("mask: %w", err)
		}
		o.Mask = []*tensor.Tensor{mk}
	}
	if o.Additional, err = c.AdditionalArgs(); err != nil {
		return err
	}
	nt := caseNet(c, m)
	var got []*tensor.Tensor
	if c.Algorithm == "FGSM" {
		eps, err := c.Float("epsilon", 0)
		if err != nil {
			return err
		}
		a := &robust.FGSM{Net: nt, LossFunc: loss, LowerBound: lo, UpperBound: hi}
		got, err = a.Perturb(ctx, in, eps, target, o)
		if err != nil {
			return err
		}
	} else {
		radius, err := c.Float("radius", 0)
		if err != nil {
			return err
		}
		step, err := c.Float("step_size", 0)
		if err != nil {
			return err
		}
		n, err := c.Int("step_num", 0)
		if err != nil {
			return err
		}
		norm, err := c.String("norm", "Linf")
		if err != nil {
			return err
		}
		if rs, _ := c.Bool("random_start", false); rs {
			return fmt.Errorf("random_start cases are not replayable")
		}
		a := &robust.PGD{Net: nt, LossFunc: loss, LowerBound: lo, UpperBound: hi}
		got, err = a.Perturb(ctx, in, radius, step, n, target, robust.PGDOptions{Options: o, Norm: norm})
		if err != nil {
			return err
		}
	}
	return comparePerturbed(c, got)
}

// caseAttack describes an attack of a MinParamPerturbation or
// AttackComparator case.
type caseAttack struct {
	Kind        string          `json:"kind"`
	Loss        lossSpec        `json:"loss_func"`
	Constructor attackCtor      `json:"constructor"`
	Constants   []float64       `json:"constants"`
	Raw         json.RawMessage `json:"-"`
}

func runMinParam(ctx context.Context, c *Case, m *engine.Model) error {
	var ctor struct {
		Attack      caseAttack `json:"attack"`
		ArgName     string     `json:"arg_name"`
		ArgMin      float64    `json:"arg_min"`
		ArgMax      float64    `json:"arg_max"`
		ArgStep     float64    `json:"arg_step"`
		Mode        string     `json:"mode"`
		NumAttempts int        `json:"num_attempts"`
	}
	if err := json.Unmarshal(c.Constructor, &ctor); err != nil {
		return fmt.Errorf("constructor: %w", err)
	}
	in, err := c.Inputs()
	if err != nil {
		return err
	}
	target, err := intOrList(c.Params["target"])
	if err != nil {
		return err
	}
	var kw struct {
		Target json.RawMessage `json:"target"`
	}
	if c.Has("attack_kwargs") {
		if err := json.Unmarshal(c.Params["attack_kwargs"], &kw); err != nil {
			return fmt.Errorf("attack_kwargs: %w", err)
		}
	}
	atkTarget, err := intOrList(kw.Target)
	if err != nil {
		return err
	}
	nt := caseNet(c, m)
	var atk robust.ParamAttack
	switch ctor.Attack.Kind {
	case "FGSM":
		loss, err := ctor.Attack.Loss.loss()
		if err != nil {
			return err
		}
		f := &robust.FGSM{Net: nt, LossFunc: loss}
		atk = func(ctx context.Context, x []*tensor.Tensor, p float64) ([]*tensor.Tensor, error) {
			return f.Perturb(ctx, x, p, atkTarget, robust.Options{})
		}
	case "add_constant", "sub_constant", "scale":
		kind := ctor.Attack.Kind
		atk = func(_ context.Context, x []*tensor.Tensor, p float64) ([]*tensor.Tensor, error) {
			out := make([]*tensor.Tensor, len(x))
			for i, t := range x {
				y := t.Clone()
				for k, v := range y.F {
					switch kind {
					case "add_constant":
						y.F[k] = v + float32(p)
					case "sub_constant":
						y.F[k] = v - float32(p)
					default:
						y.F[k] = v * float32(p)
					}
				}
				out[i] = y
			}
			return out, nil
		}
	default:
		return fmt.Errorf("%w: attack %q", errNotImplemented, ctor.Attack.Kind)
	}
	ppe, err := c.Int("perturbations_per_eval", 1)
	if err != nil {
		return err
	}
	mp := &robust.MinParamPerturbation{Model: nt, Attack: atk, ArgName: ctor.ArgName, ArgMin: ctor.ArgMin, ArgMax: ctor.ArgMax,
		ArgStep: ctor.ArgStep, Mode: ctor.Mode, NumAttempts: ctor.NumAttempts}
	extra, err := c.AdditionalArgs()
	if err != nil {
		return err
	}
	res, err := mp.Evaluate(ctx, in, robust.MinParamOptions{Target: target, PerturbationsPerEval: ppe, Additional: extra})
	if err != nil {
		return err
	}
	var exp struct {
		MinParam  *float64  `json:"min_param"`
		Evaluated []float64 `json:"evaluated_params"`
	}
	if err := json.Unmarshal(c.Expected, &exp); err != nil {
		return err
	}
	if len(res.Evaluated) != len(exp.Evaluated) {
		return fmt.Errorf("evaluated %v, want %v", res.Evaluated, exp.Evaluated)
	}
	for i, v := range exp.Evaluated {
		if math.Abs(res.Evaluated[i]-v) > 1e-12*math.Max(1, math.Abs(v)) {
			return fmt.Errorf("evaluated %v, want %v", res.Evaluated, exp.Evaluated)
		}
	}
	if exp.MinParam == nil {
		if res.Found {
			return fmt.Errorf("found %g, Captum found nothing", res.Param)
		}
		return nil
	}
	if !res.Found {
		return fmt.Errorf("found nothing, want %g", *exp.MinParam)
	}
	tol, err := c.tolAt("min_param")
	if err != nil {
		return err
	}
	if math.Abs(res.Param-*exp.MinParam) > tol.ATol+tol.RTol*math.Abs(*exp.MinParam) {
		return fmt.Errorf("min_param %.17g, want %.17g", res.Param, *exp.MinParam)
	}
	return comparePerturbed(c, res.Perturbed)
}

func runAttackComparator(ctx context.Context, c *Case, m *engine.Model) error {
	var ctor struct {
		Metric  string `json:"metric"`
		Attacks []struct {
			Name        string                     `json:"name"`
			Attack      caseAttack                 `json:"attack"`
			NumAttempts int                        `json:"num_attempts"`
			Before      bool                       `json:"apply_before_preproc"`
			Kwargs      map[string]json.RawMessage `json:"attack_kwargs"`
			ArgNames    []string                   `json:"additional_attack_arg_names"`
		} `json:"attacks"`
	}
	if err := json.Unmarshal(c.Constructor, &ctor); err != nil {
		return fmt.Errorf("constructor: %w", err)
	}
	nt := caseNet(c, m)
	ac := &robust.AttackComparator{Model: nt}
	switch {
	case strings.Contains(ctor.Metric, "softmax"):
		ac.Metric = robust.TargetProb
	case strings.Contains(ctor.Metric, "argmax"):
		ac.Metric = robust.Accuracy
	default:
		return fmt.Errorf("%w: metric %q", errNotImplemented, ctor.Metric)
	}
	kwFloat := func(kw map[string]json.RawMessage, k string) (float64, error) {
		var f float64
		if err := json.Unmarshal(kw[k], &f); err != nil {
			return 0, fmt.Errorf("attack_kwargs.%s: %w", k, err)
		}
		return f, nil
	}
	for _, a := range ctor.Attacks {
		var fn robust.Attack
		passTarget := false
		for _, n := range a.ArgNames {
			passTarget = passTarget || n == "target"
		}
		switch a.Attack.Kind {
		case "FGSM", "PGD":
			loss, lo, hi, err := a.Attack.Constructor.parts()
			if err != nil {
				return err
			}
			if !passTarget {
				return fmt.Errorf("attack %s without a target", a.Name)
			}
			if a.Attack.Kind == "FGSM" {
				eps, err := kwFloat(a.Kwargs, "epsilon")
				if err != nil {
					return err
				}
				f := &robust.FGSM{Net: nt, LossFunc: loss, LowerBound: lo, UpperBound: hi}
				fn = func(ctx context.Context, x []*tensor.Tensor, t []int) ([]*tensor.Tensor, error) {
					return f.Perturb(ctx, x, eps, t, robust.Options{})
				}
			} else {
				r, err := kwFloat(a.Kwargs, "radius")
				if err != nil {
					return err
				}
				s, err := kwFloat(a.Kwargs, "step_size")
				if err != nil {
					return err
				}
				n, err := kwFloat(a.Kwargs, "step_num")
				if err != nil {
					return err
				}
				var norm string
				_ = json.Unmarshal(a.Kwargs["norm"], &norm)
				p := &robust.PGD{Net: nt, LossFunc: loss, LowerBound: lo, UpperBound: hi}
				fn = func(ctx context.Context, x []*tensor.Tensor, t []int) ([]*tensor.Tensor, error) {
					return p.Perturb(ctx, x, r, s, int(n), t, robust.PGDOptions{Norm: norm})
				}
			}
		case "add_schedule", "scale_schedule":
			consts, scale := a.Attack.Constants, a.Attack.Kind == "scale_schedule"
			if len(consts) == 0 {
				return fmt.Errorf("attack %s has no constants", a.Name)
			}
			calls := 0
			fn = func(_ context.Context, x []*tensor.Tensor, _ []int) ([]*tensor.Tensor, error) {
				k := float32(consts[calls%len(consts)])
				calls++
				out := make([]*tensor.Tensor, len(x))
				for i, t := range x {
					y := t.Clone()
					for j, v := range y.F {
						if scale {
							y.F[j] = v * k
						} else {
							y.F[j] = v + k
						}
					}
					out[i] = y
				}
				return out, nil
			}
		default:
			return fmt.Errorf("%w: attack %q", errNotImplemented, a.Attack.Kind)
		}
		if err := ac.AddAttack(a.Name, fn, a.NumAttempts); err != nil {
			return err
		}
	}
	var calls []struct {
		Inputs []json.RawMessage `json:"inputs"`
		PPE    int               `json:"perturbations_per_eval"`
		Kwargs struct {
			Target json.RawMessage `json:"target"`
		} `json:"kwargs"`
	}
	if err := json.Unmarshal(c.Params["evaluate_calls"], &calls); err != nil {
		return fmt.Errorf("evaluate_calls: %w", err)
	}
	var exp struct {
		Evaluate []map[string]json.RawMessage `json:"evaluate"`
		Summary  map[string]json.RawMessage   `json:"summary"`
	}
	if err := json.Unmarshal(c.Expected, &exp); err != nil {
		return err
	}
	if len(exp.Evaluate) != len(calls) {
		return fmt.Errorf("%d evaluate calls, %d results", len(calls), len(exp.Evaluate))
	}
	tolE, err := c.tolAt("evaluate")
	if err != nil {
		return err
	}
	tolS, err := c.tolAt("summary")
	if err != nil {
		return err
	}
	for i, call := range calls {
		in := make([]*tensor.Tensor, len(call.Inputs))
		for j, r := range call.Inputs {
			if in[j], err = c.Tensor(r); err != nil {
				return err
			}
		}
		target, err := intOrList(call.Kwargs.Target)
		if err != nil {
			return err
		}
		got, err := ac.Evaluate(ctx, in, call.PPE, target, nil)
		if err != nil {
			return err
		}
		gotMap := map[string]map[string]*tensor.Tensor{}
		for name, st := range got.Attacks {
			mm := map[string]*tensor.Tensor{"mean": st.Mean}
			if st.Min != nil {
				mm["min"], mm["max"] = st.Min, st.Max
			}
			gotMap[name] = mm
		}
		if err := sameKeys(exp.Evaluate[i], append(ac.Names(), robust.OriginalKey)); err != nil {
			return fmt.Errorf("evaluate[%d]: %w", i, err)
		}
		for key, raw := range exp.Evaluate[i] {
			if key == robust.OriginalKey {
				if err := compareRaw(c, raw, got.Original, tolE); err != nil {
					return fmt.Errorf("evaluate[%d].%s: %w", i, key, err)
				}
				continue
			}
			var stats map[string]json.RawMessage
			if err := json.Unmarshal(raw, &stats); err != nil {
				return err
			}
			var names []string
			for k := range gotMap[key] {
				names = append(names, k)
			}
			if err := sameKeys(stats, names); err != nil {
				return fmt.Errorf("evaluate[%d].%s: %w", i, key, err)
			}
			for sk, sraw := range stats {
				if err := compareRaw(c, sraw, gotMap[key][sk], tolE); err != nil {
					return fmt.Errorf("evaluate[%d].%s.%s: %w", i, key, sk, err)
				}
			}
		}
	}
	sum := ac.Summary()
	if err := sameKeys(exp.Summary, ac.SummaryKeys()); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	for key, raw := range exp.Summary {
		var st struct {
			Mean json.RawMessage `json:"mean"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return err
		}
		if err := compareRaw(c, st.Mean, sum[key], tolS); err != nil {
			return fmt.Errorf("summary.%s: %w", key, err)
		}
	}
	return nil
}

// sameKeys checks that a recorded dict has exactly the given keys.
func sameKeys(m map[string]json.RawMessage, keys []string) error {
	var want []string
	for k := range m {
		want = append(want, k)
	}
	sort.Strings(want)
	got := append([]string(nil), keys...)
	sort.Strings(got)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		return fmt.Errorf("keys %v, want %v", got, want)
	}
	return nil
}

// compareRaw compares got with a recorded tensor (or number).
func compareRaw(c *Case, raw json.RawMessage, got *tensor.Tensor, tol Tol) error {
	var want *tensor.Tensor
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		want = tensor.Scalar(float32(f))
	} else {
		var err error
		if want, err = c.Tensor(raw); err != nil {
			return err
		}
	}
	return Compare(got, want, tol)
}
