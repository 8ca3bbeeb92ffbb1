package insights

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/tensor"
)

// A real-size data set: 20 images of 224 x 224 for resnet18's 1,000
// classes. The page's first answers are small (only the classes that
// occur, a page of examples) and its first card needs one cheap
// attribution, not 20 of IntegratedGradients.
func TestResNet18FirstPage(t *testing.T) {
	path := testmodels.ResNet18()
	if path == "" || testing.Short() {
		t.Skip("needs resnet18 (LOUPE_RESNET18 or ../shared/oracle/models) and no -short")
	}
	m, err := engine.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	nt, _ := attr.NewNet(m)
	rng := rand.New(rand.NewPCG(1, 2))
	var exs []Example
	for i := 0; i < 20; i++ {
		x := tensor.New(1, 3, 224, 224)
		for j := range x.F {
			x.F[j] = float32(rng.NormFloat64())
		}
		exs = append(exs, Example{ID: fmt.Sprintf("img%02d.png", i), Inputs: []*tensor.Tensor{x}, Label: rng.IntN(1000)})
	}
	classes := make([]string, 1000)
	for k := range classes {
		classes[k] = fmt.Sprintf("class number %d with a long-ish name", k)
	}
	start := time.Now()
	s, err := New(context.Background(), nt, classes, exs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	h := handler(t, s)
	start = time.Now()
	code, _, sum := get(t, h, "/api/summary")
	var in info
	if err := json.Unmarshal(sum, &in); code != 200 || err != nil || len(in.Classes) > 40 || len(sum) > 16<<10 || in.Method != "Saliency" {
		t.Errorf("summary: %d %v, %d classes, %d bytes, method %s", code, err, len(in.Classes), len(sum), in.Method)
	}
	code, _, page := get(t, h, "/api/examples")
	var p examplesPage
	if err := json.Unmarshal(page, &p); code != 200 || err != nil || len(p.Examples) != defaultLimit || p.Total != 20 {
		t.Errorf("first page: %d %v, %d examples of %d", code, err, len(p.Examples), p.Total)
	}
	code, _, first := get(t, h, "/api/explain?i=0&method="+in.Method)
	var e Explanation
	if err := json.Unmarshal(first, &e); code != 200 || err != nil || len(e.Parts) != 1 || e.Parts[0].Image == "" {
		t.Errorf("first card: %d %v %.200s", code, err, first)
	}
	t.Logf("predictions on 20 images: %v; summary, first page and first card: %v", ready.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
