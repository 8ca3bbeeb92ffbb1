// Package linear fits the small weighted linear models that Lime and
// KernelShap use as interpretable surrogates: least squares, ridge, lasso
// (coordinate descent, scikit-learn's objective), and the objectives of
// Captum's SGD-trained models, solved to their minimizer. Everything is
// float64; data are dense rows.
package linear

import (
	"errors"
	"fmt"
	"math"
)

// Model is a fitted linear model: y ≈ x·Weights + Bias.
type Model struct {
	Weights []float64
	Bias    float64
}

// Predict returns x·Weights + Bias.
func (m *Model) Predict(x []float64) float64 {
	s := m.Bias
	for j, w := range m.Weights {
		s += w * x[j]
	}
	return s
}

// Fitter fits a model to rows X (n rows of d features), targets y and
// sample weights w (nil: all 1).
type Fitter interface {
	Fit(X [][]float64, y, w []float64) (*Model, error)
}

// check validates the data and returns n, d and the weights (ones when w
// is nil).
func check(X [][]float64, y, w []float64) (int, int, []float64, error) {
	n := len(X)
	if n == 0 {
		return 0, 0, nil, errors.New("linear: no samples")
	}
	if len(y) != n {
		return 0, 0, nil, fmt.Errorf("linear: %d targets for %d samples", len(y), n)
	}
	d := len(X[0])
	for i, row := range X {
		if len(row) != d {
			return 0, 0, nil, fmt.Errorf("linear: sample %d has %d features, sample 0 has %d", i, len(row), d)
		}
		for _, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, 0, nil, fmt.Errorf("linear: sample %d has a non-finite feature", i)
			}
		}
		if math.IsNaN(y[i]) || math.IsInf(y[i], 0) {
			return 0, 0, nil, fmt.Errorf("linear: target %d is not finite", i)
		}
	}
	if w == nil {
		w = make([]float64, n)
		for i := range w {
			w[i] = 1
		}
	}
	if len(w) != n {
		return 0, 0, nil, fmt.Errorf("linear: %d sample weights for %d samples", len(w), n)
	}
	sum := 0.0
	for i, v := range w {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, 0, nil, fmt.Errorf("linear: sample weight %d is %g; weights must be finite and non-negative", i, v)
		}
		sum += v
	}
	if sum == 0 {
		return 0, 0, nil, errors.New("linear: all sample weights are zero")
	}
	return n, d, w, nil
}

// penalized checks a penalty and the data, and returns the sample weights
// rescaled to sum to total.
func penalized(alpha float64, X [][]float64, y, w []float64, total float64) (int, int, []float64, error) {
	if alpha < 0 || math.IsNaN(alpha) {
		return 0, 0, nil, fmt.Errorf("linear: alpha %g must be non-negative", alpha)
	}
	n, d, w, err := check(X, y, w)
	if err != nil {
		return 0, 0, nil, err
	}
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = w[i] * total / sum
	}
	return n, d, out, nil
}

// center returns the weighted column means of X and the weighted mean of y
// (zeros when intercept is false), and X, y with those subtracted.
func center(X [][]float64, y, w []float64, intercept bool) ([]float64, float64, [][]float64, []float64) {
	n, d := len(X), len(X[0])
	xm := make([]float64, d)
	ym := 0.0
	if intercept {
		sw := 0.0
		for i := 0; i < n; i++ {
			sw += w[i]
			ym += w[i] * y[i]
			for j := 0; j < d; j++ {
				xm[j] += w[i] * X[i][j]
			}
		}
		ym /= sw
		for j := range xm {
			xm[j] /= sw
		}
	}
	xc := make([][]float64, n)
	yc := make([]float64, n)
	for i := 0; i < n; i++ {
		xc[i] = make([]float64, d)
		for j := 0; j < d; j++ {
			xc[i][j] = X[i][j] - xm[j]
		}
		yc[i] = y[i] - ym
	}
	return xm, ym, xc, yc
}

