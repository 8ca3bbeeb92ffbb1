package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/linear"
	"github.com/loupe-ml/loupe/tensor"
)

// A builder makes the method of a case, its inputs and options.
type builder func(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error)

// builders returns the method builders by Captum algorithm name.
func builders() map[string]builder {
	return map[string]builder{
		"Saliency":             buildSaliency,
		"InputXGradient":       buildInputXGradient,
		"IntegratedGradients":  buildIntegratedGradients,
		"DeepLift":             buildDeepLift,
		"DeepLiftShap":         buildDeepLiftShap,
		"GuidedBackprop":       buildGuidedBackprop,
		"Deconvolution":        buildDeconvolution,
		"GradientShap":         buildGradientShap,
		"NoiseTunnel":          buildNoiseTunnel,
		"LRP":                  buildLRP,
		"FeatureAblation":      buildFeatureAblation,
		"Occlusion":            buildOcclusion,
		"ShapleyValueSampling": buildShapleyValueSampling,
		"ShapleyValues":        buildShapleyValues,
		"FeaturePermutation":   buildFeaturePermutation,

		"LayerActivation":           buildLayer,
		"LayerGradientXActivation":  buildLayer,
		"LayerGradCam":              buildLayer,
		"InternalInfluence":         buildLayer,
		"LayerConductance":          buildLayer,
		"LayerIntegratedGradients":  buildLayer,
		"LayerDeepLift":             buildLayer,
		"LayerDeepLiftShap":         buildLayer,
		"LayerGradientShap":         buildLayer,
		"LayerFeatureAblation":      buildLayer,
		"LayerLRP":                  buildLayer,
		"GuidedGradCam":             buildLayer,
		"NeuronGradient":            buildNeuron,
		"NeuronIntegratedGradients": buildNeuron,
		"NeuronGradientShap":        buildNeuron,
		"NeuronDeepLift":            buildNeuron,
		"NeuronDeepLiftShap":        buildNeuron,
		"NeuronGuidedBackprop":      buildNeuron,
		"NeuronDeconvolution":       buildNeuron,
		"NeuronFeatureAblation":     buildNeuron,
		"NeuronConductance":         buildNeuron,
		"Lime":                      buildLime,
		"KernelShap":                buildLime,
		"LimeBase":                  buildLimeBase,
	}
}

// runners returns the case runners by algorithm name.
func runners() map[string]runner {
	out := linearRunners()
	out["LayerAttribution.interpolate"] = runInterpolate
	out["infidelity"] = runInfidelity
	out["sensitivity_max"] = runSensitivity
	for name, r := range llmRunners() {
		out[name] = r
	}
	for name, r := range camRunners() {
		out[name] = r
	}
	maps.Copy(out, robustRunners())
	maps.Copy(out, conceptRunners())
	maps.Copy(out, influenceRunners())
	for name, b := range builders() {
		out[name] = func(ctx context.Context, c *Case, m *engine.Model) error { return runMethod(ctx, c, m, b) }
	}
	return out
}

// check is one entry of a case's checks.
type check struct {
	Kind           string                     `json:"kind"`
	NRuns          int                        `json:"n_runs_to_average"`
	ParamsOverride map[string]json.RawMessage `json:"params_override"`
	Reference      []json.RawMessage          `json:"reference"`
	Tolerance      float64                    `json:"tolerance"`
}

// runMethod runs every check of a case: exact and replay checks against
// the expected answer, statistical checks against their reference.
func runMethod(ctx context.Context, c *Case, m *engine.Model, b builder) error {
	if len(c.Checks) == 0 {
		return fmt.Errorf("case has no checks")
	}
	for _, raw := range c.Checks {
		var chk check
		if err := json.Unmarshal(raw, &chk); err != nil {
			return err
		}
		var err error
		switch chk.Kind {
		case "exact", "replay":
			err = runExact(ctx, c, m, b, chk.Kind == "replay")
		case "statistical":
			err = runStatistical(ctx, c, m, b, chk)
		case "property":
			err = runProperty(ctx, c, m, b, raw)
		case "exact_analytic":
			err = runAnalytic(ctx, c, m, b, raw)
		default:
			return fmt.Errorf("%w: check kind %q", errNotImplemented, chk.Kind)
		}
		if err != nil {
			return fmt.Errorf("%s check: %w", chk.Kind, err)
		}
	}
	return nil
}

