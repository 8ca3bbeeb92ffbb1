package metrics

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

// ShareInMask and PointingGame on two examples with a known answer.
func TestLocalization(t *testing.T) {
	a, _ := tensor.FromFloat32([]float32{1, 3, -2, 0, 0.5, 0.5, 2, 0}, 2, 4)
	mask, _ := tensor.FromFloat32([]float32{0, 1, 1, 0}, 1, 4)
	s, err := ShareInMask(a, mask)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(s.F[0])-0.75) > 1e-6 || math.Abs(float64(s.F[1])-2.5/3) > 1e-6 {
		t.Errorf("shares %v, want [0.75 0.833]", s.F)
	}
	hits, _ := PointingGame(a, mask)
	if !hits[0] || !hits[1] {
		t.Errorf("pointing game %v, want both hits", hits)
	}
	if _, err := ShareInMask(a, tensor.New(3)); err == nil {
		t.Error("mask of the wrong shape: no error")
	}
}
