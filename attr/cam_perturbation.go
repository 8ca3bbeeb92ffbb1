package attr

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// ScoreCAM weighs each channel of the target layers by the model's score
// on the input masked by that channel: the channel's activations are
// upsampled to the input's size (bilinear, corners aligned, as torch's
// UpsamplingBilinear2d), min-max scaled to [0, 1] per example and channel
// ((a - min) / (max - min + 1e-8)), and multiply every channel of the
// first input; the weights are the softmax over channels of the target's
// values on the masked inputs, and cam_layer = sum_c w_c A_c (Wang et al.,
// "Score-CAM", CVPR Workshops 2020). Cost: 1 + C forward rows per example
// and target layer of C channels, in model calls of BatchSize rows.
type ScoreCAM struct {
	Net *Net
	// Layers are the target layers, as GradCAM's.
	Layers []string
	// BatchSize is the number of masked inputs per model call (0: 16,
	// pytorch-grad-cam's default). It does not change the result.
	BatchSize int
	// EigenSmooth is as GradCAM's.
	EigenSmooth bool
	// Reshape is as GradCAM's.
	Reshape *TokenGrid
}

// Attribute computes the Score-CAM map.
func (m *ScoreCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	const method = "ScoreCAM"
	n, h, w, err := camInput(m.Net, method, inputs)
	if err != nil {
		return nil, err
	}
	names, err := m.Net.camLayers(method, m.Layers)
	if err != nil {
		return nil, err
	}
	r, err := m.Net.camPass(ctx, method, inputs, o, names, false, m.Reshape)
	if err != nil {
		return nil, err
	}
	o.Target = r.target
	if err := checkCount(method, "BatchSize", m.BatchSize, MaxBatch); err != nil {
		return nil, err
	}
	bs := m.BatchSize
	if bs <= 0 {
		bs = 16
	}
	// Kept for the whole call: the layers' values and the maps.
	held := tensorBytes(r.acts) + 4*int64(n)*int64(h)*int64(w)*int64(len(names))
	if bs, err = m.Net.camBatch(ctx, method, inputs, o, n, bs, held, 0); err != nil {
		return nil, err
	}
	track := camProgress(o.Progress, n, allRows(n, r.acts))
	maps := make([]*tensor.Tensor, len(names))
	for i, a := range r.acts {
		c, lh, lw := a.Shape[1], a.Shape[2], a.Shape[3]
		sp := lh * lw
		// The mask [H, W] of an example and channel, made as its copy is
		// filled (channelScores fills one row at a time): the channel's
		// plane upsampled to the input and min-max scaled.
		plane, up := make([]float64, sp), make([]float64, h*w)
		scores, err := m.Net.channelScores(ctx, inputs, o, n, everyChannel(n, c), bs, "", nil, track, func(dst []float32, e, ch int) {
			p := e*c + ch
			for s, v := range a.F[p*sp : (p+1)*sp] {
				plane[s] = float64(v)
			}
			resize2D(plane, lh, lw, up, h, w, true)
			lo, hi := up[0], up[0]
			for _, v := range up {
				lo, hi = min(lo, v), max(hi, v)
			}
			for k := range dst {
				dst[k] *= float32((up[k%(h*w)] - lo) / (hi - lo + 1e-8))
			}
		})
		if err != nil {
			return nil, err
		}
		wt := make([]float64, n*c)
		for e := 0; e < n; e++ {
			softmax(scores[e*c:(e+1)*c], wt[e*c:(e+1)*c])
		}
		maps[i] = camReduce(weighted(a, wt), n, c, lh, lw, m.EigenSmooth)
	}
	return camResult(maps, h, w)
}

