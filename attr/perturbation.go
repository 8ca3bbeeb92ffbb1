package attr

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// evalRows runs m on inputs (rows = copies*n, block-major) with the
// additional inputs repeated to match, and returns the target value of
// every row. An output with a single element (one number for the batch) is
// returned as one value per block of n rows.
func evalRows(ctx context.Context, m Model, inputs []*tensor.Tensor, o Options, n, copies int) ([]float32, error) {
	if m == nil {
		return nil, errNoNet
	}
	all := append([]*tensor.Tensor(nil), inputs...)
	all = append(all, expandExtra(o.Additional, n, copies, false)...)
	out, err := m.Eval(ctx, all)
	if err != nil {
		return nil, err
	}
	return pickRows(out, o, n, copies)
}

// pickRows returns the target value of every row of a model output for
// copies·n rows (block-major); see evalRows.
func pickRows(out *tensor.Tensor, o Options, n, copies int) ([]float32, error) {
	if out.DType != tensor.Float32 {
		out = out.AsFloat32()
	}
	if out.Len() == 1 && o.Target.IsZero() {
		if copies != 1 {
			return nil, fmt.Errorf("attr: the model returns one number per batch; perturbations_per_eval must be 1")
		}
		return []float32{out.F[0]}, nil
	}
	if out.Rank() == 0 || out.Shape[0] != n*copies {
		return nil, fmt.Errorf("attr: the model returned shape %v for a batch of %d", out.Shape, n*copies)
	}
	return o.Target.expand(n, copies, false).pick(out)
}

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

