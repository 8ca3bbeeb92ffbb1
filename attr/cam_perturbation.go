package attr

import (
	"context"
	"fmt"
	"math"

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
	r, err := m.Net.camPass(ctx, method, inputs, o, names, false)
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
	track := camProgress(o.Progress, n, r.acts)
	maps := make([]*tensor.Tensor, len(names))
	for i, a := range r.acts {
		c, lh, lw := a.Shape[1], a.Shape[2], a.Shape[3]
		sp := lh * lw
		// One mask [H, W] per example and channel.
		masks := make([]float32, n*c*h*w)
		plane, up := make([]float64, sp), make([]float64, h*w)
		for p := 0; p < n*c; p++ {
			for s, v := range a.F[p*sp : (p+1)*sp] {
				plane[s] = float64(v)
			}
			resize2D(plane, lh, lw, up, h, w, true)
			lo, hi := up[0], up[0]
			for _, v := range up {
				lo, hi = min(lo, v), max(hi, v)
			}
			for s, v := range up {
				masks[p*h*w+s] = float32((v - lo) / (hi - lo + 1e-8))
			}
		}
		scores, err := m.Net.channelScores(ctx, inputs, o, n, c, bs, "", nil, track, func(dst []float32, e, ch int) {
			mask := masks[(e*c+ch)*h*w : (e*c+ch+1)*h*w]
			for k := range dst {
				dst[k] *= mask[k%(h*w)]
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
	// RatioChannelsToAblate is the share of channels ablated; 0 and 1 both
	// mean every channel, the only setting supported so far.
	RatioChannelsToAblate float64
	// EigenSmooth is as GradCAM's.
	EigenSmooth bool
}

// Attribute computes the Ablation-CAM map.
func (m *AblationCAM) Attribute(ctx context.Context, inputs []*tensor.Tensor, o Options) (*Result, error) {
	const method = "AblationCAM"
	if m.RatioChannelsToAblate != 0 && m.RatioChannelsToAblate != 1 {
		return nil, fmt.Errorf("attr: %s: ratio_channels_to_ablate %g is not supported (only 1, every channel)", method, m.RatioChannelsToAblate)
	}
	n, h, w, err := camInput(m.Net, method, inputs)
	if err != nil {
		return nil, err
	}
	names, err := m.Net.camLayers(method, m.Layers)
	if err != nil {
		return nil, err
	}
	r, err := m.Net.camPass(ctx, method, inputs, o, names, false)
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
	track := camProgress(o.Progress, n, r.acts)
	maps := make([]*tensor.Tensor, len(names))
	for i, a := range r.acts {
		c, lh, lw := a.Shape[1], a.Shape[2], a.Shape[3]
		sp := lh * lw
		scores, err := m.Net.channelScores(ctx, inputs, o, n, c, bs, names[i], a.Shape[1:], track, func(dst []float32, e, ch int) {
			copy(dst, a.F[e*c*sp:(e+1)*c*sp])
			clear(dst[ch*sp : (ch+1)*sp])
		})
		if err != nil {
			return nil, err
		}
		wt := make([]float64, n*c)
		for p := range wt {
			s := float64(s0[p/c])
			wt[p] = (s - scores[p]) / s
		}
		maps[i] = camReduce(weighted(a, wt), n, c, lh, lw, m.EigenSmooth)
	}
	return camResult(maps, h, w)
}

// channelScores returns the target's value on n*c modified copies of the
// batch, row e*c+ch for example e and channel ch, evaluated in model calls
// of at most bs rows. Without a layer, fill modifies each row of the first
// input (a copy of example e's); with a layer, fill writes each row of the
// layer's value (shape row, the layer's without the batch), which replaces
// the layer's in the pass.
func (nt *Net) channelScores(ctx context.Context, inputs []*tensor.Tensor, o Options, n, c, bs int, layer string, row []int, done func(int), fill func(dst []float32, e, ch int)) ([]float64, error) {
	all := o.Target.expand(n, c, true)
	scores := make([]float64, n*c)
	for lo, hi := range chunks(n*c, bs) {
		k := hi - lo
		ex, idx := make([]int, k), make([]int, k)
		for r := range ex {
			ex[r], idx[r] = (lo+r)/c, lo+r
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
			fill(dst.F[r*size:(r+1)*size], ex[r], (lo+r)%c)
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
		v, err := Select(out, all.rows(idx), k)
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

// camProgress counts the rows of a perturbation CAM: the first pass, then
// one row per example and channel of each layer. It returns the callback
// the chunks report their rows to (nil without Progress).
func camProgress(p Progress, n int, acts []*tensor.Tensor) func(int) {
	if p == nil {
		return nil
	}
	total := n
	for _, a := range acts {
		total += n * a.Shape[1]
	}
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