// finish sets the bias from the means: c = ym - xm·b.
func finish(b, xm []float64, ym float64) *Model {
	c := ym
	for j, v := range b {
		c -= xm[j] * v
	}
	return &Model{Weights: b, Bias: c}
}

// scaled returns the rows of xc and the values of yc times the square root
// of their sample weights: weighted least squares as an ordinary one.
func scaled(xc [][]float64, yc, w []float64) ([][]float64, []float64) {
	a := make([][]float64, len(xc))
	t := make([]float64, len(xc))
	for i, row := range xc {
		s := math.Sqrt(w[i])
		a[i] = make([]float64, len(row))
		for j, v := range row {
			a[i][j] = s * v
		}
		t[i] = s * yc[i]
	}
	return a, t
}

// LeastSquares minimizes sum_i w_i (y_i - x_i·b - c)^2, as scikit-learn's
// LinearRegression; when the problem is rank deficient it returns the
// minimum-norm solution (as LAPACK's gelsd, through an SVD).
type LeastSquares struct {
	FitIntercept bool
}

// Fit fits the model.
func (ls LeastSquares) Fit(X [][]float64, y, w []float64) (*Model, error) {
	_, _, w, err := check(X, y, w)
	if err != nil {
		return nil, err
	}
	xm, ym, xc, yc := center(X, y, w, ls.FitIntercept)
	return finish(lstsq(scaled(xc, yc, w)), xm, ym), nil
}

// lstsq returns the minimum-norm least-squares solution of a·b = t by a
// one-sided Jacobi SVD; singular values below eps*max(n,d)*smax count as
// zero.
func lstsq(a [][]float64, t []float64) []float64 {
	n, d := len(a), len(a[0])
	// Work on the columns of a.
	u := make([][]float64, d)
	for j := range u {
		u[j] = make([]float64, n)
		for i := 0; i < n; i++ {
			u[j][i] = a[i][j]
		}
	}
	v := make([][]float64, d)
	for j := range v {
		v[j] = make([]float64, d)
		v[j][j] = 1
	}
	for sweep := 0; sweep < 60; sweep++ {
		rotated := false
		for p := 0; p < d; p++ {
			for q := p + 1; q < d; q++ {
				var al, be, ga float64
				for i := 0; i < n; i++ {
					al += u[p][i] * u[p][i]
					be += u[q][i] * u[q][i]
					ga += u[p][i] * u[q][i]
				}
				if ga == 0 || math.Abs(ga) <= 1e-15*math.Sqrt(al*be) {
					continue
				}
				rotated = true
				zeta := (be - al) / (2 * ga)
				tt := math.Copysign(1, zeta) / (math.Abs(zeta) + math.Sqrt(1+zeta*zeta))
				c := 1 / math.Sqrt(1+tt*tt)
				s := c * tt
				for i := 0; i < n; i++ {
					up, uq := u[p][i], u[q][i]
					u[p][i] = c*up - s*uq
					u[q][i] = s*up + c*uq
				}
				for i := 0; i < d; i++ {
					vp, vq := v[p][i], v[q][i]
					v[p][i] = c*vp - s*vq
					v[q][i] = s*vp + c*vq
				}
			}
		}
		if !rotated {
			break
		}
	}
	sig := make([]float64, d)
	smax := 0.0
	for j := range sig {
		s := 0.0
		for _, x := range u[j] {
			s += x * x
		}
		sig[j] = math.Sqrt(s)
		smax = math.Max(smax, sig[j])
	}
	cut := 2.220446049250313e-16 * float64(max(n, d)) * smax
	b := make([]float64, d)
	for j := 0; j < d; j++ {
		if sig[j] <= cut || sig[j] == 0 {
			continue
		}
		// coefficient along v_j: (u_j/sigma_j)·t / sigma_j
		dot := 0.0
		for i := 0; i < n; i++ {
			dot += u[j][i] * t[i]
		}
		c := dot / (sig[j] * sig[j])
		for i := 0; i < d; i++ {
			b[i] += c * v[j][i]
		}
	}
	return b
}

