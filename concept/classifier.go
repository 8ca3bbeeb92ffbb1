package concept

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/loupe-ml/loupe/linear"
)

// Classifier trains the linear model whose weights are the CAVs, Captum's
// Classifier: acts holds one flattened activation row per example, labels
// the concept id of each row.
type Classifier interface {
	Train(ctx context.Context, acts [][]float64, labels []int) (*Fit, error)
}

// Fit is a trained classifier: one weight row per class, classes in
// ascending id order, and its accuracy on held-out rows (or on the
// training rows when nothing is held out).
type Fit struct {
	Weights [][]float64
	Classes []int
	Accs    float64
}

// DefaultClassifier is Captum's DefaultClassifier: it shuffles the rows,
// holds out the first int(TestSplitRatio*n) as test rows, and trains a
// hinge-loss linear classifier with an L2 penalty (linear.Hinge,
// scikit-learn's SGDClassifier objective with alpha 0.01) one class
// against the rest. For two classes the weights are [-w, w], w separating
// the higher id from the lower. Accs is the accuracy on the test rows.
type DefaultClassifier struct {
	// Alpha is the L2 penalty; 0 means 0.01.
	Alpha float64
	// TestSplitRatio is the share of rows held out; 0 means 0.33, a
	// negative value holds out none.
	TestSplitRatio float64
	// Rand shuffles the rows; nil uses a fixed seed (0), so runs repeat.
	Rand *rand.Rand
	// Split, when set, gives the train and test rows instead of a shuffle.
	Split func(n int) (train, test []int)
	// CaptumBinaryAccuracy reproduces Captum 0.8's accuracy for two
	// classes, which always predicts the lower id (the share of that
	// class among the test rows), instead of the true accuracy.
	CaptumBinaryAccuracy bool
}

// Train trains the classifier.
func (dc DefaultClassifier) Train(ctx context.Context, acts [][]float64, labels []int) (*Fit, error) {
	n := len(acts)
	if n == 0 || len(labels) != n {
		return nil, fmt.Errorf("concept: %d activation rows for %d labels", n, len(labels))
	}
	classes := sortedClasses(labels)
	if len(classes) < 2 {
		return nil, fmt.Errorf("concept: a CAV needs at least 2 concepts, got %v", classes)
	}
	var train, test []int
	if dc.Split != nil {
		train, test = dc.Split(n)
		for _, i := range append(slices.Clone(train), test...) {
			if i < 0 || i >= n {
				return nil, fmt.Errorf("concept: split row %d outside the %d rows", i, n)
			}
		}
	} else {
		ratio := dc.TestSplitRatio
		if ratio == 0 {
			ratio = 0.33
		}
		rng := dc.Rand
		if rng == nil {
			rng = rand.New(rand.NewPCG(0, 0))
		}
		perm := rng.Perm(n)
		k := 0
		if ratio > 0 {
			k = int(ratio * float64(n))
		}
		test, train = perm[:k], perm[k:]
	}
	if len(train) == 0 {
		return nil, fmt.Errorf("concept: no training rows")
	}
	X := make([][]float64, len(train))
	for i, r := range train {
		X[i] = acts[r]
	}
	fit := &Fit{Classes: classes}
	h := linear.Hinge{Alpha: dc.Alpha, FitIntercept: true}
	var biases []float64
	if len(classes) == 2 {
		y := make([]float64, len(train))
		for i, r := range train {
			y[i] = -1
			if labels[r] == classes[1] {
				y[i] = 1
			}
		}
		m, err := h.Fit(X, y, nil)
		if err != nil {
			return nil, fmt.Errorf("concept: CAV classifier: %w", err)
		}
		neg := make([]float64, len(m.Weights))
		for j, v := range m.Weights {
			neg[j] = -v
		}
		fit.Weights = [][]float64{neg, m.Weights}
		biases = []float64{-m.Bias, m.Bias}
	} else {
		for _, cl := range classes {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			y := make([]float64, len(train))
			for i, r := range train {
				y[i] = -1
				if labels[r] == cl {
					y[i] = 1
				}
			}
			m, err := h.Fit(X, y, nil)
			if err != nil {
				return nil, fmt.Errorf("concept: CAV classifier for class %d: %w", cl, err)
			}
			fit.Weights = append(fit.Weights, m.Weights)
			biases = append(biases, m.Bias)
		}
	}
	eval := test
	if len(eval) == 0 {
		eval = train
	}
	hit := 0
	for _, r := range eval {
		pred := classes[0]
		if !(dc.CaptumBinaryAccuracy && len(classes) == 2) {
			best := math.Inf(-1)
			for k, wrow := range fit.Weights {
				s := biases[k]
				for j, v := range wrow {
					s += v * acts[r][j]
				}
				if s > best {
					best, pred = s, classes[k]
				}
			}
		}
		if pred == labels[r] {
			hit++
		}
	}
	fit.Accs = float64(hit) / float64(len(eval))
	return fit, nil
}

// sortedClasses returns the distinct labels in ascending order.
func sortedClasses(labels []int) []int {
	c := slices.Clone(labels)
	slices.Sort(c)
	return slices.Compact(c)
}

// MeanDifference is a closed-form Classifier (no random numbers): for two
// classes w = mean(higher id) - mean(lower id) and the weights are
// [-w, w]; for more, row k is the class mean minus the mean of all rows.
// Accs is the training accuracy of the nearest-class-mean classifier.
type MeanDifference struct{}

// Train computes the class means.
func (MeanDifference) Train(ctx context.Context, acts [][]float64, labels []int) (*Fit, error) {
	n := len(acts)
	if n == 0 || len(labels) != n {
		return nil, fmt.Errorf("concept: %d activation rows for %d labels", n, len(labels))
	}
	classes := sortedClasses(labels)
	if len(classes) < 2 {
		return nil, fmt.Errorf("concept: a CAV needs at least 2 concepts, got %v", classes)
	}
	d := len(acts[0])
	means := make([][]float64, len(classes))
	counts := make([]int, len(classes))
	all := make([]float64, d)
	for k := range means {
		means[k] = make([]float64, d)
	}
	for i, row := range acts {
		if len(row) != d {
			return nil, fmt.Errorf("concept: activation row %d has %d values, row 0 has %d", i, len(row), d)
		}
		k, _ := slices.BinarySearch(classes, labels[i])
		counts[k]++
		for j, v := range row {
			means[k][j] += v
			all[j] += v
		}
	}
	for k := range means {
		for j := range means[k] {
			means[k][j] /= float64(counts[k])
		}
	}
	for j := range all {
		all[j] /= float64(n)
	}
	fit := &Fit{Classes: classes}
	if len(classes) == 2 {
		w := make([]float64, d)
		neg := make([]float64, d)
		for j := range w {
			w[j] = means[1][j] - means[0][j]
			neg[j] = -w[j]
		}
		fit.Weights = [][]float64{neg, w}
	} else {
		for k := range means {
			row := make([]float64, d)
			for j := range row {
				row[j] = means[k][j] - all[j]
			}
			fit.Weights = append(fit.Weights, row)
		}
	}
	hit := 0
	for i, row := range acts {
		best, pred := math.Inf(1), 0
		for k, m := range means {
			s := 0.0
			for j, v := range row {
				s += (v - m[j]) * (v - m[j])
			}
			if s < best {
				best, pred = s, classes[k]
			}
		}
		if pred == labels[i] {
			hit++
		}
	}
	fit.Accs = float64(hit) / float64(n)
	return fit, nil
}