// perturbationBytes is the memory of the perturbations' indices.
func perturbationBytes(perts []perturbation) int64 {
	var s int64
	for _, p := range perts {
		s += 8 * int64(len(p.idx))
	}
	return s
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

// perEval returns the number of perturbed copies per model call of a
// method that runs full passes, before the memory budget caps it (see
// perEvalWithin): defaultBatch without incremental inference.
func perEval(ppe int, inputs []*tensor.Tensor, scalar bool) int {
	return defaultBatch(ppe, inputs, scalar, false)
}

// defaultBatch is how many perturbed copies go into one model call before
// the memory budget: the caller's ppe, or when it is 0 enough copies to
// give calls of about 2^20 input elements (at most 256 copies), or 1 when
// the model gives one number per batch. With incremental inference (see
// incremental) a copy holds only boxes until the computation goes whole,
// deep in the network where activations are small (resnet18: 50,176
// values a copy at layer3, a third of its input), and larger batches make
// the small boxes' kernels efficient: 8 times as many copies go into one
// call.
func defaultBatch(ppe int, inputs []*tensor.Tensor, scalar, incremental bool) int {
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
	elems := 1 << 20
	if incremental {
		elems *= 8
	}
	return max(1, min(256, elems/max(size, 1)))
}

// batching is how many perturbed copies go into one model call: by full
// passes and by incremental inference.
type batching struct {
	full, incremental int
}

// batchSize decides how many perturbed copies of the inputs go into one
// model call of the named method (see defaultBatch), capped to what o's
// memory budget allows once held bytes are kept for the whole call (see
// perEvalWithin; an incremental copy is counted as a full one, which it
// never exceeds; heldAdvice names the parameter that sets held). It
// refuses, before any model call but the budget's dry
// run, when not even one copy fits.
func batchSize(ctx context.Context, method string, m Model, inputs []*tensor.Tensor, o Options, ppe int, scalar bool, held int64, heldAdvice string) (batching, error) {
	full := defaultBatch(ppe, inputs, scalar, false)
	inc := defaultBatch(ppe, inputs, scalar, true)
	fit, err := perEvalAdvised(ctx, method, m, inputs, o, max(full, inc), held, heldAdvice)
	if err != nil {
		return batching{}, err
	}
	return batching{full: max(1, min(full, fit)), incremental: max(1, min(inc, fit))}, nil
}

// progress adapts a Progress callback to count perturbations.
func progress(p Progress, total int) func(int) {
	if p == nil {
		return nil
	}
	return func(done int) { p(done, total) }
}

// evalPerturbed evaluates the inputs with each perturbation applied, in
// batches of bs copies (o.Workers batches at once; see batchSize), by
// incremental inference where it applies, and calls got(k, values) with the target
// values of the n rows of perturbation k; got and done are never called
// concurrently. scalar says the model gives one number per batch.
func evalPerturbed(ctx context.Context, m Model, inputs, base []*tensor.Tensor, o Options, perts []perturbation, bs batching, scalar bool, done func(int), got func(k int, v []float32)) error {
	n := inputs[0].Shape[0]
	var inc *incremental
	if !scalar {
		var err error
		if inc, err = newIncremental(ctx, m, inputs, o, n); err != nil {
			return err
		}
	}
	per := bs.full
	if inc != nil {
		per = bs.incremental
	}
	type chunk struct{ k0, k1 int }
	var todo []chunk
	for k0, k1 := range chunks(len(perts), per) {
		todo = append(todo, chunk{k0, k1})
	}
	var mu sync.Mutex
	finished := 0
	eval := func(c chunk) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		cp := c.k1 - c.k0
		var patches []engine.Patch
		if inc != nil {
			bf := base[perts[c.k0].in].AsFloat32().F
			patches = inc.patches(inputs, perts[c.k0:c.k1], func(_, e int) float32 { return bf[e] })
		}
		var v []float32
		if patches != nil {
			var err error
			if v, err = inc.eval(ctx, patches, o, n); err != nil {
				return err
			}
		} else {
			// Full passes, in batches of the size for full passes.
			for k0, k1 := range chunks(cp, bs.full) {
				batch := repeatAll(inputs, k1-k0)
				for k := c.k0 + k0; k < c.k0+k1; k++ {
					p := perts[k]
					off := (k - c.k0 - k0) * inputs[p.in].Len()
					for _, e := range p.idx {
						copyElem(batch[p.in], off+e, base[p.in], e)
					}
				}
				vk, err := evalRows(ctx, m, batch, o, n, k1-k0)
				if err != nil {
					return err
				}
				v = append(v, vk...)
			}
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
		for _, c := range todo {
			if err := evalRecovered(eval, c); err != nil {
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
				if err := evalRecovered(eval, c); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, c := range todo {
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

// features collects the feature ids shared across all inputs: for each id,
// the flat indices it covers in each input.
type features struct {
	ids   []int64
	cover [][][]int // cover[k][i]: indices of feature k in input i
}

func collectFeatures(inputs, masks []*tensor.Tensor) (*features, error) {
	full, ids, err := featureMasks(inputs, masks)
	if err != nil {
		return nil, err
	}
	pos := map[int64]int{}
	f := &features{}
	for i := range inputs {
		for _, id := range ids[i] {
			if _, ok := pos[id]; !ok {
				pos[id] = -1
				f.ids = append(f.ids, id)
			}
		}
	}
	slices.Sort(f.ids)
	for k, id := range f.ids {
		pos[id] = k
	}
	f.cover = make([][][]int, len(f.ids))
	for k := range f.cover {
		f.cover[k] = make([][]int, len(inputs))
	}
	for i, m := range full {
		for e, id := range m.I {
			k := pos[id]
			f.cover[k][i] = append(f.cover[k][i], e)
		}
	}
	return f, nil
}

// featureSetup checks the inputs and returns the batch size, the full
// baselines and the features shared across inputs.
func featureSetup(inputs []*tensor.Tensor, o Options, masks []*tensor.Tensor) (int, []*tensor.Tensor, *features, error) {
	n, base, err := batchAndBaselines(inputs, o.Baselines)
	if err != nil {
		return 0, nil, nil, err
	}
	f, err := collectFeatures(inputs, masks)
	return n, base, f, err
}

// coalitionBatch builds copies of the inputs, one per coalition: elements of
// features in the coalition keep the input's value, the others take the
// baseline's. Copies are stacked block by block.
func coalitionBatch(inputs, base []*tensor.Tensor, f *features, coalitions [][]bool) []*tensor.Tensor {
	c := len(coalitions)
	out := repeatAll(base, c)
	for j, on := range coalitions {
		for k, in := range on {
			if !in {
				continue
			}
			for i, x := range inputs {
				off := j * x.Len()
				for _, e := range f.cover[k][i] {
					copyElem(out[i], off+e, x, e)
				}
			}
		}
	}
	return out
}

// evalCoalitions evaluates the model on one copy of the inputs per
// coalition (see coalitionBatch) and returns the target values, n rows per
// coalition.
func evalCoalitions(ctx context.Context, m Model, inputs, base []*tensor.Tensor, f *features, coal [][]bool, o Options, n int) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return evalRows(ctx, m, coalitionBatch(inputs, base, f, coal), o, n, len(coal))
}

// spread writes each feature's value per example to every element it covers.
func spread(inputs []*tensor.Tensor, f *features, vals [][]float64, n int) []*tensor.Tensor {
	attrs := zerosLike(inputs, false)
	for k := range f.ids {
		for i, x := range inputs {
			row := x.Len() / n
			for _, e := range f.cover[k][i] {
				attrs[i].F[e] = float32(vals[k][e/row])
			}
		}
	}
	return attrs
}

// incremental evaluates perturbed copies of the inputs by exact
// incremental inference (engine.Incremental): for a Net, each copy costs
// only the part of the network its changed box reaches. A nil
// *incremental evaluates nothing (patches gives nil).
type incremental struct {
	inc   *engine.Incremental
	names []string // the fed tensors the perturbed inputs are
}

// incrementalModel is a Model that can evaluate perturbations of its
// inputs by incremental inference: it gives the Net to run, its feeds for
// the inputs (and o.Additional) and the names of the fed tensors that the
// inputs are, in order.
type incrementalModel interface {
	incrementalFeeds(inputs []*tensor.Tensor, o Options, n int) (nt *Net, feeds map[string]*tensor.Tensor, names []string, err error)
}

func (nt *Net) incrementalFeeds(inputs []*tensor.Tensor, o Options, n int) (*Net, map[string]*tensor.Tensor, []string, error) {
	if len(inputs) != len(nt.Inputs) {
		return nil, nil, nil, nil
	}
	feeds, err := nt.feeds(inputs, o.Additional, n, 1, false)
	return nt, feeds, nt.Inputs, err
}

// incrementalFeeds: the layer's value is fed (injected) per row.
func (lm *layerModel) incrementalFeeds(inputs []*tensor.Tensor, o Options, n int) (*Net, map[string]*tensor.Tensor, []string, error) {
	if len(inputs) != 1 || n != lm.n {
		return nil, nil, nil, nil
	}
	feeds, err := lm.nt.feeds(lm.inputs, o.Additional, n, 1, false)
	if err != nil {
		return nil, nil, nil, err
	}
	feeds[lm.layer] = inputs[0]
	return lm.nt, feeds, []string{lm.layer}, nil
}

// newIncremental prepares incremental inference for perturbations of
// inputs when m is a Net (or a layer of one) whose perturbed inputs are
// all float32 and whose output has one row per example; otherwise it
// returns nil.
func newIncremental(ctx context.Context, m Model, inputs []*tensor.Tensor, o Options, n int) (*incremental, error) {
	im, ok := m.(incrementalModel)
	if !ok {
		return nil, nil
	}
	for _, x := range inputs {
		if x.DType != tensor.Float32 || x.Rank() < 2 {
			return nil, nil
		}
	}
	nt, feeds, names, err := im.incrementalFeeds(inputs, o, n)
	if err != nil || nt == nil || nt.Model == nil {
		return nil, err
	}
	inc, err := nt.Model.Incremental(ctx, feeds, n, &engine.Options{Inject: nt.Inject, Outputs: []string{nt.Output}})
	if err != nil {
		return nil, err
	}
	if out := inc.Base(); out.Rank() == 0 || out.Shape[0] != n || (out.Len() == 1 && o.Target.IsZero()) {
		return nil, nil
	}
	return &incremental{inc: inc, names: names}, nil
}

// incrementalMaxBox is the largest box, as a fraction of an input row,
// worth evaluating incrementally: a larger change reaches nearly all of
// the network, where the plain batch is as fast.
const incrementalMaxBox = 0.25

// patches returns the perturbations as patches that change one input each
// (element e of perturbation k, a flat index in the input, to value(k, e))
// over boxes of one size (the bounding box of each perturbation's elements
// over all rows, grown to the largest and moved inside the input at its
// border), or nil when they change several inputs or the boxes are too
// large to gain.
func (ic *incremental) patches(inputs []*tensor.Tensor, perts []perturbation, value func(k, e int) float32) []engine.Patch {
	if ic == nil || len(perts) == 0 {
		return nil
	}
	in := perts[0].in
	x := inputs[in]
	n := x.Shape[0]
	dims := x.Shape[1:]
	row := x.Len() / n
	size := make([]int, len(dims))
	starts := make([][]int, len(perts))
	for k, p := range perts {
		if p.in != in || len(p.idx) == 0 {
			return nil
		}
		lo, hi := make([]int, len(dims)), make([]int, len(dims))
		for a := range dims {
			lo[a], hi[a] = dims[a], 0
		}
		for _, e := range p.idx {
			rel := e % row
			for a := len(dims) - 1; a >= 0; a-- {
				c := rel % dims[a]
				rel /= dims[a]
				lo[a], hi[a] = min(lo[a], c), max(hi[a], c+1)
			}
		}
		for a := range dims {
			size[a] = max(size[a], hi[a]-lo[a])
		}
		starts[k] = lo
	}
	if float64(tensor.Size(size)) > incrementalMaxBox*float64(row) {
		return nil
	}
	strides := tensor.Strides(dims)
	box := tensor.Size(size)
	patches := make([]engine.Patch, len(perts))
	for k, p := range perts {
		for a := range dims {
			starts[k][a] = min(starts[k][a], dims[a]-size[a])
		}
		vals := tensor.New(append([]int{n}, size...)...)
		for r := 0; r < n; r++ {
			forBox(starts[k], size, dims, strides, func(e int) {
				vals.F[r*box+boxIndex(e, starts[k], size, dims)] = x.F[r*row+e]
			})
		}
		for _, e := range p.idx {
			vals.F[(e/row)*box+boxIndex(e%row, starts[k], size, dims)] = value(k, e)
		}
		patches[k] = engine.Patch{Input: ic.names[in], Start: starts[k], Values: vals}
	}
	return patches
}

// boxIndex returns the index in a box (starting at start, of extent size)
// of the row-relative element e of a row of shape dims.
func boxIndex(e int, start, size, dims []int) int {
	idx, mul := 0, 1
	for a := len(dims) - 1; a >= 0; a-- {
		c := e%dims[a] - start[a]
		e /= dims[a]
		idx += c * mul
		mul *= size[a]
	}
	return idx
}

// eval returns the target values of the patched copies, n rows each.
func (ic *incremental) eval(ctx context.Context, patches []engine.Patch, o Options, n int) ([]float32, error) {
	out, err := ic.inc.Eval(ctx, patches)
	if err != nil {
		return nil, fmt.Errorf("attr: %w", err)
	}
	return pickRows(out, o, n, len(patches))
}

// evalRecovered runs eval on c, turning a panic (a bug, in the model or
// in loupe; on a worker goroutine it would end the process) into an
// error.
func evalRecovered[C any](eval func(C) error, c C) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("attr: internal error while evaluating perturbed inputs: %v", r)
		}
	}()
	return eval(c)
}