func runExact(ctx context.Context, c *Case, m *engine.Model, b builder, replay bool) error {
	meth, in, o, err := b(c, m)
	if err != nil {
		return err
	}
	if replay {
		if err := applyDraws(c, meth); err != nil {
			return err
		}
	}
	r, err := meth.Attribute(ctx, in, o)
	if err != nil {
		return err
	}
	return checkResult(c, r)
}

func runStatistical(ctx context.Context, c *Case, m *engine.Model, b builder, chk check) error {
	over := *c
	over.Params = map[string]json.RawMessage{}
	for k, v := range c.Params {
		over.Params[k] = v
	}
	for k, v := range chk.ParamsOverride {
		over.Params[k] = v
	}
	runs := max(chk.NRuns, 1)
	var mean []*tensor.Tensor
	for run := 0; run < runs; run++ {
		meth, in, o, err := b(&over, m)
		if err != nil {
			return err
		}
		seed(meth, uint64(run)+1)
		r, err := meth.Attribute(ctx, in, o)
		if err != nil {
			return err
		}
		if mean == nil {
			mean = make([]*tensor.Tensor, len(r.Attributions))
			for i, a := range r.Attributions {
				mean[i] = tensor.New(a.Shape...)
			}
		}
		for i, a := range r.Attributions {
			for e, v := range a.F {
				mean[i].F[e] += v / float32(runs)
			}
		}
	}
	var num, den float64
	for i, raw := range chk.Reference {
		ref, err := c.Tensor(raw)
		if err != nil {
			return err
		}
		if i >= len(mean) || !tensor.SameShape(mean[i].Shape, ref.Shape) {
			return fmt.Errorf("attribution %d does not match the reference's shape %v", i, ref.Shape)
		}
		for e := range ref.F {
			d := float64(mean[i].F[e]) - float64(ref.F[e])
			num += d * d
			den += float64(ref.F[e]) * float64(ref.F[e])
		}
	}
	rel := math.Sqrt(num / den)
	if !(rel <= chk.Tolerance) {
		return fmt.Errorf("relative L2 error %.4g exceeds %.4g", rel, chk.Tolerance)
	}
	return nil
}

// seed sets the seed of a stochastic method.
func seed(meth attr.Method, s uint64) {
	switch t := meth.(type) {
	case *attr.NoiseTunnel:
		t.Seed = s
	case *attr.GradientShap:
		t.Seed = s
	case *attr.ShapleyValueSampling:
		t.Seed = s
	case *attr.FeaturePermutation:
		t.Seed = s
	case *attr.LayerGradientShap:
		t.Seed = s
	case *attr.NeuronGradientShap:
		t.Seed = s
	case *attr.Lime:
		t.Seed = s
	case *attr.KernelShap:
		t.Seed = s
	}
}

// applyDraws makes a stochastic method replay the case's recorded draws.
func applyDraws(c *Case, meth attr.Method) error {
	var rd struct {
		Noisy        []json.RawMessage `json:"noisy_inputs"`
		BaseIdx      [][]int           `json:"baseline_indices"`
		Alphas       []float64         `json:"alphas"`
		Permutations [][]int           `json:"permutations"`
	}
	if err := json.Unmarshal(c.RandomDraws, &rd); err != nil {
		return fmt.Errorf("random_draws: %w", err)
	}
	noisy := make([]*tensor.Tensor, 0, len(rd.Noisy))
	for i, raw := range rd.Noisy {
		t, err := c.Tensor(raw)
		if err != nil {
			return fmt.Errorf("random_draws.noisy_inputs[%d]: %w", i, err)
		}
		noisy = append(noisy, t)
	}
	switch t := meth.(type) {
	case *attr.Lime:
		return setLimeSamples(c, &t.Samples)
	case *attr.KernelShap:
		return setLimeSamples(c, &t.Samples)
	case *attr.LimeBase:
		var lb struct {
			Samples json.RawMessage `json:"interpretable_samples"`
		}
		if err := json.Unmarshal(c.RandomDraws, &lb); err != nil {
			return err
		}
		st, err := c.Tensor(lb.Samples)
		if err != nil {
			return err
		}
		t.Samples = rows(st)
	case *attr.NoiseTunnel:
		t.Noisy = noisy
	case *attr.GradientShap:
		t.Draws = &attr.ShapDraws{Noisy: noisy, BaselineIndices: rd.BaseIdx, Alphas: rd.Alphas}
	case *attr.ShapleyValueSampling:
		t.Permutations = rd.Permutations
	case *attr.FeaturePermutation:
		t.Permutations = rd.Permutations
	case *attr.LayerGradientShap:
		t.Draws = &attr.ShapDraws{Noisy: noisy, BaselineIndices: rd.BaseIdx, Alphas: rd.Alphas}
	case *attr.NeuronGradientShap:
		t.Draws = &attr.ShapDraws{Noisy: noisy, BaselineIndices: rd.BaseIdx, Alphas: rd.Alphas}
	default:
		return fmt.Errorf("%w: replay for %T", errNotImplemented, meth)
	}
	return nil
}

