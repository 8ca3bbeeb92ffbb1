package attr

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/loupe-ml/loupe/tensor"
)

// featureMasks returns, per input, an int64 mask of the input's full shape
// (the caller's masks broadcast, or one id per element numbered across the
// inputs when masks is nil), and the sorted ids present in each.
func featureMasks(inputs, masks []*tensor.Tensor) ([]*tensor.Tensor, [][]int64, error) {
	if masks != nil && len(masks) != len(inputs) {
		return nil, nil, fmt.Errorf("attr: %d feature masks for %d inputs", len(masks), len(inputs))
	}
	full := make([]*tensor.Tensor, len(inputs))
	ids := make([][]int64, len(inputs))
	next := int64(0)
	for i, x := range inputs {
		f := tensor.NewInt(x.Shape...)
		var m *tensor.Tensor
		if masks != nil {
			m = masks[i]
		}
		if m == nil {
			row := x.Len() / max(x.Shape[0], 1)
			for e := range f.I {
				f.I[e] = next + int64(e%row)
			}
			next += int64(row)
		} else {
			if m.DType != tensor.Int64 {
				return nil, nil, fmt.Errorf("attr: feature mask %d is %s, want int64", i, m.DType)
			}
			if m.Rank() > x.Rank() {
				return nil, nil, fmt.Errorf("attr: feature mask %d has shape %v, which does not broadcast to input shape %v", i, m.Shape, x.Shape)
			}
			if bs, err := tensor.BroadcastShape(m.Shape, x.Shape); err != nil || !tensor.SameShape(bs, x.Shape) {
				return nil, nil, fmt.Errorf("attr: feature mask %d has shape %v, which does not broadcast to input shape %v", i, m.Shape, x.Shape)
			}
			st := tensor.BroadcastStrides(m.Shape, x.Shape)
			eachIndex(x.Shape, st, func(o, j int) { f.I[o] = m.I[j] })
		}
		seen := map[int64]bool{}
		for _, v := range f.I {
			if !seen[v] {
				seen[v] = true
				ids[i] = append(ids[i], v)
			}
		}
		slices.Sort(ids[i])
		full[i] = f
	}
	return full, ids, nil
}

// eachIndex calls f(outIndex, srcIndex) over a shape, reading the source
// with the given strides.
func eachIndex(shape, strides []int, f func(o, j int)) {
	n := len(shape)
	idx := make([]int, n)
	j := 0
	total := tensor.Size(shape)
	for o := 0; o < total; o++ {
		f(o, j)
		for d := n - 1; d >= 0; d-- {
			idx[d]++
			j += strides[d]
			if idx[d] < shape[d] {
				break
			}
			j -= strides[d] * idx[d]
			idx[d] = 0
		}
	}
}

// perturbation is one modified copy of the inputs: in input in, the
// elements at the flat indices idx take the baseline's value.
type perturbation struct {
	in  int
	idx []int
}

// perEval returns the number of perturbed copies per model call: the
// caller's, or when it is 0 enough copies to give calls of about 2^20 input
// elements (at most 256 copies), or 1 when the model gives one number per
// batch.
func perEval(ppe int, inputs []*tensor.Tensor, scalar bool) int {
	if ppe > 0 {
		return ppe
	}
	if scalar {
		return 1
	}
	size := 0
	for _, x := range inputs {
		size += x.Len()
	}
	return max(1, min(256, (1<<20)/max(size, 1)))
}

