package metrics

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// Curve is a deletion or insertion curve of one example: the target output
// after removing (or adding) the first Fractions[k] of the features in
// order of attribution, and the area under it.
type Curve struct {
	Fractions []float64
	Outputs   []float64
	AUC       float64 // trapezoid area over fraction in [0, 1]
}

// DeletionCurves removes features (elements) from the inputs in decreasing
// order of attribution, replacing them by the baseline, and records the
// target output after each of steps equal chunks (Petsiuk, Das and Saenko,
// "RISE: Randomized Input Sampling for Explanation of Black-box Models",
// BMVC 2018): a faithful explanation makes the output fall fast (small
// area). With insertion, features are added to the baseline in the same
// order instead, and a faithful explanation makes it rise fast. The
// baseline of an input is o.Baselines' (its values repeated to fill the
// input: one row serves every example), zero where absent. Cost: steps+1 forward rows per example, in one model call per
// example.
func DeletionCurves(ctx context.Context, m attr.Model, inputs, attributions []*tensor.Tensor, o attr.Options, steps int, insertion bool) ([]Curve, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	if steps < 1 {
		return nil, fmt.Errorf("metrics: steps must be positive")
	}
	if len(attributions) != len(inputs) {
		return nil, fmt.Errorf("metrics: %d attributions for %d inputs", len(attributions), len(inputs))
	}
	xs := make([]*tensor.Tensor, len(inputs))
	base := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		xs[i] = x.AsFloat32()
		base[i] = tensor.New(x.Shape...)
		if o.Baselines != nil && o.Baselines[i] != nil {
			b := o.Baselines[i].AsFloat32()
			for e := range base[i].F {
				base[i].F[e] = b.F[e%b.Len()]
			}
		}
	}
	// from is what the curve starts from, to what the features become.
	from, to := xs, base
	if insertion {
		from, to = base, xs
	}
	curves := make([]Curve, n)
	for r := 0; r < n; r++ {
		// Features of this example, all inputs, by decreasing attribution.
		type feat struct {
			in, e int
			v     float32
		}
		var fs []feat
		for i, a := range attributions {
			row := a.Len() / n
			for e := 0; e < row; e++ {
				fs = append(fs, feat{i, r*row + e, a.F[r*row+e]})
			}
		}
		sort.SliceStable(fs, func(p, q int) bool { return fs[p].v > fs[q].v })
		// Row s of the batch has the first s/steps of the features changed.
		batch := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			row := x.Len() / n
			batch[i] = tensor.New(append([]int{steps + 1}, x.Shape[1:]...)...)
			for s := 0; s <= steps; s++ {
				copy(batch[i].F[s*row:(s+1)*row], from[i].F[r*row:(r+1)*row])
			}
		}
		c := Curve{Fractions: make([]float64, steps+1)}
		for s := 0; s <= steps; s++ {
			c.Fractions[s] = float64(s) / float64(steps)
			for _, f := range fs[:s*len(fs)/steps] {
				row := inputs[f.in].Len() / n
				batch[f.in].F[s*row+f.e-r*row] = to[f.in].F[f.e]
			}
		}
		v, err := targets(ctx, m, batch, rowsOptions(o, n, r, r+1, steps+1), 1, steps+1)
		if err != nil {
			return nil, err
		}
		for _, x := range v {
			c.Outputs = append(c.Outputs, float64(x))
		}
		for s := 1; s <= steps; s++ {
			c.AUC += (c.Outputs[s] + c.Outputs[s-1]) / 2 / float64(steps)
		}
		curves[r] = c
	}
	return curves, nil
}

// CSV returns the curve as comma-separated "fraction,output" lines with a
// header.
func (c Curve) CSV() string {
	var b strings.Builder
	b.WriteString("fraction,output\n")
	for i := range c.Fractions {
		fmt.Fprintf(&b, "%g,%g\n", c.Fractions[i], c.Outputs[i])
	}
	return b.String()
}
