package concept

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// Two-sided p-values of Student's t with 2 degrees of freedom have the
// closed form 1 - |t|/sqrt(2+t^2).
func TestSignificanceClosedForm(t *testing.T) {
	for _, tc := range []struct{ a, b []float64 }{
		{[]float64{1, 2}, []float64{0, 0.5}},
		{[]float64{0.8, 0.9}, []float64{0.85, 0.7}},
		{[]float64{3, 5}, []float64{-2, 1}},
	} {
		tt, p, err := Significance(tc.a, tc.b)
		if err != nil {
			t.Fatal(err)
		}
		want := 1 - math.Abs(tt)/math.Sqrt(2+tt*tt)
		if math.Abs(p-want) > 1e-12 {
			t.Errorf("%v vs %v: t %g, p %g, want %g", tc.a, tc.b, tt, p, want)
		}
	}
	// Large samples: close to the normal distribution's p-value.
	var a, b []float64
	for i := 0; i < 4000; i++ {
		a = append(a, math.Sin(float64(i)))
		b = append(b, math.Sin(float64(i)*1.3)+0.05)
	}
	tt, p, _ := Significance(a, b)
	if want := math.Erfc(math.Abs(tt) / math.Sqrt2); math.Abs(p-want) > 1e-3 {
		t.Errorf("large samples: p %g, normal %g", p, want)
	}
	if _, _, err := Significance([]float64{1}, []float64{1, 2}); err == nil {
		t.Error("one score accepted")
	}
}

func TestMeanDifference(t *testing.T) {
	acts := [][]float64{{1, 0}, {3, 0}, {0, 2}, {0, 4}}
	f, err := MeanDifference{}.Train(context.Background(), acts, []int{5, 5, 2, 2})
	if err != nil {
		t.Fatal(err)
	}
	// classes [2 5]: w = mean(5) - mean(2) = [2, -3].
	if f.Classes[0] != 2 || f.Weights[1][0] != 2 || f.Weights[1][1] != -3 || f.Weights[0][0] != -2 || f.Accs != 1 {
		t.Errorf("fit %+v", f)
	}
}

func mlp(t *testing.T) *attr.Net {
	m, err := engine.Load(testmodels.Path("mlp_s0.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	return nt
}

// examples makes n rows of 6 features: pattern + small variation.
func examples(n int, pattern []float32, seed float64) *tensor.Tensor {
	x := tensor.New(n, 6)
	for i := range x.F {
		x.F[i] = pattern[i%6] + 0.3*float32(math.Sin(float64(i)*seed))
	}
	return x
}

// TCAV end to end on the mlp: the scores are the directional derivatives
// of the layer gradients along the CAVs; stored CAVs are found again.
func TestTCAV(t *testing.T) {
	ctx := context.Background()
	nt := mlp(t)
	high := Concept{ID: 0, Name: "high", Inputs: examples(20, []float32{1, 1, 1, -1, -1, -1}, 1.3)}
	random := Concept{ID: 1, Name: "random", Inputs: examples(20, []float32{0, 0, 0, 0, 0, 0}, 2.9)}
	dir := t.TempDir()
	tc := &TCAV{Net: nt, Layers: []string{"fc1", "tanh"}, SavePath: dir}
	inputs := []*tensor.Tensor{examples(5, []float32{0.5, 0.2, 0, 0, -0.2, -0.5}, 0.7)}
	sets := [][]Concept{{high, random}}
	scores, err := tc.Interpret(ctx, inputs, sets, attr.Class(2), attr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cavs, err := tc.ComputeCAVs(ctx, sets, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, layer := range tc.Layers {
		cav := cavs["0-1"][layer]
		if cav == nil || len(cav.Weights) != 2 || cav.Accs < 0.9 {
			t.Fatalf("%s: CAV %+v", layer, cav)
		}
		g, err := tc.LayerGradients(ctx, inputs, layer, attr.Options{Target: attr.Class(2)})
		if err != nil {
			t.Fatal(err)
		}
		s := scores["0-1"][layer]
		for c := 0; c < 2; c++ {
			pos, sum := 0, 0.0
			for _, row := range g {
				d := 0.0
				for j, v := range row {
					d += v * cav.Weights[c][j]
				}
				if d > 0 {
					pos++
				}
				sum += d
			}
			if s.SignCount[c] != float64(pos)/5 || math.Abs(s.Magnitude[c]-sum/5) > 1e-9 {
				t.Errorf("%s concept %d: score %+v, want %g %g", layer, c, s, float64(pos)/5, sum/5)
			}
		}
		// Binary CAVs are opposite rows.
		if cav.Weights[0][0] != -cav.Weights[1][0] {
			t.Errorf("%s: rows not opposite", layer)
		}
	}
	// A fresh TCAV over the same folder loads the stored CAVs.
	again := &TCAV{Net: nt, Layers: []string{"fc1"}, SavePath: dir, Classifier: MeanDifference{}}
	loaded, err := again.ComputeCAVs(ctx, sets, false)
	if err != nil {
		t.Fatal(err)
	}
	if loaded["0-1"]["fc1"].Weights[1][0] != cavs["0-1"]["fc1"].Weights[1][0] {
		t.Error("stored CAV not loaded")
	}
	if _, err := tc.ComputeCAVs(ctx, [][]Concept{{high}}, false); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Errorf("one-concept set: %v", err)
	}
	if _, err := (&TCAV{Net: nt, Layers: []string{"nope"}}).ComputeCAVs(ctx, sets, true); err == nil {
		t.Error("unknown layer accepted")
	}
}