// AblationCAM weighs each channel of the target layers by the relative
// drop of the target when the channel is ablated: the layer's value is
// replaced by the example's with channel c set to zero and the rest of the
// network is run, giving s_c; w_c = (s - s_c) / s, s the target's value on
// the intact input, and cam_layer = sum_c w_c A_c (Desai and Ramaswamy,
// "Ablation-CAM", WACV 2020). Ablating to zero is pytorch-grad-cam's rule
// for layers whose minimum is 0 (ReLU outputs, the usual target layers).
// Cost: 1 + C forward rows per example and target layer of C channels, in
// model calls of BatchSize rows.
type AblationCAM struct {
	Net *Net
	// Layers are the target layers, as GradCAM's.
	Layers []string
	// BatchSize is the number of ablated copies per model call (0: 32,
	// pytorch-grad-cam's default). It does not change the result.
	BatchSize int
	// RatioChannelsToAblate, below 1, ablates only some channels, as
	// pytorch-grad-cam's experimental option: per example, the channels
	// are scored by how much of their (absolute, min-max scaled) mass lies
	// where the layer's first principal component (EigenCAM's projection,
	// absolute, min-max scaled) exceeds 0.01; the int(C*ratio) best and
	// the int(C*ratio) worst are ablated (both lists, so a channel can be
	// ablated twice above 0.5), and the other channels get weight 0. Above
	// 0.5 the library's assembly of the scores stops at the first channel
	// ablated twice (every later channel gets weight 0); loupe does the
	// same. Ties in the scores (dead channels score NaN, sorted last) keep
	// channel order. 0 and 1 both mean every channel.
	RatioChannelsToAblate float64
	// EigenSmooth is as GradCAM's.
	EigenSmooth bool
	// Reshape is as GradCAM's.
	Reshape *TokenGrid
}

// Attribute computes the Ablation-CAM map.
func (m *AblationCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	const method = "AblationCAM"
	ratio := m.RatioChannelsToAblate
	if !(ratio >= 0 && ratio <= 1) {
		return nil, fmt.Errorf("attr: %s: ratio_channels_to_ablate %g, want a share in (0, 1]", method, ratio)
	}
	if ratio == 0 {
		ratio = 1
	}
	n, h, w, err := camInput(m.Net, method, inputs)
	if err != nil {
		return nil, err
	}
	names, err := m.Net.camLayers(method, m.Layers)
	if err != nil {
		return nil, err
	}
	r, err := m.Net.camPass(ctx, method, inputs, o, names, false, m.Reshape)
	if err != nil {
		return nil, err
	}
	o.Target = r.target
	s0, err := Select(r.out, o.Target, n)
	if err != nil {
		return nil, err
	}
	if err := checkCount(method, "BatchSize", m.BatchSize, MaxBatch); err != nil {
		return nil, err
	}
	bs := m.BatchSize
	if bs <= 0 {
		bs = 32
	}
	// Kept for the whole call: the layers' values (twice when reshaped)
	// and the maps; each ablated copy also holds its row of the layer.
	held := tensorBytes(r.acts) + tensorBytes(r.raw) + 4*int64(n)*int64(h)*int64(w)*int64(len(names))
	var layerRow int64
	for _, raw := range r.raw {
		layerRow = max(layerRow, rowBytes([]*tensor.Tensor{raw}, n))
	}
	if bs, err = m.Net.camBatch(ctx, method, inputs, o, n, bs, held, layerRow); err != nil {
		return nil, err
	}
	// The channels ablated, per layer: (example, channel) pairs, example
	// by example, in the library's order.
	jobs := make([][][2]int, len(r.acts))
	rows := 0
	for i, a := range r.acts {
		if ratio == 1 {
			jobs[i] = everyChannel(n, a.Shape[1])
		} else {
			for e := 0; e < n; e++ {
				for _, ch := range channelsToAblate(a, e, ratio) {
					jobs[i] = append(jobs[i], [2]int{e, ch})
				}
			}
		}
		rows += len(jobs[i])
	}
	track := camProgress(o.Progress, n, rows)
	maps := make([]*tensor.Tensor, len(names))
	for i, a := range r.acts {
		c, lh, lw := a.Shape[1], a.Shape[2], a.Shape[3]
		sp := lh * lw
		raw := r.raw[i]
		scores, err := m.Net.channelScores(ctx, inputs, o, n, jobs[i], bs, names[i], raw.Shape[1:], track, func(dst []float32, e, ch int) {
			size := raw.Len() / n
			copy(dst, raw.F[e*size:(e+1)*size])
			if m.Reshape == nil {
				clear(dst[ch*sp : (ch+1)*sp])
			} else {
				m.Reshape.ablate(dst, raw.Shape[1:], ch)
			}
		})
		if err != nil {
			return nil, err
		}
		wt := make([]float64, n*c)
		first := 0
		for e := 0; e < n; e++ {
			last := first
			for last < len(jobs[i]) && jobs[i][last][0] == e {
				last++
			}
			s := float64(s0[e])
			after := assembleAblation(jobs[i][first:last], scores[first:last], s, c)
			for ch, v := range after {
				wt[e*c+ch] = (s - v) / s
			}
			first = last
		}
		maps[i] = camReduce(weighted(a, wt), n, c, lh, lw, m.EigenSmooth)
	}
	return camResult(maps, h, w)
}

