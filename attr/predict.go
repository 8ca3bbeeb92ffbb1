package attr

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/tensor"
)

// TopClasses returns, for each row of a model's output [N, K] (scores or
// logits), the index of its largest value and that class's softmax
// probability; the usual target when explaining a prediction.
func TopClasses(y *tensor.Tensor) ([]int, []float64, error) {
	if y == nil || y.Rank() != 2 || y.Shape[1] == 0 || y.DType != tensor.Float32 {
		var shape []int
		if y != nil {
			shape = y.Shape
		}
		return nil, nil, fmt.Errorf("attr: output of shape %v: want float scores [N, classes]", shape)
	}
	n, k := y.Shape[0], y.Shape[1]
	classes, probs := make([]int, n), make([]float64, n)
	for r := 0; r < n; r++ {
		z := y.F[r*k : (r+1)*k]
		best := 0
		for i, v := range z {
			if v > z[best] {
				best = i
			}
		}
		sum := 0.0
		for _, v := range z {
			sum += math.Exp(float64(v - z[best]))
		}
		classes[r], probs[r] = best, 1/sum
	}
	return classes, probs, nil
}