// Ridge minimizes sum_i w_i (y_i - x_i·b - c)^2 + Alpha*||b||^2, as
// scikit-learn's Ridge (the intercept is not penalized).
type Ridge struct {
	Alpha        float64
	FitIntercept bool
}

// Fit fits the model.
func (r Ridge) Fit(X [][]float64, y, w []float64) (*Model, error) {
	if r.Alpha < 0 || math.IsNaN(r.Alpha) {
		return nil, fmt.Errorf("linear: ridge alpha %g must be non-negative", r.Alpha)
	}
	_, d, w, err := check(X, y, w)
	if err != nil {
		return nil, err
	}
	if r.Alpha == 0 {
		return LeastSquares{FitIntercept: r.FitIntercept}.Fit(X, y, w)
	}
	xm, ym, xc, yc := center(X, y, w, r.FitIntercept)
	// (X'WX + alpha I) b = X'Wy, through an augmented least-squares problem
	// [sqrt(W)X; sqrt(alpha) I] b = [sqrt(W)y; 0], which stays well
	// conditioned.
	a, t := scaled(xc, yc, w)
	for j := 0; j < d; j++ {
		row := make([]float64, d)
		row[j] = math.Sqrt(r.Alpha)
		a = append(a, row)
		t = append(t, 0)
	}
	return finish(lstsq(a, t), xm, ym), nil
}

// Lasso minimizes 1/(2n) sum_i w_i (y_i - x_i·b - c)^2 + Alpha*||b||_1 with
// the weights rescaled to sum to n, as scikit-learn's Lasso, by cyclic
// coordinate descent run to convergence (max coefficient change below Tol
// times the largest coefficient, and at most MaxIter sweeps).
type Lasso struct {
	Alpha        float64
	FitIntercept bool
	// MaxIter bounds the sweeps; 0 means 100000.
	MaxIter int
	// Tol is the relative change at which descent stops; 0 means 1e-12.
	Tol float64
}

// Fit fits the model.
func (l Lasso) Fit(X [][]float64, y, w []float64) (*Model, error) {
	n, d, sw, err := penalized(l.Alpha, X, y, w, float64(len(X)))
	if err != nil {
		return nil, err
	}
	xm, ym, xc, yc := center(X, y, sw, l.FitIntercept)
	a, r := scaled(xc, yc, sw) // r: the residual, y while b is zero
	cols := make([][]float64, d)
	norm := make([]float64, d)
	for j := range cols {
		cols[j] = make([]float64, n)
		for i := 0; i < n; i++ {
			cols[j][i] = a[i][j]
			norm[j] += cols[j][i] * cols[j][i]
		}
	}
	b := make([]float64, d)
	maxIter, tol := l.MaxIter, l.Tol
	if maxIter == 0 {
		maxIter = 100000
	}
	if tol == 0 {
		tol = 1e-12
	}
	thr := l.Alpha * float64(n)
	for it := 0; it < maxIter; it++ {
		maxStep, maxB := 0.0, 0.0
		for j := 0; j < d; j++ {
			if norm[j] == 0 {
				continue
			}
			rho := 0.0
			for i, x := range cols[j] {
				rho += x * (r[i] + x*b[j])
			}
			nb := soft(rho, thr) / norm[j]
			if delta := nb - b[j]; delta != 0 {
				for i, x := range cols[j] {
					r[i] -= x * delta
				}
				maxStep = math.Max(maxStep, math.Abs(delta))
				b[j] = nb
			}
			maxB = math.Max(maxB, math.Abs(b[j]))
		}
		if maxStep <= tol*math.Max(maxB, 1e-300) || maxB == 0 {
			break
		}
	}
	return finish(b, xm, ym), nil
}

// soft is the soft-thresholding operator: x moved toward 0 by t, and 0
// within t of it.
func soft(x, t float64) float64 {
	switch {
	case x > t:
		return x - t
	case x < -t:
		return x + t
	}
	return 0
}

// Penalty is the regularizer of an SGD objective.
type Penalty int

