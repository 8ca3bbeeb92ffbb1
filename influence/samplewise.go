package influence

import (
	"context"
	"fmt"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/robust"
	"github.com/loupe-ml/loupe/tensor"
)

// gemmParam is a weight of a fully connected (Gemm) node whose
// per-example gradients follow from the node's input and output gradient:
// for Y = alpha*A*op(B) + beta*C, example i's gradient is
// alpha * gY_i (x) a_i for B (transposed as B is stored) and beta * gY_i
// for C. This is Captum's sample-wise gradients per batch.
type gemmParam struct {
	in, out     string // A and Y
	bias        bool   // the parameter is C, else B
	transB      bool
	alpha, beta float32
	shape       []int
}

// gemmParams describes every parameter as a Gemm weight, or returns nil
// when one of them is not (then gradients come from one pass per example).
func gemmParams(m *engine.Model, params []string) []gemmParam {
	g := m.Graph()
	out := make([]gemmParam, len(params))
	for pi, name := range params {
		found := false
		for _, n := range g.Nodes {
			if n.OpType != "Gemm" || len(n.Inputs) < 2 {
				continue
			}
			role := -1
			for i, in := range n.Inputs {
				if in == name {
					if role >= 0 {
						return nil // used twice
					}
					role = i
				}
			}
			if role < 0 {
				continue
			}
			if found || role == 0 || n.Int("transA", 0) != 0 {
				return nil // shared weight, or a weight as the batch operand
			}
			if _, ok := g.Initializers[n.Inputs[0]]; ok {
				return nil
			}
			w := g.Initializers[name]
			p := gemmParam{in: n.Inputs[0], out: n.Outputs[0], bias: role == 2, transB: n.Int("transB", 0) != 0,
				alpha: n.Float("alpha", 1), beta: n.Float("beta", 1), shape: w.Shape}
			if p.bias && !(w.Rank() == 1 || (w.Rank() == 2 && w.Shape[0] == 1)) {
				return nil // a bias per row is not a per-example quantity
			}
			out[pi] = p
			found = true
		}
		if !found {
			return nil
		}
	}
	// Every use of the parameters must be one of those nodes.
	for _, n := range g.Nodes {
		for i, in := range n.Inputs {
			for pi, name := range params {
				if in != name {
					continue
				}
				if n.OpType != "Gemm" || n.Outputs[0] != out[pi].out || (i == 2) != out[pi].bias {
					return nil
				}
			}
		}
	}
	return out
}

// gemmGrads returns the per-example flattened gradients of the Gemm
// parameters, batch by batch: one forward and backward pass per batch.
func gemmGrads(ctx context.Context, m *engine.Model, gp []gemmParam, d Dataset, loss robust.Loss, batch int) ([][]float32, error) {
	var taps, wrt []string
	seen := map[string]bool{}
	for _, p := range gp {
		if !seen[p.in] {
			taps = append(taps, p.in)
			seen[p.in] = true
		}
		if !seen["\x00"+p.out] {
			wrt = append(wrt, p.out)
			seen["\x00"+p.out] = true
		}
	}
	n := d.Len()
	out := make([][]float32, 0, n)
	for lo := 0; lo < n; lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+batch, n)
		b := d.rows(lo, hi)
		p, err := forward(ctx, m, b.Inputs, &engine.Options{Record: true, Taps: taps})
		if err != nil {
			return nil, err
		}
		o, err := p.Value(output(m))
		if err != nil {
			return nil, err
		}
		_, seed, err := loss(o, b.Labels)
		if err != nil {
			return nil, fmt.Errorf("influence: loss: %w", err)
		}
		gs, err := p.Backward(ctx, map[string]*tensor.Tensor{output(m): seed}, wrt, nil)
		if err != nil {
			return nil, fmt.Errorf("influence: gradients: %w", err)
		}
		acts := map[string]*tensor.Tensor{}
		for _, t := range taps {
			v, err := p.Value(t)
			if err != nil {
				return nil, err
			}
			if v.Rank() != 2 || v.Shape[0] != hi-lo {
				return nil, fmt.Errorf("influence: Gemm input %s has shape %v for a batch of %d", t, v.Shape, hi-lo)
			}
			acts[t] = v.AsFloat32()
		}
		for i := 0; i < hi-lo; i++ {
			var flat []float32
			for _, pp := range gp {
				gy := gs[pp.out]
				no := gy.Shape[1]
				gRow := gy.F[i*no : (i+1)*no]
				if pp.bias {
					for _, v := range gRow {
						flat = append(flat, pp.beta*v)
					}
					continue
				}
				a := acts[pp.in]
				ni := a.Shape[1]
				aRow := a.F[i*ni : (i+1)*ni]
				if pp.transB { // B is [out, in]
					for _, gv := range gRow {
						for _, av := range aRow {
							flat = append(flat, pp.alpha*gv*av)
						}
					}
				} else { // B is [in, out]
					for _, av := range aRow {
						for _, gv := range gRow {
							flat = append(flat, pp.alpha*gv*av)
						}
					}
				}
			}
			out = append(out, flat)
		}
	}
	return out, nil
}