// setup decodes what every attribution case has: the net, the inputs and
// the common options (target, additional inputs, baselines, delta).
func setup(c *Case, m *engine.Model) (*attr.Net, []*tensor.Tensor, attr.Options, error) {
	var o attr.Options
	nt, err := attr.NewNet(m, c.Model.AdditionalForwardArgInputs...)
	if err != nil {
		return nil, nil, o, err
	}
	nt.Inputs = c.Model.AttributedInputs
	nt.Output = c.Model.ONNXOutput
	in, err := c.Inputs()
	if err != nil {
		return nil, nil, o, err
	}
	if o.Additional, err = c.AdditionalArgs(); err != nil {
		return nil, nil, o, err
	}
	ts, err := c.Target()
	if err != nil {
		return nil, nil, o, err
	}
	switch {
	case ts.All != nil:
		o.Target = attr.Index(ts.All...)
	case ts.Each != nil:
		o.Target = attr.Indices(ts.Each...)
	}
	if o.Baselines, err = c.TensorList("baselines", len(in)); err != nil {
		return nil, nil, o, err
	}
	if o.Delta, err = c.Bool("return_convergence_delta", false); err != nil {
		return nil, nil, o, err
	}
	return nt, in, o, nil
}

// checkResult compares a result with the case's expected attributions (and
// delta, when the case has one) using the case's tolerances.
func checkResult(c *Case, r *attr.Result) error {
	exp, delta, err := c.ExpectedAttributions()
	if err != nil {
		return err
	}
	tols, err := c.ExactTols("attributions")
	if err != nil {
		return err
	}
	if len(r.Attributions) != len(exp) {
		return fmt.Errorf("%d attributions, want %d", len(r.Attributions), len(exp))
	}
	for i := range exp {
		if err := Compare(r.Attributions[i], exp[i], tols[min(i, len(tols)-1)]); err != nil {
			return fmt.Errorf("attributions[%d]: %w", i, err)
		}
	}
	if delta != nil {
		dt, err := c.ExactTols("delta")
		if err != nil {
			return err
		}
		if r.Delta == nil {
			return fmt.Errorf("no delta")
		}
		if err := Compare(r.Delta, delta, dt[0]); err != nil {
			return fmt.Errorf("delta: %w", err)
		}
	}
	return nil
}

func buildSaliency(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	abs, err := c.Bool("abs", true)
	return &attr.Saliency{Net: nt, Signed: !abs}, in, o, err
}

func buildInputXGradient(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	return &attr.InputXGradient{Net: nt}, in, o, err
}

func buildGuidedBackprop(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	return &attr.GuidedBackprop{Net: nt}, in, o, err
}

func buildDeconvolution(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	return &attr.Deconvolution{Net: nt}, in, o, err
}

func buildIntegratedGradients(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	ig := &attr.IntegratedGradients{Net: nt}
	if ig.NSteps, err = c.Int("n_steps", 50); err != nil {
		return nil, nil, o, err
	}
	if ig.Method, err = c.String("method", attr.GaussLegendre); err != nil {
		return nil, nil, o, err
	}
	if ig.InternalBatchSize, err = c.Int("internal_batch_size", 0); err != nil {
		return nil, nil, o, err
	}
	mul, err := c.ConstructorBool("multiply_by_inputs", true)
	ig.Local = !mul
	return ig, in, o, err
}

func buildDeepLift(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	mul, err := c.ConstructorBool("multiply_by_inputs", true)
	return &attr.DeepLift{Net: nt, Local: !mul}, in, o, err
}

func buildDeepLiftShap(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	mul, err := c.ConstructorBool("multiply_by_inputs", true)
	return &attr.DeepLiftShap{Net: nt, Local: !mul}, in, o, err
}

