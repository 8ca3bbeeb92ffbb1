package linear

import (
	"math"
	"testing"
)

// hingeObjective is Hinge's objective with the intercept penalized as a
// weight: 1/n sum max(0, 1 - y (x·b + c)) + alpha/2 (||b||^2 + c^2).
func hingeObjective(X [][]float64, y []float64, b []float64, c, alpha float64) float64 {
	s := 0.0
	for i, row := range X {
		m := c
		for j, v := range row {
			m += b[j] * v
		}
		s += math.Max(0, 1-y[i]*m)
	}
	r := c * c
	for _, v := range b {
		r += v * v
	}
	return s/float64(len(X)) + alpha/2*r
}

// The fit is a minimizer of the objective: no coordinate step improves it,
// and it separates well-separated classes.
func TestHingeMinimizer(t *testing.T) {
	var X [][]float64
	var y []float64
	for i := 0; i < 40; i++ {
		s := 1.0
		if i%2 == 1 {
			s = -1
		}
		X = append(X, []float64{s*1.5 + math.Sin(float64(i)), math.Cos(float64(i) * 0.7), 0.3 * math.Sin(float64(i)*2.3)})
		y = append(y, s)
	}
	const alpha = 0.01
	m, err := Hinge{Alpha: alpha, FitIntercept: true, Tol: 1e-10, MaxIter: 100000}.Fit(X, y, nil)
	if err != nil {
		t.Fatal(err)
	}
	f0 := hingeObjective(X, y, m.Weights, m.Bias, alpha)
	for j := 0; j <= len(m.Weights); j++ {
		for _, h := range []float64{1e-3, -1e-3} {
			b := append([]float64(nil), m.Weights...)
			c := m.Bias
			if j == len(b) {
				c += h
			} else {
				b[j] += h
			}
			if f := hingeObjective(X, y, b, c, alpha); f < f0-1e-9 {
				t.Errorf("coordinate %d step %g lowers the objective %g -> %g", j, h, f0, f)
			}
		}
	}
	wrong := 0
	for i, row := range X {
		if m.Predict(row)*y[i] <= 0 {
			wrong++
		}
	}
	if wrong > 4 {
		t.Errorf("%d of %d rows misclassified", wrong, len(X))
	}
	if _, err := (Hinge{Alpha: -1}).Fit(X, y, nil); err == nil {
		t.Error("negative alpha accepted")
	}
}