// everyChannel lists every (example, channel) pair, example-major.
func everyChannel(n, c int) [][2]int {
	jobs := make([][2]int, 0, n*c)
	for e := 0; e < n; e++ {
		for ch := 0; ch < c; ch++ {
			jobs = append(jobs, [2]int{e, ch})
		}
	}
	return jobs
}

// allRows counts the perturbed rows of a CAM that perturbs every channel
// of every example and layer.
func allRows(n int, acts []*tensor.Tensor) int {
	rows := 0
	for _, a := range acts {
		rows += n * a.Shape[1]
	}
	return rows
}

// channelsToAblate returns the channels of example e of a layer's
// activations a [N, C, h, w] that AblationCAM ablates at a ratio below 1
// (see RatioChannelsToAblate): the int(C*ratio) best scored channels,
// best first, then the int(C*ratio) worst, worst first.
func channelsToAblate(a *tensor.Tensor, e int, ratio float64) []int {
	c, sp := a.Shape[1], a.Shape[2]*a.Shape[3]
	x := make([]float64, c*sp)
	for i, v := range a.F[e*c*sp : (e+1)*c*sp] {
		if !math.IsNaN(float64(v)) {
			x[i] = float64(v)
		}
	}
	proj := make([]float64, sp)
	project(x, c, sp, proj)
	// The objectness mask: |P| min-max scaled, above 0.01 (in float32, as
	// the library's projection).
	lo, hi := math.Inf(1), math.Inf(-1)
	for s, v := range proj {
		v = float64(float32(math.Abs(v)))
		proj[s] = v
		lo, hi = min(lo, v), max(hi, v)
	}
	mask := make([]bool, sp)
	for s, v := range proj {
		mask[s] = float32((v-lo)/(hi-lo)) > 0.01
	}
	score := make([]float64, c)
	for ch := 0; ch < c; ch++ {
		row := a.F[(e*c+ch)*sp : (e*c+ch+1)*sp]
		mn, mx := math.Inf(1), math.Inf(-1)
		for _, v := range row {
			av := math.Abs(float64(v))
			mn = min(mn, av)
		}
		for _, v := range row {
			mx = max(mx, math.Abs(float64(v))-mn)
		}
		var in, all float64
		for s, v := range row {
			nv := (math.Abs(float64(v)) - mn) / mx // NaN for a constant channel, as numpy's 0/0
			all += nv
			if mask[s] {
				in += nv
			}
		}
		score[ch] = float64(float32(in / all))
	}
	order := make([]int, c)
	for i := range order {
		order[i] = i
	}
	// numpy's argsort: ascending, NaN last.
	slices.SortStableFunc(order, func(i, j int) int {
		a, b := score[i], score[j]
		switch {
		case math.IsNaN(a) && math.IsNaN(b):
			return 0
		case math.IsNaN(a):
			return 1
		case math.IsNaN(b):
			return -1
		}
		return cmp.Compare(a, b)
	})
	k := int(float64(c) * ratio)
	out := make([]int, 0, 2*k)
	for i := 0; i < k; i++ {
		out = append(out, order[c-1-i])
	}
	return append(out, order[:k]...)
}

