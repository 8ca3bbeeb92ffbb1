package metrics

import (
	"math"
	"sort"
	"testing"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/tensor"
)

// On a linear model, deleting features in order of input x gradient makes
// the output fall fastest: its deletion curve lies under the reverse
// order's, and insertion mirrors it.
func TestDeletionCurves(t *testing.T) {
	ctx, nt, x := onLinear(t, 5, 2)
	o := attr.Options{Target: attr.Class(1)}
	a, _ := (&attr.InputXGradient{Net: nt}).Attribute(ctx, x, o)
	rev := a.Attributions[0].Clone()
	for i := range rev.F {
		rev.F[i] = -rev.F[i]
	}
	del, err := DeletionCurves(ctx, nt, x, a.Attributions, o, 6, false)
	if err != nil {
		t.Fatal(err)
	}
	delRev, _ := DeletionCurves(ctx, nt, x, []*tensor.Tensor{rev}, o, 6, false)
	ins, _ := DeletionCurves(ctx, nt, x, a.Attributions, o, 6, true)
	fx, _ := targets(ctx, nt, x, o, 2, 1)
	for e := 0; e < 2; e++ {
		c := del[e]
		if math.Abs(c.Outputs[0]-float64(fx[e])) > 1e-5 {
			t.Errorf("deletion curve starts at %g, f(x) = %g", c.Outputs[0], fx[e])
		}
		if math.Abs(c.Outputs[6]-ins[e].Outputs[0]) > 1e-5 || math.Abs(ins[e].Outputs[6]-c.Outputs[0]) > 1e-5 {
			t.Errorf("deletion ends where insertion starts and the reverse: %v %v", c.Outputs, ins[e].Outputs)
		}
		if !(c.AUC < delRev[e].AUC) {
			t.Errorf("example %d: deletion AUC %g by attribution, %g in reverse order", e, c.AUC, delRev[e].AUC)
		}
		// For a linear model and a zero baseline, deleting a feature moves
		// the output by exactly its input x gradient attribution.
		attrs := append([]float32(nil), a.Attributions[0].F[e*6:(e+1)*6]...)
		sort.Slice(attrs, func(i, j int) bool { return attrs[i] > attrs[j] })
		want := float64(fx[e])
		for s := 1; s <= 6; s++ {
			want -= float64(attrs[s-1])
			if math.Abs(c.Outputs[s]-want) > 1e-5 {
				t.Errorf("example %d step %d: output %g, want f(x) minus the deleted attributions %g", e, s, c.Outputs[s], want)
			}
		}
	}
}