// Penalties of Captum's SGD-trained models.
const (
	NoPenalty Penalty = iota // SGDLinearRegression
	L1                       // SGDLasso: alpha*||b||_1
	L2                       // SGDRidge: alpha*||b||_2, not squared
)

// SGD is the objective of Captum's SGD-trained linear models,
// 0.5 * sum_i (w_i / sum w) (y_i - x_i·b - c)^2 + Alpha*penalty(b), solved
// to its minimizer by accelerated proximal gradient descent in float64
// (Captum runs a fixed budget of plain gradient steps in float32, which
// stops short of it; the minimizer is what those steps approach).
type SGD struct {
	Penalty      Penalty
	Alpha        float64
	FitIntercept bool
	// MaxIter bounds the iterations; 0 means 200000.
	MaxIter int
}

// Fit fits the model.
func (s SGD) Fit(X [][]float64, y, w []float64) (*Model, error) {
	n, d, p, err := penalized(s.Alpha, X, y, w, 1)
	if err != nil {
		return nil, err
	}
	// Lipschitz constant of the smooth part's gradient: the largest
	// eigenvalue of Z'PZ, Z = [X 1], by power iteration.
	dim := d
	if s.FitIntercept {
		dim++
	}
	z := func(i, j int) float64 {
		if j == d {
			return 1
		}
		return X[i][j]
	}
	vec := make([]float64, dim)
	for j := range vec {
		vec[j] = 1 / math.Sqrt(float64(dim))
	}
	lip := 0.0
	for it := 0; it < 200; it++ {
		nv := make([]float64, dim)
		for i := 0; i < n; i++ {
			dot := 0.0
			for j := 0; j < dim; j++ {
				dot += z(i, j) * vec[j]
			}
			for j := 0; j < dim; j++ {
				nv[j] += p[i] * z(i, j) * dot
			}
		}
		norm := 0.0
		for _, v := range nv {
			norm += v * v
		}
		norm = math.Sqrt(norm)
		if norm == 0 {
			break
		}
		lip = norm
		for j := range nv {
			vec[j] = nv[j] / norm
		}
	}
	if lip == 0 {
		return &Model{Weights: make([]float64, d)}, nil
	}
	step := 1 / lip
	theta := make([]float64, dim) // weights, then intercept
	prev := make([]float64, dim)
	mom := make([]float64, dim)
	tk := 1.0
	maxIter := s.MaxIter
	if maxIter == 0 {
		maxIter = 200000
	}
	grad := make([]float64, dim)
	for it := 0; it < maxIter; it++ {
		clear(grad)
		for i := 0; i < n; i++ {
			r := -y[i]
			for j := 0; j < dim; j++ {
				r += z(i, j) * mom[j]
			}
			for j := 0; j < dim; j++ {
				grad[j] += p[i] * r * z(i, j)
			}
		}
		copy(prev, theta)
		for j := 0; j < dim; j++ {
			theta[j] = mom[j] - step*grad[j]
		}
		switch s.Penalty {
		case L1:
			for j := 0; j < d; j++ {
				theta[j] = soft(theta[j], step*s.Alpha)
			}
		case L2:
			nb := 0.0
			for j := 0; j < d; j++ {
				nb += theta[j] * theta[j]
			}
			nb = math.Sqrt(nb)
			f := 0.0
			if nb > step*s.Alpha {
				f = 1 - step*s.Alpha/nb
			}
			for j := 0; j < d; j++ {
				theta[j] *= f
			}
		}
		tn := (1 + math.Sqrt(1+4*tk*tk)) / 2
		change := 0.0
		for j := range theta {
			mom[j] = theta[j] + (tk-1)/tn*(theta[j]-prev[j])
			change = math.Max(change, math.Abs(theta[j]-prev[j]))
		}
		tk = tn
		if change < 1e-15 && it > 10 {
			break
		}
	}
	m := &Model{Weights: append([]float64(nil), theta[:d]...)}
	if s.FitIntercept {
		m.Bias = theta[d]
	}
	return m, nil
}
