package robust_test

import (
	"context"
	"fmt"
	"log"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/internal/testmodels"
	"github.com/loupe-ml/loupe/robust"
	"github.com/loupe-ml/loupe/tensor"
)

func ExampleFGSM() {
	m, err := engine.Load(testmodels.Path("toy.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	net, err := attr.NewNet(m)
	if err != nil {
		log.Fatal(err)
	}
	x, _ := tensor.FromFloat32([]float32{0.5, -0.2, 0.1}, 1, 3)
	fgsm := &robust.FGSM{Net: net, LossFunc: robust.CrossEntropy}
	adv, err := fgsm.Perturb(context.Background(), []*tensor.Tensor{x}, 0.1, []int{1}, robust.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.2f\n", adv[0].F)
	// Output:
	// [0.40 -0.30 0.00]
}

func ExampleMinParamPerturbation() {
	m, err := engine.Load(testmodels.Path("toy.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	net, err := attr.NewNet(m)
	if err != nil {
		log.Fatal(err)
	}
	fgsm := &robust.FGSM{Net: net, LossFunc: robust.CrossEntropy}
	x, _ := tensor.FromFloat32([]float32{0.5, -0.2, 0.1}, 1, 3)
	mp := &robust.MinParamPerturbation{
		Model:   net,
		ArgName: "epsilon", ArgMin: 0, ArgMax: 2, ArgStep: 0.05,
		Attack: func(ctx context.Context, in []*tensor.Tensor, eps float64) ([]*tensor.Tensor, error) {
			return fgsm.Perturb(ctx, in, eps, []int{1}, robust.Options{})
		},
	}
	r, err := mp.Evaluate(context.Background(), []*tensor.Tensor{x}, robust.MinParamOptions{Target: []int{1}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("found %v, epsilon %.2f after %d tries\n", r.Found, r.Param, len(r.Evaluated))
	// Output:
	// found true, epsilon 0.10 after 3 tries
}

func ExampleAttackComparator() {
	// Any attr.Model works: here a Go function that says class 1 when the
	// first feature is above 1.
	model := attr.Func(func(_ context.Context, in []*tensor.Tensor) (*tensor.Tensor, error) {
		x := in[0]
		out := tensor.New(x.Shape[0], 2)
		for i := 0; i < x.Shape[0]; i++ {
			out.F[2*i+1] = 10 * (x.F[i*x.Shape[1]] - 1)
		}
		return out, nil
	})
	ac := &robust.AttackComparator{Model: model, Metric: robust.Accuracy}
	shift := func(d float32) robust.Attack {
		return func(_ context.Context, in []*tensor.Tensor, _ []int) ([]*tensor.Tensor, error) {
			y := in[0].Clone()
			for k := range y.F {
				y.F[k] += d
			}
			return []*tensor.Tensor{y}, nil
		}
	}
	if err := ac.AddAttack("Shift +0.5", shift(0.5), 1); err != nil {
		log.Fatal(err)
	}
	x, _ := tensor.FromFloat32([]float32{0.2, 0, 0.8, 0, 1.4, 0, 2, 0}, 4, 2)
	r, err := ac.Evaluate(context.Background(), []*tensor.Tensor{x}, 1, []int{0, 0, 1, 1}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("accuracy %.2f, under the shift %.2f\n", r.Original.F[0], r.Attacks["Shift +0.5"].Mean.F[0])
	// Output:
	// accuracy 1.00, under the shift 0.75
}