func buildGradientShap(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	gs := &attr.GradientShap{Net: nt}
	if gs.NSamples, err = c.Int("n_samples", 5); err != nil {
		return nil, nil, o, err
	}
	if gs.Stdevs, err = c.Floats("stdevs"); err != nil {
		return nil, nil, o, err
	}
	mul, err := c.ConstructorBool("multiply_by_inputs", true)
	gs.Local = !mul
	return gs, in, o, err
}

func buildNoiseTunnel(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	var ctor struct {
		Method string          `json:"attribution_method"`
		Ctor   json.RawMessage `json:"attribution_method_constructor"`
	}
	if err := json.Unmarshal(c.Constructor, &ctor); err != nil {
		return nil, nil, attr.Options{}, fmt.Errorf("constructor: %w", err)
	}
	b, ok := builders()[ctor.Method]
	if !ok || ctor.Method == "NoiseTunnel" {
		return nil, nil, attr.Options{}, fmt.Errorf("%w: NoiseTunnel around %s", errNotImplemented, ctor.Method)
	}
	innerCase := *c
	innerCase.Constructor = ctor.Ctor
	inner, in, o, err := b(&innerCase, m)
	if err != nil {
		return nil, nil, o, err
	}
	nt := &attr.NoiseTunnel{Method: inner}
	if nt.Type, err = c.String("nt_type", attr.SmoothGrad); err != nil {
		return nil, nil, o, err
	}
	if nt.NSamples, err = c.Int("nt_samples", 5); err != nil {
		return nil, nil, o, err
	}
	if nt.SamplesBatchSize, err = c.Int("nt_samples_batch_size", 0); err != nil {
		return nil, nil, o, err
	}
	if nt.Stdevs, err = c.Floats("stdevs"); err != nil {
		return nil, nil, o, err
	}
	nt.DrawBaselineFromDistrib, err = c.Bool("draw_baseline_from_distrib", false)
	return nt, in, o, err
}

func buildLRP(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	return &attr.LRP{Net: nt}, in, o, err
}

// intList decodes a parameter that is an int or a list of ints.
func intList(raw json.RawMessage) ([]int, error) {
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return []int{one}, nil
	}
	var l []int
	err := json.Unmarshal(raw, &l)
	return l, err
}

// perInputInts decodes sliding_window_shapes / strides: one list per input
// (a list of lists for tuple inputs, one list otherwise; an int stands for
// the same value along every dimension).
func perInputInts(c *Case, key string, in []*tensor.Tensor) ([][]int, error) {
	if !c.Has(key) {
		return nil, nil
	}
	raw := c.Params[key]
	out := make([][]int, len(in))
	if c.InputsIsTuple {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("param %s: %w", key, err)
		}
		if len(list) != len(in) {
			return nil, fmt.Errorf("param %s has %d entries for %d inputs", key, len(list), len(in))
		}
		for i, r := range list {
			v, err := intList(r)
			if err != nil {
				return nil, fmt.Errorf("param %s[%d]: %w", key, i, err)
			}
			out[i] = v
		}
	} else {
		v, err := intList(raw)
		if err != nil {
			return nil, fmt.Errorf("param %s: %w", key, err)
		}
		out[0] = v
	}
	for i, v := range out {
		if len(v) == 1 && in[i].Rank()-1 > 1 {
			for len(out[i]) < in[i].Rank()-1 {
				out[i] = append(out[i], v[0])
			}
		}
	}
	return out, nil
}

// featureMask decodes params.feature_mask (nil when absent).
func featureMask(c *Case, n int) ([]*tensor.Tensor, error) {
	return c.TensorList("feature_mask", n)
}

// forwardModel is the case's net as a forward-only attr.Model.
func forwardModel(c *Case, m *engine.Model) (attr.Model, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	return nt, in, o, err
}

