// Package explain is what loupe's front ends share to answer a request:
// run an attribution method by name on a network (Run), read the target
// from text (ParseTarget), and draw one example's attributions over its
// picture (Draw). Around them: the model's top classes, named (Predict,
// TopK, ReadClassNames), the sign a method's maps are best drawn in
// (DefaultSign), whether it reads a layer (TakesLayer), input shapes
// checked in the caller's terms (CheckInputs, ShapeError), and the
// nearest names for a misspelt one (Nearest), a request checked before
// it runs (Check) and targets read from an output already computed
// (Target.Examples). The command line (loupe explain), Insights and loupe
// serve use it, and so should any other front end (a batch pipeline), so
// that a request means the same everywhere.
package explain

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/tensor"
)

// Request asks for one method's attributions, by name and text, as a user
// gives them.
type Request struct {
	// Method is Captum's name of the method (methods.Names).
	Method string
	// Params are name=value pairs overlaid on the method's defaults.
	Params []string
	// Layer names the layer of layer and neuron methods: a module path
	// (layer4, fc) or a tensor name.
	Layer string
	// Target is the output explained (the zero Target: none).
	Target Target
	// Baselines holds one baseline per input: a tensor that broadcasts to
	// the input or, for methods whose baselines are a distribution
	// (methods.Spec.Distribution), rows to draw from. Empty: Baseline.
	Baselines []*tensor.Tensor
	// Baseline is, when Baselines is nil, a constant baseline for every
	// input (0: the method's own, zeros); distribution methods get two
	// rows, zeros and Baseline (methods.DefaultDistribution).
	Baseline float32
	// Additional feeds the network's extra inputs (attr.Net.Extra), in
	// order: Captum's additional_forward_args.
	Additional []*tensor.Tensor
	// Progress, if set, is called as rows are evaluated.
	Progress attr.Progress
	// Delta asks for the convergence delta of methods that have one
	// (Result.Delta); the others ignore it.
	Delta bool
	// MemoryBudget is attr.Options.MemoryBudget: the bytes the method may
	// hold at once (0: attr.DefaultMemoryBudget).
	MemoryBudget int64
	// NoFiles refuses parameters that name files on the machine that runs
	// the method (methods.NoFiles): for requests from the network.
	NoFiles bool
}

// Result is a request's answer.
type Result struct {
	// Attributions holds one tensor per input (nil for an input a method
	// does not attribute).
	Attributions []*tensor.Tensor
	// Targets is the index tuple explained for each example (the
	// predicted class resolved), or nil when the request has no target.
	Targets [][]int
	// Params are the method's parameters as run: its defaults with the
	// request's overlaid.
	Params methods.Values
	// Delta is the convergence delta per example ([N]) when the request
	// asked for it and the method has one, else nil.
	Delta *tensor.Tensor
}

// ErrUnknownMethod is the error (wrapped in a RequestError) for a method
// name methods.Lookup does not know.
var ErrUnknownMethod = errors.New("unknown method")

// RequestError is an error in the request itself, before anything runs:
// an unknown method, parameters that do not parse or that the method does
// not take, a method that cannot be built with them, baselines that do not
// match the inputs. Front ends tell it from failures while running
// (errors.As): a usage error, an HTTP 400.
type RequestError struct{ Err error }

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// Resolve returns a method by name and its parameters: the method's
// defaults with the name=value pairs overlaid. Its errors are
// RequestErrors.
func Resolve(method string, params []string) (methods.Spec, methods.Values, error) {
	return resolve(method, params)
}

// resolve is Resolve with methods.Resolve's options. An unknown method or
// parameter name is answered with the nearest known ones ("did you mean").
func resolve(method string, params []string, opts ...methods.Option) (methods.Spec, methods.Values, error) {
	spec, ok := methods.Lookup(method)
	if !ok {
		return methods.Spec{}, nil, &RequestError{fmt.Errorf("%w %q%s", ErrUnknownMethod, method, didYouMean(method, methods.Names()))}
	}
	if err := checkParamNames(method, spec, params); err != nil {
		return methods.Spec{}, nil, &RequestError{err}
	}
	vals, err := methods.Resolve(method, spec, params, opts...)
	if err != nil {
		return methods.Spec{}, nil, &RequestError{err}
	}
	return spec, vals, nil
}

// Run answers a request on a network's attributed inputs (batch first, in
// the order of nt.Inputs): it resolves the method and its parameters,
// builds the method on nt, sets the baselines, resolves the target (the
// predicted class runs the model once) and attributes.
func Run(ctx context.Context, nt *attr.Net, inputs []*tensor.Tensor, r Request) (*Result, error) {
	spec, vals, err := Check(r)
	if err != nil {
		return nil, err
	}
	if nt == nil {
		return nil, &RequestError{errors.New("no model to explain")}
	}
	if len(inputs) != len(nt.Inputs) {
		return nil, &RequestError{fmt.Errorf("the model takes %d attributed inputs (%s), %d given", len(nt.Inputs), strings.Join(nt.Inputs, ", "), len(inputs))}
	}
	if err := checkShapes(nt, inputs); err != nil {
		return nil, err
	}
	m, err := spec.Build(nt, r.Layer, vals)
	if err != nil {
		return nil, &RequestError{err}
	}
	o := attr.Options{Additional: r.Additional, Progress: r.Progress, Delta: r.Delta && hasDelta(r.Method, vals), MemoryBudget: r.MemoryBudget}
	if o.Baselines, err = baselines(spec, inputs, r); err != nil {
		return nil, err
	}
	n := 0
	if len(inputs) > 0 && inputs[0].Rank() > 0 {
		n = inputs[0].Shape[0]
	}
	res := &Result{Params: vals}
	if o.Target, res.Targets, err = r.Target.resolve(ctx, nt, n, inputs, r.Additional); err != nil {
		return nil, err
	}
	a, err := m.Attribute(ctx, inputs, o)
	if err != nil {
		// A method runs the model on batches of its own making (n_steps
		// copies, perturbations): an error the model gives on the
		// caller's batch as it is says what is wrong in the caller's
		// terms.
		if ctx.Err() == nil && !r.Target.IsPredicted() {
			if _, ferr := nt.Eval(ctx, append(append([]*tensor.Tensor(nil), inputs...), r.Additional...)); ferr != nil {
				return nil, fmt.Errorf("the model on inputs of shape %s: %w", shapesOf(inputs), ferr)
			}
		}
		return nil, err
	}
	res.Attributions = a.Attributions
	if r.Delta {
		res.Delta = a.Delta
	}
	return res, nil
}

// baselines returns the baselines a request gives a method: its own, one
// per input; or else, for methods that take a distribution, zeros and the
// request's constant; or else that constant, unless it is zero.
func baselines(spec methods.Spec, inputs []*tensor.Tensor, r Request) ([]*tensor.Tensor, error) {
	switch {
	case len(r.Baselines) > 0:
		if len(r.Baselines) != len(inputs) {
			return nil, &RequestError{fmt.Errorf("%d baselines for %d inputs: give one per input, in order", len(r.Baselines), len(inputs))}
		}
		return r.Baselines, nil
	case spec.Distribution:
		return methods.DefaultDistribution(inputs, r.Baseline), nil
	case r.Baseline != 0:
		out := make([]*tensor.Tensor, len(inputs))
		for i := range out {
			out[i] = tensor.Scalar(r.Baseline)
		}
		return out, nil
	}
	return nil, nil
}
