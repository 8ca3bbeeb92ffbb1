package concept

import (
	"fmt"
	"math"
)

// Significance tests whether a concept's TCAV scores differ from those of
// random concepts, as Captum's TCAV tutorial does: scores holds the
// concept's score in each experiment (for instance its sign_count against
// each of several random concepts), random the random concepts' scores in
// the same experiments. It is Student's two-sample t-test with pooled
// variance (scipy.stats.ttest_ind); it returns the t statistic and the
// two-sided p-value. A p-value below the chosen level (0.05 in the paper,
// with a Bonferroni correction for several concepts) marks the concept as
// significant.
func Significance(scores, random []float64) (t, p float64, err error) {
	n1, n2 := len(scores), len(random)
	if n1 < 2 || n2 < 2 {
		return 0, 0, fmt.Errorf("concept: the t-test needs at least 2 scores on each side, got %d and %d", n1, n2)
	}
	m1, v1 := meanVar(scores)
	m2, v2 := meanVar(random)
	df := float64(n1 + n2 - 2)
	pooled := ((float64(n1)-1)*v1 + (float64(n2)-1)*v2) / df
	se := math.Sqrt(pooled * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		if m1 == m2 {
			return math.NaN(), math.NaN(), nil
		}
		return math.Copysign(math.Inf(1), m1-m2), 0, nil
	}
	t = (m1 - m2) / se
	// Two-sided p-value of Student's t with df degrees of freedom:
	// I_{df/(df+t^2)}(df/2, 1/2).
	p = regIncBeta(df/2, 0.5, df/(df+t*t))
	return t, p, nil
}

// meanVar returns the mean and the sample variance (ddof 1).
func meanVar(x []float64) (float64, float64) {
	m := 0.0
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	s := 0.0
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return m, s / float64(len(x)-1)
}

// regIncBeta is the regularized incomplete beta function I_x(a, b), by its
// continued fraction (modified Lentz), using the symmetry
// I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges slowly.
func regIncBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	lbeta := func(a, b float64) float64 {
		la, _ := math.Lgamma(a)
		lb, _ := math.Lgamma(b)
		lab, _ := math.Lgamma(a + b)
		return la + lb - lab
	}
	if x > (a+1)/(a+b+2) {
		return 1 - regIncBeta(b, a, 1-x)
	}
	front := math.Exp(a*math.Log(x)+b*math.Log(1-x)-lbeta(a, b)) / a
	const tiny = 1e-300
	f, c, d := 1.0, 1.0, 0.0
	for i := 0; i <= 400; i++ {
		m := float64(i / 2)
		var num float64
		switch {
		case i == 0:
			num = 1
		case i%2 == 0:
			num = m * (b - m) * x / ((a + 2*m - 1) * (a + 2*m))
		default:
			num = -(a + m) * (a + b + m) * x / ((a + 2*m) * (a + 2*m + 1))
		}
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		d = 1 / d
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		cd := c * d
		f *= cd
		if math.Abs(1-cd) < 1e-15 {
			break
		}
	}
	return front * (f - 1)
}
