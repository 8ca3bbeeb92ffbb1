package llm

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/loupe-ml/loupe/attr"
	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// Names of the tensors NewModel adds to the graph.
const (
	lastLogitsName = "loupe_llm_last_logits"
	lastIndexName  = "loupe_llm_last_index"
	logProbsName   = "loupe_llm_log_probs"
)

// DefaultMaxBatch is how many sequences of one length Model.LogProbs runs
// in one model call when Model.MaxBatch is 0.
const DefaultMaxBatch = 64

// MaxSequence bounds the length of a sequence (prompt and continuation) a
// Model runs.
const MaxSequence = 1 << 16

// Model is a causal language model exported to ONNX, prepared for
// attribution: int64 token ids [N, L] in, and either the next-token logits
// of the last position [N, V] or the logits of every position [N, L, V]
// out (the Hugging Face interface, of which only the last position is
// used). NewModel appends a log-softmax over the last position's logits,
// which is what Captum's LLM attribution explains.
type Model struct {
	// Net runs token ids to the log-probabilities of the next token
	// [N, V]; its Extra inputs are the attention mask and position ids,
	// when the model has them (fed by the methods of this package).
	Net *attr.Net
	// Input is the name of the token-id input.
	Input string
	// AttentionMask and PositionIDs name those inputs ("" when the model
	// has none); they are fed with ones and 0..L-1.
	AttentionMask string
	PositionIDs   string
	// VocabSize is the size of the output's last dimension.
	VocabSize int
	// MaxBatch is how many sequences of one length go into one model call
	// (0: DefaultMaxBatch).
	MaxBatch int
}

// Load reads an ONNX language model and prepares it (see NewModel).
func Load(path string) (*Model, error) {
	m, err := engine.Load(path)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	lm, err := NewModel(m)
	if err != nil {
		return nil, fmt.Errorf("llm: %s: %w", path, err)
	}
	return lm, nil
}

// NewModel prepares a compiled language model: its token input is the
// int64 input named input_ids or tokens (else its only int64 input other
// than the mask and position ids), an input named attention_mask is fed
// with ones and one named position_ids with 0..L-1; any other input is an
// error. Its first output is the logits, [N, V] or [N, L, V]. The model is
// compiled again with a log-softmax over the last position's logits.
func NewModel(m *engine.Model) (*Model, error) {
	if m == nil {
		return nil, fmt.Errorf("llm: nil model")
	}
	lm := &Model{}
	var ints []string
	for _, in := range m.Inputs() {
		switch in.Name {
		case "attention_mask":
			lm.AttentionMask = in.Name
		case "position_ids":
			lm.PositionIDs = in.Name
		case "input_ids", "tokens":
			lm.Input = in.Name
		default:
			ints = append(ints, in.Name)
		}
	}
	if lm.Input == "" {
		if len(ints) != 1 {
			return nil, fmt.Errorf("llm: cannot tell the token input among %v (name it input_ids or tokens)", ints)
		}
		lm.Input, ints = ints[0], nil
	}
	if len(ints) > 0 {
		return nil, fmt.Errorf("llm: the model has inputs %v besides the tokens, attention_mask and position_ids", ints)
	}
	outs := m.OutputNames()
	if len(outs) == 0 {
		return nil, fmt.Errorf("llm: the model has no output")
	}
	logits := outs[0]
	// Find the rank of the logits with a two-token probe.
	probe := map[string]*tensor.Tensor{lm.Input: tensor.NewInt(1, 2)}
	lm.addExtras(probe, 1, 2)
	p, err := m.Forward(context.Background(), probe, &engine.Options{Outputs: []string{logits}})
	if err != nil {
		return nil, fmt.Errorf("llm: running the model on two tokens: %w", err)
	}
	out, err := p.Value(logits)
	if err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	g := m.Graph()
	ng := &graph.Graph{Name: g.Name, Inputs: g.Inputs, ValueInfo: g.ValueInfo, Opsets: g.Opsets,
		Initializers: maps.Clone(g.Initializers), Nodes: slices.Clone(g.Nodes),
		Outputs: []graph.ValueInfo{{Name: logProbsName, DType: tensor.Float32}}}
	last := logits
	switch out.Rank() {
	case 2:
	case 3:
		idx := tensor.NewInt()
		idx.I[0] = -1
		ng.Initializers[lastIndexName] = idx
		ng.Nodes = append(ng.Nodes, &graph.Node{Name: lastLogitsName, OpType: "Gather",
			Inputs: []string{logits, lastIndexName}, Outputs: []string{lastLogitsName},
			Attrs: map[string]*graph.Attr{"axis": {Name: "axis", Type: graph.AttrInt, I: 1}}})
		last = lastLogitsName
	default:
		return nil, fmt.Errorf("llm: output %q has shape %v; a language model gives [N, V] or [N, L, V] logits", logits, out.Shape)
	}
	if out.DType != tensor.Float32 {
		return nil, fmt.Errorf("llm: output %q is %s, not float logits", logits, out.DType)
	}
	lm.VocabSize = out.Shape[out.Rank()-1]
	ng.Nodes = append(ng.Nodes, &graph.Node{Name: logProbsName, OpType: "LogSoftmax",
		Inputs: []string{last}, Outputs: []string{logProbsName},
		Attrs: map[string]*graph.Attr{"axis": {Name: "axis", Type: graph.AttrInt, I: 1}}})
	cm, err := engine.Compile(ng)
	if err != nil {
		return nil, fmt.Errorf("llm: adding the log-softmax: %w", err)
	}
	lm.Net = &attr.Net{Model: cm, Inputs: []string{lm.Input}, Output: logProbsName}
	if lm.AttentionMask != "" {
		lm.Net.Extra = append(lm.Net.Extra, lm.AttentionMask)
	}
	if lm.PositionIDs != "" {
		lm.Net.Extra = append(lm.Net.Extra, lm.PositionIDs)
	}
	return lm, nil
}

