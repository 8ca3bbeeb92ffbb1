package linear

import (
	"fmt"
	"math"
)

// Hinge is a linear classifier for labels -1 and +1 (y <= 0 counts as -1)
// that minimizes scikit-learn's SGDClassifier objective (hinge loss, L2
// penalty): 1/n sum_i w_i max(0, 1 - y_i (x_i·b + c)) + Alpha/2 ||b||^2,
// with the weights rescaled to sum to n. It is solved to its minimizer by
// dual coordinate descent (Hsieh et al., "A Dual Coordinate Descent Method
// for Large-scale Linear SVM", ICML 2008) in a fixed order, so it needs no
// random numbers; the intercept is a feature of constant value 1 whose
// weight carries the same small penalty. The fit is a separating direction
// such as TCAV's concept activation vectors. Cost: O(MaxIter * n * d).
type Hinge struct {
	// Alpha is the L2 penalty; 0 means 0.01 (TCAV's value).
	Alpha        float64
	FitIntercept bool
	// MaxIter bounds the sweeps over the data; 0 means 1000.
	MaxIter int
	// Tol is the projected-gradient gap at which descent stops; 0 means
	// 1e-6.
	Tol float64
}

// Fit fits the classifier; y holds the labels (positive: +1, else -1).
func (h Hinge) Fit(X [][]float64, y, w []float64) (*Model, error) {
	n, d, w, err := check(X, y, w)
	if err != nil {
		return nil, err
	}
	alpha := h.Alpha
	if alpha == 0 {
		alpha = 0.01
	}
	if alpha < 0 || math.IsNaN(alpha) || math.IsInf(alpha, 0) {
		return nil, fmt.Errorf("linear: hinge alpha %g must be positive", h.Alpha)
	}
	maxIter := h.MaxIter
	if maxIter <= 0 {
		maxIter = 1000
	}
	tol := h.Tol
	if tol <= 0 {
		tol = 1e-6
	}
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	// Primal 1/2||b||^2 + sum_i C_i hinge_i with C_i = w_i*n/sum(w) / (n*alpha).
	bias := 0.0
	if h.FitIntercept {
		bias = 1
	}
	lab := make([]float64, n)
	c := make([]float64, n)
	q := make([]float64, n)
	for i := range X {
		lab[i] = -1
		if y[i] > 0 {
			lab[i] = 1
		}
		c[i] = w[i] / sum / alpha
		q[i] = bias * bias
		for _, v := range X[i] {
			q[i] += v * v
		}
	}
	a := make([]float64, n)
	b := make([]float64, d)
	b0 := 0.0
	for it := 0; it < maxIter; it++ {
		lo, hi := math.Inf(1), math.Inf(-1)
		for i, row := range X {
			if q[i] == 0 {
				continue
			}
			s := b0 * bias
			for j, v := range row {
				s += b[j] * v
			}
			g := lab[i]*s - 1
			pg := g
			switch {
			case a[i] == 0:
				pg = math.Min(g, 0)
			case a[i] >= c[i]:
				pg = math.Max(g, 0)
			}
			lo, hi = math.Min(lo, pg), math.Max(hi, pg)
			if pg == 0 {
				continue
			}
			na := math.Min(math.Max(a[i]-g/q[i], 0), c[i])
			if da := (na - a[i]) * lab[i]; da != 0 {
				for j, v := range row {
					b[j] += da * v
				}
				b0 += da * bias
			}
			a[i] = na
		}
		if hi-lo < tol {
			break
		}
	}
	return &Model{Weights: b, Bias: b0 * bias}, nil
}
