package influence

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/npy"
	"github.com/loupe-ml/loupe/robust"
	"github.com/loupe-ml/loupe/tensor"
)

func data(n int, seed float64) Dataset {
	x := tensor.New(n, 6)
	for i := range x.F {
		x.F[i] = float32(math.Sin(float64(i)*seed)) * 0.9
	}
	d := Dataset{Inputs: []*tensor.Tensor{x}}
	for i := 0; i < n; i++ {
		d.Labels = append(d.Labels, i%4)
	}
	return d
}

func mlpModel(t *testing.T) *engine.Model {
	m, err := engine.Load(testmodels.Path("mlp_s0.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// lossAt is the cross-entropy of example i with the named weight element
// moved by h.
func lossAt(t *testing.T, m *engine.Model, d Dataset, i int, w string, k int, h float32) float64 {
	wt := m.Graph().Initializers[w].Clone()
	wt.F[k] += h
	ex := d.rows(i, i+1)
	p, err := m.Forward(context.Background(), map[string]*tensor.Tensor{"input": ex.Inputs[0]}, &engine.Options{Inject: map[string]*tensor.Tensor{w: wt}})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := p.Value("output")
	l, _, _ := robust.CrossEntropy(o, ex.Labels)
	return l[0]
}

// TracInCP's scores are learning-rate-weighted dot products of weight
// gradients, checked against finite differences of the loss.
func TestTracInCPFiniteDifferences(t *testing.T) {
	m := mlpModel(t)
	train, test := data(4, 1.3), data(2, 0.7)
	ck := []Checkpoint{{Model: m, LearningRate: 0.5}, {Model: m, LearningRate: 0.25}}
	tc := &TracInCP{Checkpoints: ck, TrainDataset: train, Layers: []string{"fc3"}}
	params, err := tc.Params(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(params) != 2 {
		t.Fatalf("fc3 params %v", params)
	}
	fd := func(d Dataset, i int) []float64 {
		var g []float64
		for _, w := range params {
			for k := range m.Graph().Initializers[w].F {
				const h = 1e-2
				g = append(g, (lossAt(t, m, d, i, w, k, h)-lossAt(t, m, d, i, w, k, -h))/(2*h))
			}
		}
		return g
	}
	scores, err := tc.Influence(context.Background(), test)
	if err != nil {
		t.Fatal(err)
	}
	self, err := tc.SelfInfluence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var gr [][]float64
	for j := 0; j < train.Len(); j++ {
		gr = append(gr, fd(train, j))
	}
	d64 := func(a, b []float64) float64 {
		s := 0.0
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	for i := 0; i < test.Len(); i++ {
		gt := fd(test, i)
		for j := range gr {
			want := 0.75 * d64(gt, gr[j])
			if got := float64(scores.F[i*train.Len()+j]); math.Abs(got-want) > 1e-3*math.Max(1, math.Abs(want)) {
				t.Errorf("score[%d,%d] = %g, finite differences %g", i, j, got, want)
			}
		}
	}
	for j := range gr {
		if want := 0.75 * d64(gr[j], gr[j]); math.Abs(self[j]-want) > 1e-3*math.Max(1, want) {
			t.Errorf("self influence %d = %g, finite differences %g", j, self[j], want)
		}
	}
	if _, err := (&TracInCP{Checkpoints: ck, TrainDataset: train, Layers: []string{"fc9"}}).Influence(context.Background(), test); err == nil {
		t.Error("unknown module accepted")
	}
}

// TracInCP on the last layer's weight and bias is TracInCPFast plus the
// bias term lr * <dL/dlogits(test), dL/dlogits(train)>.
func TestTracInCPFastIsWeightPart(t *testing.T) {
	m := mlpModel(t)
	train, test := data(5, 2.1), data(3, 0.4)
	ck := []Checkpoint{{Model: m, LearningRate: 0.3}}
	full, err := (&TracInCP{Checkpoints: ck, TrainDataset: train, Layers: []string{"fc3"}}).Influence(context.Background(), test)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := (&TracInCPFast{Checkpoints: ck, TrainDataset: train, FinalFCLayer: "fc3", BatchSize: 2}).Influence(context.Background(), test)
	if err != nil {
		t.Fatal(err)
	}
	logitGrad := func(d Dataset) *tensor.Tensor {
		p, err := m.Forward(context.Background(), map[string]*tensor.Tensor{"input": d.Inputs[0]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := p.Value("output")
		_, g, _ := robust.CrossEntropy(o, d.Labels)
		return g
	}
	gt, gr := logitGrad(test), logitGrad(train)
	for i := 0; i < 3; i++ {
		for j := 0; j < 5; j++ {
			bias := 0.0
			for c := 0; c < 4; c++ {
				bias += float64(gt.F[i*4+c]) * float64(gr.F[j*4+c])
			}
			want := float64(full.F[i*5+j]) - 0.3*bias
			if got := float64(fast.F[i*5+j]); math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Errorf("fast[%d,%d] = %g, want %g", i, j, got, want)
			}
		}
	}
}

func TestKMostInfluential(t *testing.T) {
	s, _ := tensor.FromFloat32([]float32{0.5, -1, 2, 0.5, 3, -2}, 2, 3)
	pro, err := KMostInfluential(s, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	opp, _ := KMostInfluential(s, 1, false)
	if pro.Indices[0][0] != 2 || pro.Indices[0][1] != 0 || pro.Indices[1][0] != 1 || opp.Indices[1][0] != 2 || opp.Values[0][0] != -1 {
		t.Errorf("proponents %v %v, opponents %v %v", pro.Indices, pro.Values, opp.Indices, opp.Values)
	}
	if _, err := KMostInfluential(s, 4, true); err == nil {
		t.Error("k above n_train accepted")
	}
}

// Each source example is its own nearest neighbour: cosine 1, distance 0.
func TestSimilarityInfluenceSelf(t *testing.T) {
	m := mlpModel(t)
	nt, err := attr.NewNet(m)
	if err != nil {
		t.Fatal(err)
	}
	src := data(6, 1.9)
	for _, tc := range []struct {
		metric, dir string
		want        float64
	}{{"cosine", "max", 1}, {"euclidean", "min", 0}} {
		si := &SimilarityInfluence{Net: nt, Layers: []string{"fc1", "tanh"}, InfluenceSrcDataset: src, SimilarityMetric: tc.metric, SimilarityDirection: tc.dir, BatchSize: 4}
		r, err := si.Influence(context.Background(), src.Inputs, 2, attr.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range si.Layers {
			for i := 0; i < 6; i++ {
				if r[l].Indices[i][0] != i || math.Abs(r[l].Values[i][0]-tc.want) > 1e-5 {
					t.Errorf("%s %s row %d: %v %v", tc.metric, l, i, r[l].Indices[i], r[l].Values[i])
				}
			}
		}
	}
	if _, err := (&SimilarityInfluence{Net: nt, Layers: []string{"fc1"}, InfluenceSrcDataset: src, SimilarityMetric: "dot"}).Influence(context.Background(), src.Inputs, 1, attr.Options{}); err == nil {
		t.Error("unknown metric accepted")
	}
}

func TestLoadDataset(t *testing.T) {
	dir := t.TempDir()
	d := data(3, 1)
	if err := npy.WriteFile(filepath.Join(dir, "inputs.npy"), d.Inputs[0]); err != nil {
		t.Fatal(err)
	}
	l, _ := tensor.FromInt64([]int64{0, 1, 2}, 3)
	if err := npy.WriteFile(filepath.Join(dir, "labels.npy"), l); err != nil {
		t.Fatal(err)
	}
	got, err := LoadDataset(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 3 || got.Labels[2] != 2 || got.Inputs[0].F[4] != d.Inputs[0].F[4] {
		t.Errorf("loaded %v %v", got.Inputs[0].Shape, got.Labels)
	}
	if _, err := LoadDataset(t.TempDir()); err == nil {
		t.Error("empty folder accepted")
	}
}

// Sample-wise gradients of fully connected layers, one pass per batch,
// give the scores of one pass per example.
func TestTracInCPBatchedGradients(t *testing.T) {
	m := mlpModel(t)
	train, test := data(7, 1.7), data(3, 0.9)
	ck := []Checkpoint{{Model: m, LearningRate: 0.2}}
	params, _ := Params(m, nil)
	if gemmParams(m, params) == nil {
		t.Fatal("the mlp's weights are not recognized as Gemm weights")
	}
	one, err := (&TracInCP{Checkpoints: ck, TrainDataset: train}).Influence(context.Background(), test)
	if err != nil {
		t.Fatal(err)
	}
	batched := &TracInCP{Checkpoints: ck, TrainDataset: train, BatchSize: 3}
	got, err := batched.Influence(context.Background(), test)
	if err != nil {
		t.Fatal(err)
	}
	for i := range one.F {
		if d := math.Abs(float64(got.F[i] - one.F[i])); d > 1e-5*math.Max(1, math.Abs(float64(one.F[i]))) {
			t.Fatalf("score %d: batched %g, per example %g", i, got.F[i], one.F[i])
		}
	}
	// Conv weights are not Gemm weights: the per-example path is used.
	cnn, err := engine.Load(testmodels.Path("cnn_s0.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := Params(cnn, []string{"conv2", "fc"})
	if gemmParams(cnn, cp) != nil {
		t.Error("conv2's weights taken for Gemm weights")
	}
}