// addExtras feeds the attention mask (ones) and position ids (0..l-1) of
// n sequences of length l.
func (lm *Model) addExtras(feeds map[string]*tensor.Tensor, n, l int) {
	for _, e := range lm.extras(n, l) {
		feeds[e.name] = e.t
	}
}

type namedTensor struct {
	name string
	t    *tensor.Tensor
}

// extras returns the mask and position inputs of n sequences of length l,
// in the order of Net.Extra.
func (lm *Model) extras(n, l int) []namedTensor {
	var out []namedTensor
	if lm.AttentionMask != "" {
		m := tensor.NewInt(n, l)
		for i := range m.I {
			m.I[i] = 1
		}
		out = append(out, namedTensor{lm.AttentionMask, m})
	}
	if lm.PositionIDs != "" {
		p := tensor.NewInt(n, l)
		for i := range p.I {
			p.I[i] = int64(i % l)
		}
		out = append(out, namedTensor{lm.PositionIDs, p})
	}
	return out
}

// Additional returns the tensors for Options.Additional of an attr method
// run on the Net with n sequences of length l.
func (lm *Model) Additional(n, l int) []*tensor.Tensor {
	var out []*tensor.Tensor
	for _, e := range lm.extras(n, l) {
		out = append(out, e.t)
	}
	return out
}

// checkIDs checks that the ids are in the vocabulary.
func (lm *Model) checkIDs(ids []int64) error {
	for i, id := range ids {
		if id < 0 || id >= int64(lm.VocabSize) {
			return fmt.Errorf("llm: token %d has id %d, outside the vocabulary [0, %d)", i, id, lm.VocabSize)
		}
	}
	return nil
}

