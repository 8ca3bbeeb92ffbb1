package explain

import (
	"errors"
	"fmt"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/tensor"
)

// What a front end that runs the model itself before explaining (an HTTP
// server answering a prediction and its explanation at once) needs to
// check a request before it queues it, and to reuse the model's output
// it already has rather than run the model again for the target.

// Check resolves a request's method and parameters as Run does (the
// method's defaults with Params overlaid; with NoFiles, parameters naming
// files refused) without building or running anything: for front ends
// that refuse a bad request before it waits for its turn, and report the
// parameters in effect. Its errors are RequestErrors.
func Check(r Request) (methods.Spec, methods.Values, error) {
	var opts []methods.Option
	if r.NoFiles {
		opts = append(opts, methods.NoFiles())
	}
	return resolve(r.Method, r.Params, opts...)
}

// Indices targets one index tuple per example: idx[e] for example e
// (ParseTarget's "(0,2),(1,3)", or "1,4" for tuples of one index).
func Indices(idx ...[]int) Target {
	each := make([][]int, len(idx))
	for e, t := range idx {
		each[e] = append([]int(nil), t...)
	}
	return Target{each: each}
}

// Examples returns the index tuple the target names for each of n
// examples (nil for none), checked: negative indices, a count per example
// that is not n, and, when the model's output y ([N, ...]) on these
// examples is given, indices beyond its dimensions. The predicted class
// is read from y (the largest of its scores [N, C]), so that a front end
// that ran the model already (for the prediction it answers) does not run
// it again; without y a predicted target is an error. Its errors are
// RequestErrors.
func (t Target) Examples(n int, y *tensor.Tensor) ([][]int, error) {
	var each [][]int
	switch {
	case t.predicted:
		if y == nil {
			return nil, &RequestError{errors.New("target pred: the model's output is needed to know the predicted classes")}
		}
		top, _, err := attr.TopClasses(y)
		if err != nil {
			return nil, &RequestError{fmt.Errorf("target pred needs scores [N, classes] (%v): give an output index", err)}
		}
		each = make([][]int, len(top))
		for e, c := range top {
			each[e] = []int{c}
		}
	case t.all != nil:
		each = make([][]int, n)
		for e := range each {
			each[e] = t.all
		}
	case t.each != nil:
		if len(t.each) != n {
			return nil, &RequestError{fmt.Errorf("target %s: %d indices for %d examples: give one per example", t, len(t.each), n)}
		}
		each = t.each
	default:
		return nil, nil
	}
	for _, idx := range each {
		if err := checkIndex(idx, y); err != nil {
			return nil, &RequestError{err}
		}
	}
	return each, nil
}

// checkIndex checks an index tuple: no index negative and, with the
// model's output y, each within its dimension (a tuple shorter than y's
// example dimensions indexes the leading ones).
func checkIndex(idx []int, y *tensor.Tensor) error {
	for _, v := range idx {
		if v < 0 {
			return fmt.Errorf("target %s: index %d is negative", indexText(idx), v)
		}
	}
	if y == nil || y.Rank() < 2 {
		return nil
	}
	dims := y.Shape[1:]
	if len(idx) > len(dims) {
		return fmt.Errorf("target %s: %d indices for outputs of shape %v per example", indexText(idx), len(idx), dims)
	}
	for d, v := range idx {
		if v >= dims[d] {
			if len(dims) == 1 {
				return fmt.Errorf("target %d: the model has %d outputs per example", v, dims[0])
			}
			return fmt.Errorf("target %s: index %d is beyond the output's dimension %d of %d (outputs of shape %v per example)", indexText(idx), v, d, dims[d], dims)
		}
	}
	return nil
}

// indexText writes one example's index tuple: "3", or "(0,2)".
func indexText(idx []int) string {
	if len(idx) == 1 {
		return fmt.Sprint(idx[0])
	}
	return tuple(idx)
}

// hasDelta reports whether a method, with its resolved parameters, gives
// a convergence delta when asked (attr.Options.Delta): NoiseTunnel only
// around an inner method that has one (it fails otherwise).
func hasDelta(method string, vals methods.Values) bool {
	if method != "NoiseTunnel" {
		return true // the others that have none ignore Delta
	}
	switch vals["inner"] {
	case "IntegratedGradients", "DeepLift":
		return true
	}
	return false
}
