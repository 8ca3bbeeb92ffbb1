package conformance

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/tensor"
)

// Tol is a tolerance as the oracle states it: an element passes when
// |got-exp| <= ATol + RTol*|exp|; the whole tensor passes when, in addition,
// ||got-exp||_2 / ||exp||_2 <= RelL2 (RelL2 0 skips that test).
type Tol struct {
	ATol  float64 `json:"atol"`
	RTol  float64 `json:"rtol"`
	RelL2 float64 `json:"rel_l2_tol"`
}

// Compare returns nil when got matches exp within tol, else an error that
// says where and by how much they differ.
func Compare(got, exp *tensor.Tensor, tol Tol) error {
	if got == nil {
		return fmt.Errorf("no result")
	}
	if !tensor.SameShape(got.Shape, exp.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, exp.Shape)
	}
	n := exp.Len()
	bad, worst := 0, -1
	worstExcess := 0.0
	var num, den float64
	for i := 0; i < n; i++ {
		g, e := got.Float64At(i), exp.Float64At(i)
		d := math.Abs(g - e)
		num += d * d
		den += e * e
		lim := tol.ATol + tol.RTol*math.Abs(e)
		if d > lim || math.IsNaN(d) {
			bad++
			if ex := d - lim; worst < 0 || ex > worstExcess || math.IsNaN(d) {
				worst, worstExcess = i, ex
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d elements differ; worst at flat index %d: got %.7g, want %.7g (atol %.3g, rtol %.3g)",
			bad, n, worst, got.Float64At(worst), exp.Float64At(worst), tol.ATol, tol.RTol)
	}
	if tol.RelL2 > 0 {
		rel := math.Sqrt(num)
		if den > 0 {
			rel /= math.Sqrt(den)
		}
		if rel > tol.RelL2 {
			return fmt.Errorf("relative L2 error %.3g exceeds %.3g", rel, tol.RelL2)
		}
	}
	return nil
}