// LogProbs runs each sequence and returns the log-probabilities of the
// token that follows it, [len(seqs), V]. Sequences of the same length run
// together, MaxBatch at a time.
func (lm *Model) LogProbs(ctx context.Context, seqs [][]int64) (*tensor.Tensor, error) {
	if lm == nil || lm.Net == nil {
		return nil, fmt.Errorf("llm: the Model is not prepared (use NewModel)")
	}
	out := tensor.New(len(seqs), lm.VocabSize)
	byLen := map[int][]int{}
	var lens []int
	for i, s := range seqs {
		if len(s) == 0 || len(s) > MaxSequence {
			return nil, fmt.Errorf("llm: sequence %d has %d tokens; it needs 1 to %d", i, len(s), MaxSequence)
		}
		if err := lm.checkIDs(s); err != nil {
			return nil, fmt.Errorf("sequence %d: %w", i, err)
		}
		if _, ok := byLen[len(s)]; !ok {
			lens = append(lens, len(s))
		}
		byLen[len(s)] = append(byLen[len(s)], i)
	}
	mb := lm.MaxBatch
	if mb <= 0 {
		mb = DefaultMaxBatch
	}
	v := lm.VocabSize
	for _, l := range lens {
		rows := byLen[l]
		for s := 0; s < len(rows); s += mb {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			chunk := rows[s:min(s+mb, len(rows))]
			ids := tensor.NewInt(len(chunk), l)
			for k, r := range chunk {
				copy(ids.I[k*l:], seqs[r])
			}
			in := append([]*tensor.Tensor{ids}, lm.Additional(len(chunk), l)...)
			y, err := lm.Net.Eval(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("llm: %w", err)
			}
			if y.Len() != len(chunk)*v {
				return nil, fmt.Errorf("llm: the model gave shape %v for %d sequences", y.Shape, len(chunk))
			}
			for k, r := range chunk {
				copy(out.F[r*v:(r+1)*v], y.F[k*v:(k+1)*v])
			}
		}
	}
	return out, nil
}

// GenArgs are the arguments of greedy generation (Captum's gen_args, as
// Hugging Face's generate takes them; sampling is not offered).
type GenArgs struct {
	// MaxNewTokens is how many tokens to generate; 0 means Captum's
	// default, 25.
	MaxNewTokens int
	// EOS, if set, stops generation after any of these ids (Hugging
	// Face's eos_token_id).
	EOS []int64
}

// Generate continues prompt greedily (the most likely token each step)
// and returns the new tokens. Cost: MaxNewTokens forward runs.
func (lm *Model) Generate(ctx context.Context, prompt []int64, g GenArgs) ([]int64, error) {
	n := g.MaxNewTokens
	if n == 0 {
		n = 25
	}
	if n < 0 || n+len(prompt) > MaxSequence {
		return nil, fmt.Errorf("llm: MaxNewTokens %d must be positive and keep the sequence under %d tokens", n, MaxSequence)
	}
	seq := slices.Clone(prompt)
	var out []int64
	for range n {
		lp, err := lm.LogProbs(ctx, [][]int64{seq})
		if err != nil {
			return nil, err
		}
		best := 0
		for i, x := range lp.F {
			if x > lp.F[best] {
				best = i
			}
		}
		out = append(out, int64(best))
		seq = append(seq, int64(best))
		if slices.Contains(g.EOS, int64(best)) {
			break
		}
	}
	return out, nil
}

// EmbeddingLayer returns the name of the embedding lookup's output: the
// tensor made by a Gather from a weight matrix at the token ids (possibly
// cast first), the layer LLMGradientAttribution attributes to by default.
func (lm *Model) EmbeddingLayer() (string, error) {
	g := lm.Net.Model.Graph()
	ids := map[string]bool{lm.Input: true}
	for _, n := range g.Nodes {
		if n.OpType == "Cast" && len(n.Inputs) == 1 && ids[n.Inputs[0]] {
			ids[n.Outputs[0]] = true
		}
	}
	for _, n := range g.Nodes {
		if n.OpType != "Gather" || len(n.Inputs) != 2 || len(n.Outputs) != 1 {
			continue
		}
		if _, w := g.Initializers[n.Inputs[0]]; w && ids[n.Inputs[1]] {
			return n.Outputs[0], nil
		}
	}
	return "", fmt.Errorf("llm: found no embedding lookup (a Gather of a weight at %q); name the layer", lm.Input)
}
