package attr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/loupe-ml/loupe/engine"
	"github.com/loupe-ml/loupe/tensor"
)

// DefaultMemoryBudget is the memory budget of a method whose
// Options.MemoryBudget is 0: a quarter of the machine's memory (the smaller
// of /proc/meminfo's MemTotal and the cgroup's memory limit), or 4 GiB where
// neither can be read. It is read once per process and never changes.
func DefaultMemoryBudget() int64 { return defaultBudget() }

var defaultBudget = sync.OnceValue(func() int64 {
	total := machineMemory()
	if total <= 0 {
		return 4 << 30
	}
	return total / 4
})

// machineMemory returns the bytes of memory the process may use, or 0 when
// unknown.
func machineMemory() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil && kb > 0 && kb < math.MaxInt64/1024 {
					total = kb * 1024
				}
				break
			}
		}
		f.Close()
	}
	// The cgroup's limit, v2 then v1 ("max" or a huge number when unset).
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(f); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 && (total == 0 || v < total) {
				total = v
			}
		}
	}
	return total
}

// ErrMemoryBudget is wrapped by the errors of methods that refuse work
// which would not fit Options.MemoryBudget even split into the smallest
// model calls; the message names the parameter to change.
var ErrMemoryBudget = errors.New("over the memory budget")

// budget is what one Attribute call may hold: the bytes it keeps for the
// whole call (held: accumulators, design matrices, permutations) and the
// bytes of its model calls, which it splits to fit what is left.
type budget struct {
	method string
	limit  int64
	held   int64
}

// newBudget returns the budget of o (Options.MemoryBudget, 0 for
// DefaultMemoryBudget) for the named method.
func newBudget(method string, o Options) (*budget, error) {
	if o.MemoryBudget < 0 {
		return nil, fmt.Errorf("attr: %s: MemoryBudget=%d: want 0 (a quarter of the machine's memory) or a number of bytes", method, o.MemoryBudget)
	}
	limit := o.MemoryBudget
	if limit == 0 {
		limit = DefaultMemoryBudget()
	}
	return &budget{method: method, limit: limit}, nil
}

// hold counts bytes the method keeps for the whole call (what names them),
// and refuses, with advice on the parameter to change, when they exceed the
// budget.
func (b *budget) hold(bytes int64, what, advice string) error {
	if bytes < 0 || b.held+bytes > b.limit || b.held+bytes < 0 {
		return fmt.Errorf("attr: %s: %s needs %s, %w of %s (Options.MemoryBudget): %s",
			b.method, what, fmtBytes(bytes), ErrMemoryBudget, fmtBytes(b.limit-b.held), advice)
	}
	b.held += bytes
	return nil
}

// units returns how many units of unitBytes each fit in what the budget has
// left, at most want (at least 1 is wanted), and refuses when not even one
// fits: a unit (one step, one sample, one perturbed copy of the batch) is
// the smallest piece a method can split its model calls into.
func (b *budget) units(unitBytes int64, want int, what, advice string) (int, error) {
	left := b.limit - b.held
	if unitBytes <= 0 {
		return max(want, 1), nil
	}
	if unitBytes > left {
		return 0, fmt.Errorf("attr: %s: %s needs %s, %w (%s left of Options.MemoryBudget): %s",
			b.method, what, fmtBytes(unitBytes), ErrMemoryBudget, fmtBytes(left), advice)
	}
	return int(min(int64(max(want, 1)), left/unitBytes)), nil
}

