package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// TestEngineInputGradients checks the engine's input gradients against
// PyTorch's: a Saliency case is the gradient of the target output (its
// absolute value unless abs is false), so every Saliency case of the case
// set checks them, within the case's own tolerances.
func TestEngineInputGradients(t *testing.T) {
	cases, err := LoadCases(casesDir())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cases {
		if c.Algorithm != "Saliency" || c.Model == nil {
			continue
		}
		n++
		if err := saliencyByEngine(c); err != nil {
			t.Errorf("%s: %v", c.ID, err)
		}
	}
	if n == 0 {
		t.Skip("no Saliency cases in the case set")
	}
}

func saliencyByEngine(c *Case) error {
	ctx := context.Background()
	m, err := engine.Load(c.ModelPath())
	if err != nil {
		return err
	}
	feeds, err := c.Feeds()
	if err != nil {
		return err
	}
	p, err := m.Forward(ctx, feeds, &engine.Options{Record: true, Outputs: []string{c.Model.ONNXOutput}})
	if err != nil {
		return err
	}
	y, err := p.Value(c.Model.ONNXOutput)
	if err != nil {
		return err
	}
	batch, classes := y.Shape[0], y.Len()/y.Shape[0]
	targets := make([]int, batch)
	if raw, ok := c.Params["target"]; ok && string(raw) != "null" {
		var one int
		if json.Unmarshal(raw, &one) == nil {
			for i := range targets {
				targets[i] = one
			}
		} else if err := json.Unmarshal(raw, &targets); err != nil {
			return fmt.Errorf("target %s: %v", raw, err)
		}
	}
	seed := tensor.New(y.Shape...)
	for i, k := range targets {
		seed.F[i*classes+k] = 1
	}
	abs := true
	if raw, ok := c.Params["abs"]; ok {
		json.Unmarshal(raw, &abs)
	}
	grads, err := p.Backward(ctx, map[string]*tensor.Tensor{c.Model.ONNXOutput: seed}, c.Model.AttributedInputs, nil)
	if err != nil {
		return err
	}
	var exp struct {
		Attributions []json.RawMessage `json:"attributions"`
	}
	if err := json.Unmarshal(c.Expected, &exp); err != nil {
		return err
	}
	tols, err := c.ExactTols("attributions")
	if err != nil {
		return err
	}
	for i, name := range c.Model.AttributedInputs {
		g := grads[name]
		if abs {
			for j, v := range g.F {
				g.F[j] = float32(math.Abs(float64(v)))
			}
		}
		want, err := c.Tensor(exp.Attributions[i])
		if err != nil {
			return err
		}
		if err := Compare(g, want, tols[i]); err != nil {
			return fmt.Errorf("input %q: %v", name, err)
		}
	}
	return nil
}
