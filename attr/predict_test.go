package attr

import (
	"math"
	"testing"

	"github.com/loupe-ml/loupe/tensor"
)

func TestTopClasses(t *testing.T) {
	y, _ := tensor.FromFloat32([]float32{0, 2, 1, 5, 5, -1}, 2, 3)
	c, p, err := TopClasses(y)
	if err != nil || c[0] != 1 || c[1] != 0 {
		t.Fatalf("classes %v, %v", c, err)
	}
	want := 1 / (math.Exp(-2) + 1 + math.Exp(-1))
	if math.Abs(p[0]-want) > 1e-12 || math.Abs(p[1]-1/(2+math.Exp(-6))) > 1e-12 {
		t.Errorf("probabilities %v", p)
	}
	if _, _, err := TopClasses(tensor.New(3)); err == nil {
		t.Error("rank 1: no error")
	}
}