// mulBytes returns a*b, saturating at math.MaxInt64 (sizes that overflow
// are over any budget).
func mulBytes(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

// fmtBytes writes a size for messages: "1.5 GB", "12 MB", "300 B".
func fmtBytes(b int64) string {
	switch {
	case b == math.MaxInt64:
		return "more than 9 EB"
	case b >= 1e9:
		return fmt.Sprintf("%.3g GB", float64(b)/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.3g MB", float64(b)/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.3g kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%d B", b)
}

// tensorBytes is the memory of the elements of the tensors.
func tensorBytes(ts []*tensor.Tensor) int64 {
	var s int64
	for _, t := range ts {
		if t != nil {
			s += int64(t.Len()) * elemBytes(t.DType)
		}
	}
	return s
}

// elemBytes is the size of one element of a dtype.
func elemBytes(d tensor.DType) int64 {
	switch d {
	case tensor.Bool:
		return 1
	case tensor.Float32:
		return 4
	}
	return 8
}

// rowBytes is the memory of one row (one example) of the tensors, each of n
// rows.
func rowBytes(ts []*tensor.Tensor, n int) int64 {
	return tensorBytes(ts) / int64(max(n, 1))
}

// modelRowBytes estimates the memory one row of a model call costs beyond
// its inputs. For a *Net it is measured by a dry run: a recorded pass on
// the first example of inputs, every tensor it computes counted (as if none
// were freed), three times over when grad (their gradients in the backward
// pass, and as much again for its temporaries: on resnet18 the estimate is
// 93 MB a row where a batch of 50 rows measured 68 MB a row).
// A Go function's own memory is unknown to attr: for an attr.Func only the
// output row is counted. The estimate is meant to be conservative: it
// ignores the engine's early frees and the fused chains of unrecorded passes.
func modelRowBytes(ctx context.Context, m Model, inputs, extra []*tensor.Tensor, n int, grad bool) (int64, error) {
	nt, ok := m.(*Net)
	if !ok || nt == nil || nt.Model == nil {
		return 64, nil
	}
	one := []int{0}
	feeds, err := nt.feeds(selectRows(inputs, n, one), selectRows(extra, n, one), 1, 1, false)
	if err != nil {
		return 0, err
	}
	p, err := nt.forward(ctx, feeds, &engine.Options{Outputs: []string{nt.Output}, Record: true})
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		// The model refuses a single row (a fixed batch size): fall back
		// on a rough multiple of the input row.
		return 64 * rowBytes(inputs, n), nil
	}
	var sum int64
	seen := map[*tensor.Tensor]bool{}
	g := nt.Model.Graph()
	for _, node := range g.Nodes {
		for _, name := range node.Outputs {
			if name == "" || g.Initializers[name] != nil {
				continue
			}
			v, err := p.Value(name)
			if err != nil || seen[v] {
				continue
			}
			seen[v] = true
			sum += int64(v.Len()) * elemBytes(v.DType)
		}
	}
	if grad {
		sum *= 3
	}
	return sum, nil
}

// perEvalWithin caps per, the number of perturbed copies of the n-row
// inputs a perturbation method puts in one model call (perEval's answer),
// to what o's memory budget allows once held bytes are kept for the whole
// call: each copy costs the inputs' n rows, the model's rows (see
// modelRowBytes, a dry run for a *Net) and the target values. It refuses,
// naming the method, when not even one copy fits. Occlusion and the
// ablation methods call it as Lime and ShapleyValueSampling do:
//
//	per, err := perEvalWithin(ctx, "Occlusion", oc.Model, inputs, o, perEval(oc.PerturbationsPerEval, inputs, false), held)
func perEvalWithin(ctx context.Context, method string, m Model, inputs []*tensor.Tensor, o Options, per int, held int64) (int, error) {
	return perEvalAdvised(ctx, method, m, inputs, o, per, held, "use a coarser feature_mask or fewer samples, or raise Options.MemoryBudget")
}

// perEvalAdvised is perEvalWithin with the advice its refusal of the held
// bytes gives (the parameter of the method that sets them).
func perEvalAdvised(ctx context.Context, method string, m Model, inputs []*tensor.Tensor, o Options, per int, held int64, heldAdvice string) (int, error) {
	b, err := newBudget(method, o)
	if err != nil {
		return 0, err
	}
	if err := b.hold(held, "what the method keeps for the whole call", heldAdvice); err != nil {
		return 0, err
	}
	n := inputs[0].Shape[0]
	mrow, err := modelRowBytes(ctx, m, inputs, o.Additional, n, false)
	if err != nil {
		return 0, err
	}
	copyBytes := mulBytes(int64(n), rowBytes(inputs, n)+rowBytes(o.Additional, n)+mrow+8)
	return b.units(copyBytes, per, fmt.Sprintf("one perturbed copy of a batch of %d example(s)", n),
		"explain fewer examples at once, or raise Options.MemoryBudget")
}

// EstimateRowBytes estimates the memory one row (one example) of a call
// of m costs beyond its inputs, for the inputs' first example with the
// additional inputs (o.Additional's rows): for a *Net a dry run, a recorded
// pass on one row whose every tensor is counted, three times over when
// grad (gradients and their temporaries); for any other Model a small
// constant (its own memory is unknown). It lets code built on attr (the
// metrics) split its batches to fit Options.MemoryBudget as the methods do.
func EstimateRowBytes(ctx context.Context, m Model, inputs, additional []*tensor.Tensor, grad bool) (int64, error) {
	if len(inputs) == 0 || inputs[0] == nil || inputs[0].Rank() == 0 {
		return 0, fmt.Errorf("attr: EstimateRowBytes needs inputs with a batch dimension")
	}
	return modelRowBytes(ctx, m, inputs, additional, inputs[0].Shape[0], grad)
}