// evalPerturbed evaluates the inputs with each perturbation applied, in
// batches of per copies (o.Workers batches at once), and calls got(k,
// values) with the target values of the n rows of perturbation k; got and
// done are never called concurrently.
func evalPerturbed(ctx context.Context, m Model, inputs, base []*tensor.Tensor, o Options, perts []perturbation, per int, done func(int), got func(k int, v []float32)) error {
	n := inputs[0].Shape[0]
	per = max(per, 1)
	type chunk struct{ k0, k1 int }
	var chunks []chunk
	for k0 := 0; k0 < len(perts); k0 += per {
		chunks = append(chunks, chunk{k0, min(len(perts), k0+per)})
	}
	var mu sync.Mutex
	finished := 0
	eval := func(c chunk) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		cp := c.k1 - c.k0
		batch := make([]*tensor.Tensor, len(inputs))
		for i, x := range inputs {
			batch[i] = repeat(x, cp, false)
		}
		for k := c.k0; k < c.k1; k++ {
			p := perts[k]
			x, b, dst := inputs[p.in], base[p.in], batch[p.in]
			off := (k - c.k0) * x.Len()
			for _, e := range p.idx {
				switch x.DType {
				case tensor.Float32:
					dst.F[off+e] = b.F[e]
				case tensor.Int64:
					dst.I[off+e] = b.I[e]
				case tensor.Bool:
					dst.B[off+e] = b.B[e]
				}
			}
		}
		v, err := evalRows(ctx, m, batch, o, n, cp)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		rows := len(v) / cp
		for k := c.k0; k < c.k1; k++ {
			got(k, v[(k-c.k0)*rows:(k-c.k0+1)*rows])
		}
		finished += cp
		if done != nil {
			done(finished)
		}
		return nil
	}
	workers := max(o.Workers, 1)
	if workers == 1 {
		for _, c := range chunks {
			if err := eval(c); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan chunk)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				if err := eval(c); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, c := range chunks {
		select {
		case jobs <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return ctx.Err()
}

// FeatureAblation replaces each feature (an element, or a group of elements
// sharing an id in FeatureMask) by its baseline and attributes to it the
// change of the target output: f(x) - f(x with the feature ablated); every
// element of a group gets the group's value. Cost: 1 + F forward rows per
// example for F features, in batches of PerturbationsPerEval.
type FeatureAblation struct {
	Model Model
	// FeatureMask groups elements into features, one int64 tensor per
	// input that broadcasts to it (nil: every element is a feature).
	FeatureMask []*tensor.Tensor
	// PerturbationsPerEval is how many ablated copies go into one model
	// call; 0 chooses from the input size (Captum's default is 1; the
	// results do not depend on it).
	PerturbationsPerEval int
}

// Attribute computes ablation attributions of inputs for o.Target, with
// o.Baselines (nil: zeros) as the replacement values.
func (fa *FeatureAblation) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	n, err := batchOf(inputs)
	if err != nil {
		return nil, err
	}
	base, err := baselinesFor(o.Baselines, inputs)
	if err != nil {
		return nil, err
	}
	masks, ids, err := featureMasks(inputs, fa.FeatureMask)
	if err != nil {
		return nil, err
	}
	f0, err := evalRows(ctx, fa.Model, inputs, o, n, 1)
	if err != nil {
		return nil, err
	}
	var perts []perturbation
	for i := range inputs {
		perts = append(perts, groupPerturbations(i, masks[i], ids[i])...)
	}
	attrs := zerosLike(inputs, len(f0) == 1 && n > 1)
	total := len(perts)
	err = evalPerturbed(ctx, fa.Model, inputs, base, o, perts, perEval(fa.PerturbationsPerEval, inputs, len(f0) == 1 && n > 1), progress(o.Progress, total), func(k int, v []float32) {
		p := perts[k]
		a := attrs[p.in]
		row := inputs[p.in].Len() / n
		for _, e := range p.idx {
			switch {
			case len(v) > 1:
				a.F[e] = f0[e/row] - v[e/row]
			case e < a.Len():
				a.F[e] = f0[0] - v[0]
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return &Result{Attributions: attrs}, nil
}

// zerosLike returns float tensors shaped as the inputs (with a batch of 1
// when batchOne).
func zerosLike(inputs []*tensor.Tensor, batchOne bool) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(inputs))
	for i, x := range inputs {
		shape := append([]int(nil), x.Shape...)
		if batchOne {
			shape[0] = 1
		}
		out[i] = tensor.New(shape...)
	}
	return out
}

// progress adapts a Progress callback to count perturbations.
func progress(p Progress, total int) func(int) {
	if p == nil {
		return nil
	}
	return func(done int) { p(done, total) }
}

// groupPerturbations returns one perturbation per feature id of a mask:
// the flat indices of its elements.
func groupPerturbations(in int, mask *tensor.Tensor, ids []int64) []perturbation {
	pos := make(map[int64]int, len(ids))
	perts := make([]perturbation, len(ids))
	for k, id := range ids {
		pos[id] = k
		perts[k].in = in
	}
	for e, id := range mask.I {
		k := pos[id]
		perts[k].idx = append(perts[k].idx, e)
	}
	return perts
}
