package explain

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/internal/methods"
	"github.com/loupe-ml/loupe/tensor"
)

// didYouMean returns " (did you mean X?)" naming the known names nearest
// to name (case aside, by edit distance, at most a quarter of its length
// away, or sharing it as a prefix), or "" when none is near.
func didYouMean(name string, known []string) string {
	near := Nearest(name, known)
	if len(near) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(near, " or ") + "?)"
}

// Nearest returns up to three of the known names nearest to name: those
// equal but for case, then by edit distance when it is at most
// a quarter of the name's length (at least 2), or those starting with the name. For
// "did you mean" hints on misspelt method, parameter and layer names.
func Nearest(name string, known []string) []string {
	type cand struct {
		s string
		d int
	}
	low := strings.ToLower(name)
	limit := max(len(name)/4, 2)
	var cs []cand
	for _, k := range known {
		kl := strings.ToLower(k)
		d := editDistance(low, kl)
		switch {
		case kl == low:
			d = 0
		case d <= limit:
		case len(low) >= 3 && strings.HasPrefix(kl, low):
			d = limit + 1
		default:
			continue
		}
		cs = append(cs, cand{k, d})
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].d < cs[j].d })
	var out []string
	for i := 0; i < len(cs) && i < 3; i++ {
		out = append(out, cs[i].s)
	}
	return out
}

// editDistance is Levenshtein's distance between two strings, by bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkParamNames refuses a parameter the method does not take, naming
// the nearest it does.
func checkParamNames(method string, spec methods.Spec, params []string) error {
	var names []string
	for _, p := range spec.Params {
		names = append(names, p.Name)
	}
	for _, kv := range params {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue // methods.Resolve names the fault
		}
		found := false
		for _, n := range names {
			found = found || n == k
		}
		if found {
			continue
		}
		if len(names) == 0 {
			return fmt.Errorf("%s takes no parameters (got %q)", method, k)
		}
		sort.Strings(names)
		return fmt.Errorf("%s has no parameter %q%s (it takes: %s)", method, k, didYouMean(k, names), strings.Join(names, ", "))
	}
	return nil
}

// ShapeError is a RequestError's cause when the inputs do not have the
// sizes the model declares: Input is the index of the input at fault,
// Got its shape and Want the model's (-1 for a size of any value). Front
// ends add their own hint (the command line suggests resizing).
type ShapeError struct {
	Input int
	Name  string
	Got   []int
	Want  []int
}

func (e *ShapeError) Error() string {
	want := make([]string, len(e.Want))
	for i, d := range e.Want {
		want[i] = fmt.Sprint(d)
		if d < 0 {
			want[i] = "N"
			if i > 0 {
				want[i] = "?"
			}
		}
	}
	return fmt.Sprintf("input %q has shape %v; the model takes [%s]", e.Name, e.Got, strings.Join(want, " "))
}

// CheckInputs checks the inputs' shapes against those the model declares
// (symbolic sizes match anything), as Run does before anything runs: its
// error is a RequestError wrapping a ShapeError, in the caller's shapes.
func CheckInputs(nt *attr.Net, inputs []*tensor.Tensor) error {
	if nt == nil || len(inputs) != len(nt.Inputs) {
		return nil // Run names these faults
	}
	return checkShapes(nt, inputs)
}

// checkShapes compares each input's shape with the sizes the model
// declares for it (symbolic sizes match anything), so that a mismatch is
// told in the caller's shapes rather than in those of the batch a method
// expands them to.
func checkShapes(nt *attr.Net, inputs []*tensor.Tensor) error {
	if nt.Model == nil {
		return nil
	}
	decl := map[string][]int{}
	for _, in := range nt.Model.Inputs() {
		if in.Shape == nil {
			continue
		}
		want := make([]int, len(in.Shape))
		for i, d := range in.Shape {
			want[i] = d.Value
			if d.Param != "" || d.Value <= 0 {
				want[i] = -1
			}
		}
		decl[in.Name] = want
	}
	for i, x := range inputs {
		want, ok := decl[nt.Inputs[i]]
		if !ok || x == nil {
			continue
		}
		bad := len(want) != x.Rank()
		for d := 0; !bad && d < len(want); d++ {
			bad = d > 0 && want[d] >= 0 && want[d] != x.Shape[d]
		}
		if bad {
			return &RequestError{&ShapeError{Input: i, Name: nt.Inputs[i], Got: append([]int(nil), x.Shape...), Want: want}}
		}
	}
	return nil
}

// DefaultSign returns the sign in which a method's maps are best drawn
// by default, as Captum's and pytorch-grad-cam's tutorials draw them
// (viz.ParseSign reads it): "positive" for the CAM family, FullGrad and
// layer activations (maps whose evidence is their positive part: an
// absolute value would paint evidence against the class as support);
// "absolute_value" for plain gradients (Saliency, guided backpropagation,
// deconvolution), whose sign says little; and "all" for the methods whose
// attributions add up to the output's change (Integrated Gradients,
// DeepLift, the Shapley methods, ablation, occlusion, LRP, ...), where
// the sign is half the answer. params are the method's resolved
// parameters (Saliency with abs=false is signed), or nil.
func DefaultSign(method string, params methods.Values) string {
	switch method {
	case "Saliency":
		if abs, err := strconv.ParseBool(params["abs"]); err == nil && !abs {
			return "all"
		}
		return "absolute_value"
	case "NoiseTunnel":
		inner := params["inner"]
		if inner == "" {
			inner = "Saliency"
		}
		if params["nt_type"] == "smoothgrad_sq" || params["nt_type"] == "vargrad" {
			return "positive"
		}
		return DefaultSign(inner, nil)
	case "GuidedBackprop", "Deconvolution", "GuidedGradCam", "NeuronGradient", "NeuronGuidedBackprop", "NeuronDeconvolution":
		return "absolute_value"
	case "FullGrad", "LayerActivation":
		return "positive"
	}
	if strings.Contains(method, "CAM") || strings.Contains(method, "Cam") {
		return "positive"
	}
	return "all"
}

// TakesLayer reports whether a method reads Request.Layer; the others
// ignore it (front ends warn).
func TakesLayer(method string) bool {
	spec, ok := methods.Lookup(method)
	return ok && spec.Layer
}
