package linear

import (
	"math"
	"math/rand/v2"
	"testing"
)

func data(seed uint64, n, d int) ([][]float64, []float64, []float64) {
	r := rand.New(rand.NewPCG(seed, 9))
	X := make([][]float64, n)
	y := make([]float64, n)
	w := make([]float64, n)
	for i := range X {
		X[i] = make([]float64, d)
		for j := range X[i] {
			X[i][j] = r.NormFloat64()
		}
		y[i] = 0.5 + 2*X[i][0] - X[i][d-1] + 0.1*r.NormFloat64()
		w[i] = 0.5 + r.Float64()
	}
	return X, y, w
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g", what, got, want)
	}
}

func TestLeastSquaresExact(t *testing.T) {
	// y = 1 + 2a - 3b exactly.
	X := [][]float64{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {2, 5}}
	y := []float64{1, 3, -2, 0, -10}
	m, err := LeastSquares{FitIntercept: true}.Fit(X, y, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "w0", m.Weights[0], 2, 1e-12)
	near(t, "w1", m.Weights[1], -3, 1e-12)
	near(t, "bias", m.Bias, 1, 1e-12)
}

func TestRankDeficientMinNorm(t *testing.T) {
	// Two identical columns: the minimum-norm solution splits the weight.
	X := [][]float64{{1, 1}, {2, 2}, {3, 3}}
	y := []float64{2, 4, 6}
	m, err := LeastSquares{}.Fit(X, y, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "w0", m.Weights[0], 1, 1e-10)
	near(t, "w1", m.Weights[1], 1, 1e-10)
}

func TestWeightsEqualDuplicates(t *testing.T) {
	X, y, _ := data(1, 12, 3)
	w := make([]float64, len(y))
	var Xd [][]float64
	var yd []float64
	for i := range y {
		w[i] = 1
		Xd, yd = append(Xd, X[i]), append(yd, y[i])
		if i%3 == 0 {
			w[i] = 2
			Xd, yd = append(Xd, X[i]), append(yd, y[i])
		}
	}
	for _, f := range []Fitter{LeastSquares{FitIntercept: true}, Ridge{Alpha: 0.7, FitIntercept: true}} {
		a, _ := f.Fit(X, y, w)
		b, _ := f.Fit(Xd, yd, nil)
		for j := range a.Weights {
			near(t, "weighted vs duplicated", a.Weights[j], b.Weights[j], 1e-10)
		}
		near(t, "bias", a.Bias, b.Bias, 1e-10)
	}
}

func TestRidgeNormalEquations(t *testing.T) {
	X, y, w := data(2, 20, 3)
	m, err := Ridge{Alpha: 2, FitIntercept: false}.Fit(X, y, w)
	if err != nil {
		t.Fatal(err)
	}
	// Gradient of sum w r^2 + alpha |b|^2 vanishes at the solution.
	for j := 0; j < 3; j++ {
		g := 2 * 2 * m.Weights[j]
		for i := range X {
			g -= 2 * w[i] * (y[i] - m.Predict(X[i])) * X[i][j]
		}
		near(t, "ridge gradient", g, 0, 1e-9)
	}
}

func TestLasso(t *testing.T) {
	X, y, w := data(3, 30, 4)
	big, err := Lasso{Alpha: 100, FitIntercept: true}.Fit(X, y, w)
	if err != nil {
		t.Fatal(err)
	}
	ws, wy := 0.0, 0.0
	for i := range y {
		ws += w[i]
		wy += w[i] * y[i]
	}
	for _, v := range big.Weights {
		near(t, "weight under a huge alpha", v, 0, 0)
	}
	near(t, "bias under a huge alpha", big.Bias, wy/ws, 1e-12)
	// Optimality (subgradient) conditions of 1/(2n) sum s_i r_i^2 + alpha |b|_1.
	const alpha = 0.05
	m, _ := Lasso{Alpha: alpha, FitIntercept: true}.Fit(X, y, w)
	n := float64(len(y))
	for j := range m.Weights {
		g := 0.0
		for i := range X {
			g += w[i] * n / ws * (y[i] - m.Predict(X[i])) * X[i][j] / n
		}
		if m.Weights[j] != 0 {
			near(t, "lasso stationarity", g, alpha*math.Copysign(1, m.Weights[j]), 1e-9)
		} else if math.Abs(g) > alpha+1e-9 {
			t.Errorf("zero weight %d with |gradient| %g > alpha", j, g)
		}
	}
}

func TestSGDMatchesClosedForms(t *testing.T) {
	X, y, w := data(4, 25, 3)
	ls, _ := LeastSquares{FitIntercept: true}.Fit(X, y, w)
	sg, err := SGD{FitIntercept: true}.Fit(X, y, w)
	if err != nil {
		t.Fatal(err)
	}
	for j := range ls.Weights {
		near(t, "SGD without penalty vs least squares", sg.Weights[j], ls.Weights[j], 1e-8)
	}
	near(t, "bias", sg.Bias, ls.Bias, 1e-8)
	// The L1 objective equals Lasso's up to scaling: alpha_sgd = alpha_lasso.
	la, _ := Lasso{Alpha: 0.05, FitIntercept: true}.Fit(X, y, w)
	s1, _ := SGD{Penalty: L1, Alpha: 0.05, FitIntercept: true}.Fit(X, y, w)
	for j := range la.Weights {
		near(t, "SGD L1 vs Lasso", s1.Weights[j], la.Weights[j], 1e-7)
	}
}

func TestBadInput(t *testing.T) {
	X, y, _ := data(5, 5, 2)
	cases := []struct {
		X [][]float64
		y []float64
		w []float64
	}{
		{nil, nil, nil},
		{X, y[:3], nil},
		{X, y, []float64{1, 1}},
		{X, y, []float64{1, -1, 1, 1, 1}},
		{X, y, []float64{0, 0, 0, 0, 0}},
		{[][]float64{{1, 2}, {1}}, []float64{1, 2}, nil},
	}
	for i, c := range cases {
		if _, err := (LeastSquares{}).Fit(c.X, c.y, c.w); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
	if _, err := (Lasso{Alpha: -1}).Fit(X, y, nil); err == nil {
		t.Error("negative alpha: no error")
	}
}
