package robust

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/tensor"
)

// Loss computes the per-example losses of a model output [N, C] for
// target classes (one per example) and the gradient of their sum with
// respect to the output. Captum's loss_func returns the per-example losses
// and differentiates their sum; a Loss gives that gradient in closed form.
type Loss func(out *tensor.Tensor, target []int) (loss []float64, grad *tensor.Tensor, err error)

// NegLog is Captum's default loss when loss_func is None:
// loss_i = -log(out[i, target_i]). It is meant for models whose outputs are
// probabilities (it is NaN on negative outputs).
func NegLog(out *tensor.Tensor, target []int) ([]float64, *tensor.Tensor, error) {
	n, c, err := checkOut(out, target)
	if err != nil {
		return nil, nil, err
	}
	loss := make([]float64, n)
	g := tensor.New(out.Shape...)
	for i := 0; i < n; i++ {
		p := out.F[i*c+target[i]]
		loss[i] = -math.Log(float64(p))
		g.F[i*c+target[i]] = -1 / p
	}
	return loss, g, nil
}

// CrossEntropy is torch.nn.CrossEntropyLoss(reduction="none") on logits:
// loss_i = logsumexp(out[i]) - out[i, target_i]; its gradient is
// softmax(out[i]) - onehot(target_i).
func CrossEntropy(out *tensor.Tensor, target []int) ([]float64, *tensor.Tensor, error) {
	n, c, err := checkOut(out, target)
	if err != nil {
		return nil, nil, err
	}
	loss := make([]float64, n)
	g := tensor.New(out.Shape...)
	for i := 0; i < n; i++ {
		row := out.F[i*c : (i+1)*c]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(float64(v) - m)
		}
		lse := m + math.Log(s)
		loss[i] = lse - float64(row[target[i]])
		for j, v := range row {
			g.F[i*c+j] = float32(math.Exp(float64(v) - lse))
		}
		g.F[i*c+target[i]] -= 1
	}
	return loss, g, nil
}

// checkOut checks an output [N, C] against per-example targets.
func checkOut(out *tensor.Tensor, target []int) (int, int, error) {
	if out == nil || out.DType != tensor.Float32 || out.Rank() != 2 {
		return 0, 0, fmt.Errorf("robust: the loss needs a float32 output [N, C]")
	}
	n, c := out.Shape[0], out.Shape[1]
	if len(target) != n {
		return 0, 0, fmt.Errorf("robust: %d targets for %d examples", len(target), n)
	}
	for i, t := range target {
		if t < 0 || t >= c {
			return 0, 0, fmt.Errorf("robust: target %d of example %d is outside the %d classes", t, i, c)
		}
	}
	return n, c, nil
}

// expandTarget gives one target per example: a single target is used for
// every example.
func expandTarget(target []int, n int) ([]int, error) {
	switch len(target) {
	case n:
		return target, nil
	case 1:
		out := make([]int, n)
		for i := range out {
			out[i] = target[0]
		}
		return out, nil
	}
	return nil, fmt.Errorf("robust: %d targets for a batch of %d (give one, or one per example)", len(target), n)
}

func expNeg(x float64) float64 { return math.Exp(-x) }
