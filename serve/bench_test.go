package serve

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/loupe-ml/loupe/internal/testmodels"
)

// BenchmarkResNet18 measures :explain on resnet18 through a real
// listener: requests per second and latency percentiles, for Saliency and
// IntegratedGradients (8 steps), with two clients at once.
func BenchmarkResNet18(b *testing.B) {
	path := testmodels.ResNet18()
	if path == "" {
		b.Skip("resnet18 not found (set LOUPE_RESNET18)")
	}
	m, err := LoadModel("resnet18", path)
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{MaxRunning: 2}, m)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	x := make([][][]float32, 3)
	for c := range x {
		x[c] = make([][]float32, 224)
		for i := range x[c] {
			x[c][i] = make([]float32, 224)
			for j := range x[c][i] {
				x[c][i][j] = float32((c*7+i*3+j)%17) / 17
			}
		}
	}
	for _, bc := range []struct {
		name   string
		params map[string]any
	}{
		{"Saliency", nil},
		{"IntegratedGradients", map[string]any{"n_steps": 8}},
	} {
		body, _ := json.Marshal(map[string]any{"instances": [][][][]float32{x}, "method": bc.name, "params": bc.params})
		b.Run(bc.name, func(b *testing.B) {
			const clients = 2
			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			next := make(chan struct{})
			start := time.Now()
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range next {
						t0 := time.Now()
						resp, err := srv.Client().Post(srv.URL+"/v1/models/resnet18:explain", "application/json", bytes.NewReader(body))
						if err != nil {
							b.Error(err)
							continue
						}
						var v map[string]any
						json.NewDecoder(resp.Body).Decode(&v)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("status %d: %v", resp.StatusCode, v["error"])
						}
						mu.Lock()
						lat = append(lat, time.Since(t0))
						mu.Unlock()
					}
				}()
			}
			for i := 0; i < b.N; i++ {
				next <- struct{}{}
			}
			close(next)
			wg.Wait()
			elapsed := time.Since(start)
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			pct := func(p float64) float64 {
				if len(lat) == 0 {
					return 0
				}
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Milliseconds())
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(pct(0.5), "p50_ms")
			b.ReportMetric(pct(0.9), "p90_ms")
			b.ReportMetric(pct(0.99), "p99_ms")
		})
	}
}