func buildFeatureAblation(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	mod, in, o, err := forwardModel(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	fa := &attr.FeatureAblation{Model: mod}
	if fa.FeatureMask, err = featureMask(c, len(in)); err != nil {
		return nil, nil, o, err
	}
	fa.PerturbationsPerEval, err = c.Int("perturbations_per_eval", 1)
	return fa, in, o, err
}

func buildOcclusion(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	mod, in, o, err := forwardModel(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	oc := &attr.Occlusion{Model: mod}
	if oc.SlidingWindowShapes, err = perInputInts(c, "sliding_window_shapes", in); err != nil {
		return nil, nil, o, err
	}
	if oc.Strides, err = perInputInts(c, "strides", in); err != nil {
		return nil, nil, o, err
	}
	oc.PerturbationsPerEval, err = c.Int("perturbations_per_eval", 1)
	return oc, in, o, err
}

func buildShapleyValueSampling(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	mod, in, o, err := forwardModel(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	s := &attr.ShapleyValueSampling{Model: mod}
	if s.FeatureMask, err = featureMask(c, len(in)); err != nil {
		return nil, nil, o, err
	}
	if s.NSamples, err = c.Int("n_samples", 25); err != nil {
		return nil, nil, o, err
	}
	s.PerturbationsPerEval, err = c.Int("perturbations_per_eval", 1)
	return s, in, o, err
}

func buildShapleyValues(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	mod, in, o, err := forwardModel(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	s := &attr.ShapleyValues{Model: mod}
	if s.FeatureMask, err = featureMask(c, len(in)); err != nil {
		return nil, nil, o, err
	}
	s.PerturbationsPerEval, err = c.Int("perturbations_per_eval", 1)
	return s, in, o, err
}

func buildFeaturePermutation(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	mod, in, o, err := forwardModel(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	s := &attr.FeaturePermutation{Model: mod}
	if s.FeatureMask, err = featureMask(c, len(in)); err != nil {
		return nil, nil, o, err
	}
	s.PerturbationsPerEval, err = c.Int("perturbations_per_eval", 1)
	return s, in, o, err
}

// runProperty checks an efficiency property: with the method's own random
// draws, each example's per-feature attributions sum to the stated value.
func runProperty(ctx context.Context, c *Case, m *engine.Model, b builder, raw json.RawMessage) error {
	var chk struct {
		Property string    `json:"property"`
		Sums     []float64 `json:"expected_sum_per_example"`
		ATol     float64   `json:"atol"`
	}
	if err := json.Unmarshal(raw, &chk); err != nil {
		return err
	}
	if chk.Property != "efficiency" {
		return fmt.Errorf("%w: property %q", errNotImplemented, chk.Property)
	}
	meth, in, o, err := b(c, m)
	if err != nil {
		return err
	}
	seed(meth, 12345)
	r, err := meth.Attribute(ctx, in, o)
	if err != nil {
		return err
	}
	masks, err := featureMask(c, len(in))
	if err != nil {
		return err
	}
	n := in[0].Shape[0]
	for ex := 0; ex < n; ex++ {
		seen := map[string]bool{}
		sum := 0.0
		for i, a := range r.Attributions {
			row := a.Len() / n
			for e := 0; e < row; e++ {
				key := fmt.Sprintf("%d/%d", i, e)
				if masks != nil && masks[i] != nil {
					mk := masks[i]
					key = fmt.Sprint(mk.I[e%mk.Len()])
				}
				if seen[key] {
					continue
				}
				seen[key] = true
				sum += float64(a.F[ex*row+e])
			}
		}
		if d := math.Abs(sum - chk.Sums[ex]); d > chk.ATol {
			return fmt.Errorf("example %d: per-feature attributions sum to %.9g, want %.9g", ex, sum, chk.Sums[ex])
		}
	}
	return nil
}

// pathParams decodes n_steps, method and internal_batch_size.
func pathParams(c *Case, defMethod string) (nsteps int, method string, ibs int, err error) {
	if nsteps, err = c.Int("n_steps", 50); err != nil {
		return
	}
	if method, err = c.String("method", defMethod); err != nil {
		return
	}
	ibs, err = c.Int("internal_batch_size", 0)
	return
}

// buildLayer makes a layer method; the layer is the case's ONNX tensor.
func buildLayer(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	if c.Layer == nil {
		return nil, nil, o, fmt.Errorf("case has no layer")
	}
	layer := c.Layer.ONNXTensor
	mul, err := c.ConstructorBool("multiply_by_inputs", true)
	if err != nil {
		return nil, nil, o, err
	}
	nsteps, method, ibs, err := pathParams(c, attr.GaussLegendre)
	if err != nil {
		return nil, nil, o, err
	}
	switch c.Algorithm {
	case "LayerActivation":
		return &attr.LayerActivation{Net: nt, Layer: layer}, in, o, nil
	case "LayerGradientXActivation":
		return &attr.LayerGradientXActivation{Net: nt, Layer: layer, Local: !mul}, in, o, nil
	case "LayerGradCam":
		relu, err := c.Bool("relu_attributions", false)
		if err != nil {
			return nil, nil, o, err
		}
		sum, err := c.Bool("attr_dim_summation", true)
		return &attr.LayerGradCam{Net: nt, Layer: layer, ReluAttributions: relu, NoDimSummation: !sum}, in, o, err
	case "GuidedGradCam":
		return &attr.GuidedGradCam{Net: nt, Layer: layer}, in, o, nil
	case "InternalInfluence":
		return &attr.InternalInfluence{Net: nt, Layer: layer, Method: method, NSteps: nsteps, InternalBatchSize: ibs}, in, o, nil
	case "LayerConductance":
		return &attr.LayerConductance{Net: nt, Layer: layer, Method: method, NSteps: nsteps, InternalBatchSize: ibs}, in, o, nil
	case "LayerIntegratedGradients":
		return &attr.LayerIntegratedGradients{Net: nt, Layer: layer, Method: method, NSteps: nsteps, InternalBatchSize: ibs, Local: !mul}, in, o, nil
	case "LayerDeepLift":
		return &attr.LayerDeepLift{Net: nt, Layer: layer, Local: !mul}, in, o, nil
	case "LayerDeepLiftShap":
		return &attr.LayerDeepLiftShap{Net: nt, Layer: layer, Local: !mul}, in, o, nil
	case "LayerGradientShap":
		k, err := c.Int("n_samples", 5)
		if err != nil {
			return nil, nil, o, err
		}
		sd, err := c.Floats("stdevs")
		return &attr.LayerGradientShap{Net: nt, Layer: layer, NSamples: k, Stdevs: sd, Local: !mul}, in, o, err
	case "LayerFeatureAblation":
		lf := &attr.LayerFeatureAblation{Net: nt, Layer: layer}
		if c.Has("layer_mask") {
			if lf.LayerMask, err = c.Tensor(c.Params["layer_mask"]); err != nil {
				return nil, nil, o, err
			}
		}
		if c.Has("layer_baselines") {
			lb, err := c.TensorList("layer_baselines", 1)
			if err != nil {
				return nil, nil, o, err
			}
			lf.LayerBaselines = lb[0]
		}
		lf.PerturbationsPerEval, err = c.Int("perturbations_per_eval", 1)
		return lf, in, o, err
	case "LayerLRP":
		return &attr.LayerLRP{Net: nt, Layer: layer}, in, o, nil
	}
	return nil, nil, o, fmt.Errorf("%w: %s", errNotImplemented, c.Algorithm)
}

// buildNeuron makes a neuron method.
func buildNeuron(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	nt, in, o, err := setup(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	if c.Layer == nil {
		return nil, nil, o, fmt.Errorf("case has no layer")
	}
	idx, err := intList(c.Params["neuron_selector"])
	if err != nil {
		return nil, nil, o, fmt.Errorf("neuron_selector: %w", err)
	}
	nr := attr.Neuron{Layer: c.Layer.ONNXTensor, Index: idx}
	mul, err := c.ConstructorBool("multiply_by_inputs", true)
	if err != nil {
		return nil, nil, o, err
	}
	switch c.Algorithm {
	case "NeuronGradient":
		return &attr.NeuronGradient{Net: nt, Neuron: nr}, in, o, nil
	case "NeuronIntegratedGradients":
		nsteps, method, ibs, err := pathParams(c, attr.GaussLegendre)
		return &attr.NeuronIntegratedGradients{Net: nt, Neuron: nr, Method: method, NSteps: nsteps, InternalBatchSize: ibs, Local: !mul}, in, o, err
	case "NeuronConductance":
		nsteps, method, ibs, err := pathParams(c, attr.RiemannTrapezoid)
		return &attr.NeuronConductance{Net: nt, Neuron: nr, Method: method, NSteps: nsteps, InternalBatchSize: ibs, Local: !mul}, in, o, err
	case "NeuronGradientShap":
		k, err := c.Int("n_samples", 5)
		if err != nil {
			return nil, nil, o, err
		}
		sd, err := c.Floats("stdevs")
		return &attr.NeuronGradientShap{Net: nt, Neuron: nr, NSamples: k, Stdevs: sd, Local: !mul}, in, o, err
	case "NeuronDeepLift":
		return &attr.NeuronDeepLift{Net: nt, Neuron: nr, Local: !mul}, in, o, nil
	case "NeuronDeepLiftShap":
		return &attr.NeuronDeepLiftShap{Net: nt, Neuron: nr, Local: !mul}, in, o, nil
	case "NeuronGuidedBackprop":
		return &attr.NeuronGuidedBackprop{Net: nt, Neuron: nr}, in, o, nil
	case "NeuronDeconvolution":
		return &attr.NeuronDeconvolution{Net: nt, Neuron: nr}, in, o, nil
	case "NeuronFeatureAblation":
		fm, err := featureMask(c, len(in))
		if err != nil {
			return nil, nil, o, err
		}
		ppe, err := c.Int("perturbations_per_eval", 1)
		return &attr.NeuronFeatureAblation{Net: nt, Neuron: nr, FeatureMask: fm, PerturbationsPerEval: ppe}, in, o, err
	}
	return nil, nil, o, fmt.Errorf("%w: %s", errNotImplemented, c.Algorithm)
}

// runInterpolate checks LayerAttribution.interpolate, a model-free case.
func runInterpolate(ctx context.Context, c *Case, _ *engine.Model) error {
	in, err := c.Inputs()
	if err != nil {
		return err
	}
	var dims []int
	if err := json.Unmarshal(c.Params["interpolate_dims"], &dims); err != nil {
		return fmt.Errorf("interpolate_dims: %w", err)
	}
	mode, err := c.String("interpolate_mode", "nearest")
	if err != nil {
		return err
	}
	out, err := attr.Interpolate(in[0], dims, mode)
	if err != nil {
		return err
	}
	return checkResult(c, &attr.Result{Attributions: []*tensor.Tensor{out}})
}

// interpretableModel reads the surrogate a Lime case describes in words
// ("SkLearnLasso(alpha=0.01)", "SkLearnLinearRegression()").
func interpretableModel(c *Case) (linear.Fitter, error) {
	var ctor struct {
		Model string `json:"interpretable_model"`
	}
	json.Unmarshal(c.Constructor, &ctor)
	s := ctor.Model
	alpha := 1.0
	if m := regexp.MustCompile(`alpha=([0-9.eE+-]+)`).FindStringSubmatch(s); m != nil {
		a, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return nil, fmt.Errorf("interpretable_model %q: %w", s, err)
		}
		alpha = a
	}
	switch {
	case s == "":
		return nil, nil
	case strings.HasPrefix(s, "SkLearnLasso"):
		return linear.Lasso{Alpha: alpha, FitIntercept: true}, nil
	case strings.HasPrefix(s, "SkLearnLinearRegression"):
		return linear.LeastSquares{FitIntercept: true}, nil
	case strings.HasPrefix(s, "SkLearnRidge"):
		return linear.Ridge{Alpha: alpha, FitIntercept: true}, nil
	}
	return nil, fmt.Errorf("%w: interpretable model %q", errNotImplemented, s)
}

// limeSamples decodes random_draws.per_example[].interpretable_samples.
func limeSamples(c *Case) ([][][]float64, error) {
	var rd struct {
		PerExample []struct {
			Samples json.RawMessage `json:"interpretable_samples"`
		} `json:"per_example"`
	}
	if err := json.Unmarshal(c.RandomDraws, &rd); err != nil {
		return nil, err
	}
	out := make([][][]float64, len(rd.PerExample))
	for i, pe := range rd.PerExample {
		t, err := c.Tensor(pe.Samples)
		if err != nil {
			return nil, err
		}
		out[i] = rows(t)
	}
	return out, nil
}

func buildLime(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	mod, in, o, err := forwardModel(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	fit, err := interpretableModel(c)
	if err != nil {
		return nil, nil, o, err
	}
	fm, err := featureMask(c, len(in))
	if err != nil {
		return nil, nil, o, err
	}
	ns, err := c.Int("n_samples", 50)
	if err != nil {
		return nil, nil, o, err
	}
	ppe, err := c.Int("perturbations_per_eval", 1)
	if c.Algorithm == "KernelShap" {
		return &attr.KernelShap{Model: mod, FeatureMask: fm, NSamples: ns, PerturbationsPerEval: ppe}, in, o, err
	}
	l := &attr.Lime{Model: mod, FeatureMask: fm, NSamples: ns, PerturbationsPerEval: ppe, Interpretable: fit}
	// The similarity, when the case names another than the default
	// cosine kernel of width 1: get_exp_kernel_similarity_function(mode, kernel_width=w).
	var ctor struct {
		Sim string `json:"similarity_func"`
	}
	json.Unmarshal(c.Constructor, &ctor)
	width := 1.0
	if mm := regexp.MustCompile(`kernel_width=([0-9.eE+-]+)`).FindStringSubmatch(ctor.Sim); mm != nil {
		width, _ = strconv.ParseFloat(mm[1], 64)
	}
	switch {
	case strings.Contains(ctor.Sim, "'euclidean'"):
		l.Similarity = func(a, b []*tensor.Tensor, _ []float64) float64 { return attr.EuclideanDistanceKernel(a, b, width) }
	case width != 1:
		l.Similarity = func(a, b []*tensor.Tensor, _ []float64) float64 { return attr.CosineKernel(a, b, width) }
	}
	return l, in, o, err
}

// buildLimeBase supports the LimeBase form the oracle records: features
// are the input's elements, a sample keeps an element (times 1) or zeroes
// it, and the similarity is a Euclidean kernel in the input space.
func buildLimeBase(c *Case, m *engine.Model) (attr.Method, []*tensor.Tensor, attr.Options, error) {
	mod, in, o, err := forwardModel(c, m)
	if err != nil {
		return nil, nil, o, err
	}
	var ctor struct {
		Sim  string `json:"similarity_func"`
		From string `json:"from_interp_rep_transform"`
	}
	json.Unmarshal(c.Constructor, &ctor)
	if !strings.Contains(ctor.Sim, "||") || !strings.Contains(ctor.From, "curr_sample * original_input") {
		return nil, nil, o, fmt.Errorf("%w: LimeBase with %q and %q", errNotImplemented, ctor.Sim, ctor.From)
	}
	width := 1.0
	if mm := regexp.MustCompile(`\(2 \* ([0-9.]+)\^2\)`).FindStringSubmatch(ctor.Sim); mm != nil {
		width, _ = strconv.ParseFloat(mm[1], 64)
	}
	fit, err := interpretableModel(c)
	if err != nil {
		return nil, nil, o, err
	}
	ns, err := c.Int("n_samples", 50)
	lb := &attr.LimeBase{
		Model: mod, NSamples: ns, Interpretable: fit,
		Perturb: func(rng *rand.Rand, inputs []*tensor.Tensor) []float64 {
			z := make([]float64, inputs[0].Len())
			for k := range z {
				z[k] = float64(rng.IntN(2))
			}
			return z
		},
		FromInterp: func(z []float64, inputs []*tensor.Tensor) ([]*tensor.Tensor, error) {
			x := inputs[0].Clone()
			for k := range x.F {
				x.F[k] *= float32(z[k])
			}
			return []*tensor.Tensor{x}, nil
		},
		Similarity: func(orig, sample []*tensor.Tensor, _ []float64) float64 {
			return attr.EuclideanKernel(orig, sample, width)
		},
	}
	return lb, in, o, err
}

func setLimeSamples(c *Case, dst *[][][]float64) error {
	s, err := limeSamples(c)
	*dst = s
	return err
}

// runAnalytic checks a result that does not depend on the random draws
// (Lime or KernelShap on a linear model) against the check's own expected
// tensors, with the method's own RNG.
func runAnalytic(ctx context.Context, c *Case, m *engine.Model, b builder, raw json.RawMessage) error {
	var chk struct {
		Expected []json.RawMessage `json:"expected"`
		Fields   struct {
			Attributions []Tol `json:"attributions"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(raw, &chk); err != nil {
		return err
	}
	meth, in, o, err := b(c, m)
	if err != nil {
		return err
	}
	seed(meth, 777)
	r, err := meth.Attribute(ctx, in, o)
	if err != nil {
		return err
	}
	for i, e := range chk.Expected {
		want, err := c.Tensor(e)
		if err != nil {
			return err
		}
		if i >= len(r.Attributions) || i >= len(chk.Fields.Attributions) {
			return fmt.Errorf("attribution %d missing", i)
		}
		if err := Compare(r.Attributions[i], want, chk.Fields.Attributions[i]); err != nil {
			return fmt.Errorf("attributions[%d]: %w", i, err)
		}
	}
	return nil
}