// assembleAblation spreads the scores of the ablated channels of one
// example over its c channels as pytorch-grad-cam's
// assemble_ablation_scores: the ablated channels in increasing order are
// matched against 0..c-1 with one cursor, channels not matched keep the
// intact score s (so weight 0). A channel ablated twice stops the cursor:
// every later channel keeps s, as in the library.
func assembleAblation(jobs [][2]int, scores []float64, s float64, c int) []float64 {
	idx := make([]int, len(jobs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(i, j int) int { return cmp.Compare(jobs[i][1], jobs[j][1]) })
	out := make([]float64, c)
	k := 0
	for ch := range out {
		if k < len(idx) && jobs[idx[k]][1] == ch {
			out[ch] = float64(float32(scores[idx[k]]))
			k++
		} else {
			out[ch] = s
		}
	}
	return out
}

// camBatch caps bs, the modified copies per model call of the named
// perturbation CAM, to what o's memory budget allows once held bytes are
// kept for the whole call: each copy costs a row of the inputs, of the
// additional inputs and of the model's forward pass (modelRowBytes), and
// layerRow bytes of an injected layer's value. It refuses, after the
// first pass but before any modified copy, when not even one fits.
func (nt *Net) camBatch(ctx context.Context, method string, inputs []*tensor.Tensor, o Options, n, bs int, held, layerRow int64) (int, error) {
	b, err := newBudget(method, o)
	if err != nil {
		return 0, err
	}
	if err := b.hold(held, "the target layers' values and the maps", "target fewer layers or explain fewer examples at once, or raise Options.MemoryBudget"); err != nil {
		return 0, err
	}
	mrow, err := modelRowBytes(ctx, nt, inputs, o.Additional, n, false)
	if err != nil {
		return 0, err
	}
	unit := rowBytes(inputs, n) + rowBytes(o.Additional, n) + mrow + layerRow + 8
	return b.units(unit, bs, "one modified copy (a forward row of the model)", "raise Options.MemoryBudget")
}

// channelScores returns the target's value on modified copies of the
// batch, one per job (example e, channel ch), evaluated in model calls of
// at most bs rows. Without a layer, fill modifies each row of the first
// input (a copy of example e's), one row after the other; with a layer, fill writes each row of the
// layer's value (shape row, the layer's without the batch), which replaces
// the layer's in the pass.
func (nt *Net) channelScores(ctx context.Context, inputs []*tensor.Tensor, o Options, n int, jobs [][2]int, bs int, layer string, row []int, done func(int), fill func(dst []float32, e, ch int)) ([]float64, error) {
	scores := make([]float64, len(jobs))
	for lo, hi := range chunks(len(jobs), bs) {
		k := hi - lo
		ex := make([]int, k)
		for r := range ex {
			ex[r] = jobs[lo+r][0]
		}
		in := selectRows(inputs, n, ex)
		var inject map[string]*tensor.Tensor
		dst := in[0]
		if layer != "" {
			dst = tensor.New(append([]int{k}, row...)...)
			inject = map[string]*tensor.Tensor{layer: dst}
		}
		size := dst.Len() / k
		for r := range ex {
			fill(dst.F[r*size:(r+1)*size], ex[r], jobs[lo+r][1])
		}
		feeds, err := nt.feeds(in, selectRows(o.Additional, n, ex), k, 1, false)
		if err != nil {
			return nil, err
		}
		p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{nt.Output}, Inject: inject})
		if err != nil {
			return nil, err
		}
		out, err := p.Value(nt.Output)
		if err != nil {
			return nil, err
		}
		v, err := Select(out, o.Target.rows(ex), k)
		if err != nil {
			return nil, err
		}
		for r, s := range v {
			scores[lo+r] = float64(s)
		}
		if done != nil {
			done(k)
		}
	}
	return scores, nil
}

// camProgress counts the rows of a perturbation CAM: the first pass of n
// rows, then the perturbed rows. It returns the callback the chunks
// report their rows to (nil without Progress).
func camProgress(p Progress, n, rows int) func(int) {
	if p == nil {
		return nil
	}
	total := n + rows
	done := n
	p(done, total)
	return func(k int) {
		done += k
		p(done, total)
	}
}

// softmax writes the softmax of x into out.
func softmax(x, out []float64) {
	hi := math.Inf(-1)
	for _, v := range x {
		hi = max(hi, v)
	}
	var sum float64
	for i, v := range x {
		out[i] = math.Exp(v - hi)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
}
