package shapeops

import (
	"fmt"
	"math"
	"strings"

	"github.com/loupe-ml/loupe/engine/internal/kernels"
	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// rnn is ONNX's LSTM or GRU with the default activations.
//
// Inputs: X, W, R, B, sequence_lens, initial_h, and for LSTM initial_c
// (and P, peepholes, which are not supported). Outputs: Y, Y_h and for
// LSTM Y_c. Gates are in ONNX order: LSTM i o f c, GRU z r h.
type rnn struct {
	lstm    bool
	hidden  int // 0: taken from R
	dirs    int
	reverse bool // single direction, run backward in time
	layout  int
	lbr     bool // GRU linear_before_reset
}

func newLSTM(n *graph.Node, opset int) (op.Kernel, error) { return newRNN(n, true) }
func newGRU(n *graph.Node, opset int) (op.Kernel, error)  { return newRNN(n, false) }

func newRNN(n *graph.Node, lstm bool) (op.Kernel, error) {
	k := rnn{lstm: lstm, hidden: int(n.Int("hidden_size", 0)), layout: int(n.Int("layout", 0))}
	if k.hidden < 0 {
		return nil, op.Errorf(n, "hidden_size %d is negative", k.hidden)
	}
	switch d := n.Str("direction", "forward"); d {
	case "forward":
		k.dirs = 1
	case "reverse":
		k.dirs, k.reverse = 1, true
	case "bidirectional":
		k.dirs = 2
	default:
		return nil, op.Errorf(n, "direction %q is not supported (forward, reverse or bidirectional)", d)
	}
	if k.layout != 0 && k.layout != 1 {
		return nil, op.Errorf(n, "layout %d is not supported (0 or 1)", k.layout)
	}
	def := []string{"Sigmoid", "Tanh"}
	if lstm {
		def = append(def, "Tanh")
	}
	if acts := n.Attrs["activations"]; acts != nil {
		ok := len(acts.Strings) == len(def)*k.dirs
		for i, a := range acts.Strings {
			if !ok || !strings.EqualFold(a, def[i%len(def)]) {
				ok = false
				break
			}
		}
		if !ok {
			return nil, op.Errorf(n, "activations %v are not supported (only the defaults %v per direction)", acts.Strings, def)
		}
	}
	if n.Has("clip") {
		return nil, op.Errorf(n, "attribute clip is not supported")
	}
	if lstm {
		if n.Int("input_forget", 0) != 0 {
			return nil, op.Errorf(n, "input_forget=1 is not supported")
		}
		if len(n.Inputs) > 7 && n.Inputs[7] != "" {
			return nil, op.Errorf(n, "peephole weights (input 7, P) are not supported")
		}
	} else {
		k.lbr = n.Int("linear_before_reset", 0) != 0
	}
	return k, nil
}

// gates returns the number of gates: 4 for LSTM, 3 for GRU.
func (k rnn) gates() int {
	if k.lstm {
		return 4
	}
	return 3
}

// rnnArgs are the checked inputs in layout 0 and flat per-direction form.
type rnnArgs struct {
	S, N, I, H, D, G int
	x                []float32 // [S N I]
	w, r             []float32 // [D GH I], [D GH H]
	b                []float32 // [D 2GH], nil for zero
	h0, c0           []float32 // [D N H], nil for zero
	lens             []int     // per batch; nil when all are S
}

func (k rnn) args(in []*tensor.Tensor) (*rnnArgs, error) {
	x, err := op.AnyArg(in, 0)
	if err != nil {
		return nil, err
	}
	if err := op.WantFloat(x, "input 0 (X)"); err != nil {
		return nil, err
	}
	if x.Rank() != 3 {
		return nil, fmt.Errorf("input 0 (X) has shape %v, want 3-D", x.Shape)
	}
	a := &rnnArgs{D: k.dirs, G: k.gates()}
	xs := x
	if k.layout == 1 {
		a.N, a.S, a.I = x.Shape[0], x.Shape[1], x.Shape[2]
		xs = permute(x, []int{1, 0, 2})
	} else {
		a.S, a.N, a.I = x.Shape[0], x.Shape[1], x.Shape[2]
	}
	a.x = xs.F
	w, err := op.AnyArg(in, 1)
	if err != nil {
		return nil, err
	}
	r, err := op.AnyArg(in, 2)
	if err != nil {
		return nil, err
	}
	if err := op.WantFloat(w, "input 1 (W)"); err != nil {
		return nil, err
	}
	if err := op.WantFloat(r, "input 2 (R)"); err != nil {
		return nil, err
	}
	a.H = k.hidden
	if a.H == 0 && r.Rank() == 3 {
		a.H = r.Shape[2]
	}
	D, GH, H := a.D, a.G*a.H, a.H
	if !tensor.SameShape(w.Shape, []int{D, GH, a.I}) {
		return nil, fmt.Errorf("input 1 (W) has shape %v, want [%d %d %d]", w.Shape, D, GH, a.I)
	}
	if !tensor.SameShape(r.Shape, []int{D, GH, H}) {
		return nil, fmt.Errorf("input 2 (R) has shape %v, want [%d %d %d]", r.Shape, D, GH, H)
	}
	a.w, a.r = w.F, r.F
	if b := op.Arg(in, 3); b != nil {
		if err := op.WantFloat(b, "input 3 (B)"); err != nil {
			return nil, err
		}
		if !tensor.SameShape(b.Shape, []int{D, 2 * GH}) {
			return nil, fmt.Errorf("input 3 (B) has shape %v, want [%d %d]", b.Shape, D, 2*GH)
		}
		a.b = b.F
	}
	if sl := op.Arg(in, 4); sl != nil {
		if sl.DType != tensor.Int64 || !tensor.SameShape(sl.Shape, []int{a.N}) {
			return nil, fmt.Errorf("input 4 (sequence_lens) is %s%v, want int64[%d]", sl.DType, sl.Shape, a.N)
		}
		full := true
		for _, v := range sl.I {
			if v < 0 || v > int64(a.S) {
				return nil, fmt.Errorf("input 4 (sequence_lens) holds %d, outside [0, %d]", v, a.S)
			}
			full = full && v == int64(a.S)
		}
		if !full {
			a.lens = make([]int, a.N)
			for i, v := range sl.I {
				a.lens[i] = int(v)
			}
		}
	}
	state := func(i int, name string) ([]float32, error) {
		t := op.Arg(in, i)
		if t == nil {
			return nil, nil
		}
		if err := op.WantFloat(t, fmt.Sprintf("input %d (%s)", i, name)); err != nil {
			return nil, err
		}
		want := []int{D, a.N, H}
		if k.layout == 1 {
			want = []int{a.N, D, H}
		}
		if !tensor.SameShape(t.Shape, want) {
			return nil, fmt.Errorf("input %d (%s) has shape %v, want %v", i, name, t.Shape, want)
		}
		if k.layout == 1 {
			t = permute(t, []int{1, 0, 2})
		}
		return t.F, nil
	}
	if a.h0, err = state(5, "initial_h"); err != nil {
		return nil, err
	}
	if k.lstm {
		if a.c0, err = state(6, "initial_c"); err != nil {
			return nil, err
		}
		if op.Arg(in, 7) != nil {
			return nil, fmt.Errorf("input 7 (P, peepholes) is not supported")
		}
	}
	return a, nil
}

// active reports whether batch entry n takes part in time step t.
func (a *rnnArgs) active(t, n int) bool { return a.lens == nil || t < a.lens[n] }

// step returns the time index of the s-th step of direction d.
func (k rnn) step(a *rnnArgs, d, s int) int {
	if k.reverse || d == 1 {
		return a.S - 1 - s
	}
	return s
}

// dirTrace is what the backward pass needs of one direction's forward run.
type dirTrace struct {
	gates []float32 // [S N GH] gate activations (LSTM i o f c, GRU z r h)
	hPrev []float32 // [S N H] the hidden state each step started from
	cPrev []float32 // LSTM: [S N H] the cell state each step started from
	tc    []float32 // LSTM: [S N H] tanh of the new cell state
	aux   []float32 // GRU: [S N H] r*hPrev (linear_before_reset 0) or hPrev R_h^T + Rb_h (1)
}

// rnnRun is a forward pass in layout 0: Y [S D N H], Y_h and Y_c [D N H].
type rnnRun struct {
	y, yh, yc []float32
	tr        []dirTrace
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func tanh32(x float32) float32 { return float32(math.Tanh(float64(x))) }

// eachDir runs fn for every direction, the two of a bidirectional layer at
// once.
func eachDir(D int, fn func(d int)) {
	if D == 1 {
		fn(0)
		return
	}
	// Through par, so that a panic in one direction reaches the caller.
	par.Tasks(D, D, func(_ int, q *par.Queue) {
		for d := q.Next(-1); d >= 0; d = q.Next(d) {
			fn(d)
		}
	})
}

func (k rnn) run(a *rnnArgs, keep bool) *rnnRun {
	S, N, I, H, D, G := a.S, a.N, a.I, a.H, a.D, a.G
	GH := G * H
	res := &rnnRun{y: make([]float32, S*D*N*H), yh: make([]float32, D*N*H), tr: make([]dirTrace, D)}
	if k.lstm {
		res.yc = make([]float32, D*N*H)
	}
	eachDir(D, func(d int) {
		wd := a.w[d*GH*I : (d+1)*GH*I]
		rd := a.r[d*GH*H : (d+1)*GH*H]
		// The recurrent weights transposed once ([H GH], for GRU [H 2H]
		// and [H H]), so that no step has to.
		var rt, rth []float32
		if k.lstm {
			rt = transposeMat(rd, GH, H)
		} else {
			rt = transposeMat(rd[:2*H*H], 2*H, H)
			rth = transposeMat(rd[2*H*H:], H, H)
		}
		// Input projections of every step at once; they become the gate
		// activations step by step.
		xw := make([]float32, S*N*GH)
		kernels.Sgemm(false, true, S*N, GH, I, 1, a.x, I, wd, I, 0, xw, GH)
		var rbh []float32
		if a.b != nil {
			bd := a.b[d*2*GH : (d+1)*2*GH]
			bias := make([]float32, GH)
			for j := range bias {
				bias[j] = bd[j]
				if k.lstm || j < 2*H || !k.lbr {
					bias[j] += bd[GH+j]
				}
			}
			if !k.lstm && k.lbr {
				rbh = bd[GH+2*H : 2*GH]
			}
			for row := 0; row < S*N; row++ {
				p := xw[row*GH : (row+1)*GH]
				for j, v := range bias {
					p[j] += v
				}
			}
		}
		tr := dirTrace{gates: xw}
		if keep {
			tr.hPrev = make([]float32, S*N*H)
			if k.lstm {
				tr.cPrev = make([]float32, S*N*H)
				tr.tc = make([]float32, S*N*H)
			}
		}
		if !k.lstm && keep {
			tr.aux = make([]float32, S*N*H)
		}
		h := make([]float32, N*H)
		if a.h0 != nil {
			copy(h, a.h0[d*N*H:(d+1)*N*H])
		}
		var c, q []float32
		if k.lstm {
			c = make([]float32, N*H)
			if a.c0 != nil {
				copy(c, a.c0[d*N*H:(d+1)*N*H])
			}
		} else if !keep {
			q = make([]float32, N*H)
		}
		for s := 0; s < S; s++ {
			t := k.step(a, d, s)
			pre := xw[t*N*GH : (t+1)*N*GH]
			if keep {
				copy(tr.hPrev[t*N*H:], h)
				if k.lstm {
					copy(tr.cPrev[t*N*H:], c)
				}
			}
			var aux []float32
			if tr.aux != nil {
				aux = tr.aux[t*N*H : (t+1)*N*H]
			} else {
				aux = q
			}
			if k.lstm {
				kernels.Sgemm(false, false, N, GH, H, 1, h, H, rt, GH, 1, pre, GH)
			} else {
				kernels.Sgemm(false, false, N, 2*H, H, 1, h, H, rt, 2*H, 1, pre, GH)
				k.gruReset(a, pre, h, aux, rth, rbh)
			}
			for n := 0; n < N; n++ {
				g := pre[n*GH : (n+1)*GH]
				yo := ((t*D+d)*N + n) * H
				on := a.active(t, n)
				for j := 0; j < H; j++ {
					var hn float32
					if k.lstm {
						i, o, f, cg := sigmoid(g[j]), sigmoid(g[H+j]), sigmoid(g[2*H+j]), tanh32(g[3*H+j])
						g[j], g[H+j], g[2*H+j], g[3*H+j] = i, o, f, cg
						cn := f*c[n*H+j] + i*cg
						tc := tanh32(cn)
						hn = o * tc
						if on {
							c[n*H+j] = cn
							if keep {
								tr.tc[(t*N+n)*H+j] = tc
							}
						}
					} else {
						z, hh := g[j], g[2*H+j]
						hn = (1-z)*hh + z*h[n*H+j]
					}
					if on {
						h[n*H+j] = hn
						res.y[yo+j] = hn
					}
				}
			}
		}
		copy(res.yh[d*N*H:], h)
		if k.lstm {
			copy(res.yc[d*N*H:], c)
		}
		res.tr[d] = tr
	})
	return res
}

// gruReset finishes a GRU step's pre-activations: the z and r gates are
// activated and the candidate h gets its recurrent term, through the reset
// gate as linear_before_reset says; it is then activated too. aux receives
// r*h (linear_before_reset 0) or h R_h^T + Rb_h (1); rth is R_h^T.
func (k rnn) gruReset(a *rnnArgs, pre, h, aux, rth, rbh []float32) {
	N, H := a.N, a.H
	GH := 3 * H
	for n := 0; n < N; n++ {
		g := pre[n*GH : n*GH+2*H]
		for j := range g {
			g[j] = sigmoid(g[j])
		}
	}
	if !k.lbr {
		for n := 0; n < N; n++ {
			for j := 0; j < H; j++ {
				aux[n*H+j] = pre[n*GH+H+j] * h[n*H+j]
			}
		}
		kernels.Sgemm(false, false, N, H, H, 1, aux, H, rth, H, 1, pre[2*H:], GH)
		for n := 0; n < N; n++ {
			g := pre[n*GH+2*H : (n+1)*GH]
			for j := range g {
				g[j] = tanh32(g[j])
			}
		}
		return
	}
	kernels.Sgemm(false, false, N, H, H, 1, h, H, rth, H, 0, aux, H)
	for n := 0; n < N; n++ {
		qa := aux[n*H : (n+1)*H]
		if rbh != nil {
			for j := range qa {
				qa[j] += rbh[j]
			}
		}
		g := pre[n*GH : (n+1)*GH]
		for j, v := range qa {
			g[2*H+j] = tanh32(g[2*H+j] + g[H+j]*v)
		}
	}
}

func (k rnn) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	a, err := k.args(in)
	if err != nil {
		return nil, err
	}
	res := k.run(a, false)
	outs := []*tensor.Tensor{k.outY(a, res.y), k.outState(a, res.yh)}
	if k.lstm {
		outs = append(outs, k.outState(a, res.yc))
	}
	return outs, nil
}

// outY wraps Y [S D N H] in the node's layout.
func (k rnn) outY(a *rnnArgs, y []float32) *tensor.Tensor {
	t := &tensor.Tensor{DType: tensor.Float32, Shape: []int{a.S, a.D, a.N, a.H}, F: y}
	if k.layout == 1 {
		return permute(t, []int{2, 0, 1, 3})
	}
	return t
}

// outState wraps a state [D N H] in the node's layout.
func (k rnn) outState(a *rnnArgs, s []float32) *tensor.Tensor {
	t := &tensor.Tensor{DType: tensor.Float32, Shape: []int{a.D, a.N, a.H}, F: s}
	if k.layout == 1 {
		return permute(t, []int{1, 0, 2})
	}
	return t
}

// gradY returns gout[0] as [S D N H] (nil stays nil).
func (k rnn) gradY(g *tensor.Tensor) []float32 {
	if g == nil {
		return nil
	}
	if k.layout == 1 {
		return permute(g, []int{1, 2, 0, 3}).F
	}
	return g.F
}

// gradState returns a state gradient as [D N H] (nil stays nil).
func (k rnn) gradState(g *tensor.Tensor) []float32 {
	if g == nil {
		return nil
	}
	if k.layout == 1 {
		return permute(g, []int{1, 0, 2}).F
	}
	return g.F
}

func (k rnn) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	grads := make([]*tensor.Tensor, len(in))
	if !op.NeedAny(need) {
		return grads, nil
	}
	a, err := k.args(in)
	if err != nil {
		return nil, err
	}
	S, N, I, H, D, G := a.S, a.N, a.I, a.H, a.D, a.G
	GH := G * H
	res := k.run(a, true)
	gy := k.gradY(op.Arg(gout, 0))
	gyh := k.gradState(op.Arg(gout, 1))
	var gyc []float32
	if k.lstm {
		gyc = k.gradState(op.Arg(gout, 2))
	}
	// Per direction: gradients of the gate pre-activations on the input
	// side (dg) and, for GRU with linear_before_reset, on the recurrent
	// side (dgr; otherwise the same), and of the initial states.
	dg := make([][]float32, D)
	dgr := make([][]float32, D)
	dh0 := make([]float32, D*N*H)
	dc0 := make([]float32, D*N*H)
	eachDir(D, func(d int) {
		dg[d], dgr[d] = k.bptt(a, d, &res.tr[d], gy, gyh, gyc, dh0[d*N*H:(d+1)*N*H], dc0[d*N*H:(d+1)*N*H])
	})
	if op.Needs(need, 0) {
		dx := make([]float32, S*N*I)
		for d := 0; d < D; d++ {
			beta := float32(1)
			if d == 0 {
				beta = 0
			}
			kernels.Sgemm(false, false, S*N, I, GH, 1, dg[d], GH, a.w[d*GH*I:(d+1)*GH*I], I, beta, dx, I)
		}
		t := &tensor.Tensor{DType: tensor.Float32, Shape: []int{S, N, I}, F: dx}
		if k.layout == 1 {
			t = permute(t, []int{1, 0, 2})
		}
		grads[0] = t
	}
	if op.Needs(need, 1) {
		dw := tensor.New(D, GH, I)
		for d := 0; d < D; d++ {
			kernels.Sgemm(true, false, GH, I, S*N, 1, dg[d], GH, a.x, I, 0, dw.F[d*GH*I:(d+1)*GH*I], I)
		}
		grads[1] = dw
	}
	if op.Needs(need, 2) {
		dr := tensor.New(D, GH, H)
		for d := 0; d < D; d++ {
			drd := dr.F[d*GH*H : (d+1)*GH*H]
			tr := &res.tr[d]
			if k.lstm || k.lbr {
				kernels.Sgemm(true, false, GH, H, S*N, 1, dgr[d], GH, tr.hPrev, H, 0, drd, H)
			} else {
				kernels.Sgemm(true, false, 2*H, H, S*N, 1, dg[d], GH, tr.hPrev, H, 0, drd, H)
				kernels.Sgemm(true, false, H, H, S*N, 1, dg[d][2*H:], GH, tr.aux, H, 0, drd[2*H*H:], H)
			}
		}
		grads[2] = dr
	}
	if op.Needs(need, 3) && op.Arg(in, 3) != nil {
		db := tensor.New(D, 2*GH)
		for d := 0; d < D; d++ {
			bw := db.F[d*2*GH : d*2*GH+GH]
			br := db.F[d*2*GH+GH : (d+1)*2*GH]
			colSums(bw, dg[d], GH)
			colSums(br, dgr[d], GH)
		}
		grads[3] = db
	}
	if op.Needs(need, 5) && op.Arg(in, 5) != nil {
		grads[5] = k.outState(a, dh0)
	}
	if k.lstm && op.Needs(need, 6) && op.Arg(in, 6) != nil {
		grads[6] = k.outState(a, dc0)
	}
	return grads, nil
}

// transposeMat returns the [cols rows] transpose of a row-major
// [rows cols] matrix.
func transposeMat(m []float32, rows, cols int) []float32 {
	t := make([]float32, rows*cols)
	const bs = 32
	for i0 := 0; i0 < rows; i0 += bs {
		for j0 := 0; j0 < cols; j0 += bs {
			for i := i0; i < min(i0+bs, rows); i++ {
				row := m[i*cols : (i+1)*cols]
				for j := j0; j < min(j0+bs, cols); j++ {
					t[j*rows+i] = row[j]
				}
			}
		}
	}
	return t
}

// colSums adds the column sums of the rows of m (width w) into dst.
func colSums(dst, m []float32, w int) {
	acc := make([]float64, w)
	for r := 0; r+w <= len(m); r += w {
		for j, v := range m[r : r+w] {
			acc[j] += float64(v)
		}
	}
	for j, v := range acc {
		dst[j] += float32(v)
	}
}

// bptt backpropagates through the steps of direction d. It returns the
// gradients of the gate pre-activations [S N GH] on the input side and on
// the recurrent side, and writes the initial states' gradients to dh0 and
// dc0 ([N H] each).
func (k rnn) bptt(a *rnnArgs, d int, tr *dirTrace, gy, gyh, gyc, dh0, dc0 []float32) ([]float32, []float32) {
	S, N, H, D, G := a.S, a.N, a.H, a.D, a.G
	GH := G * H
	rd := a.r[d*GH*H : (d+1)*GH*H]
	dg := make([]float32, S*N*GH)
	dgr := dg
	if !k.lstm && k.lbr {
		dgr = make([]float32, S*N*GH)
	}
	dh := dh0 // running gradient of the hidden state, [N H]
	if gyh != nil {
		copy(dh, gyh[d*N*H:(d+1)*N*H])
	}
	dc := dc0
	if gyc != nil {
		copy(dc, gyc[d*N*H:(d+1)*N*H])
	}
	next := make([]float32, N*H) // gradient of the previous hidden state
	tmp := make([]float32, N*H)
	for s := S - 1; s >= 0; s-- {
		t := k.step(a, d, s)
		g := tr.gates[t*N*GH : (t+1)*N*GH]
		dgt := dg[t*N*GH : (t+1)*N*GH]
		dgrt := dgr[t*N*GH : (t+1)*N*GH]
		hp := tr.hPrev[t*N*H : (t+1)*N*H]
		for n := 0; n < N; n++ {
			o := n * H
			if !a.active(t, n) {
				// The state passes through unchanged: so does its gradient.
				copy(next[o:o+H], dh[o:o+H])
				continue
			}
			gn := g[n*GH : (n+1)*GH]
			dgn := dgt[n*GH : (n+1)*GH]
			if gy != nil {
				yo := ((t*D+d)*N + n) * H
				for j := 0; j < H; j++ {
					dh[o+j] += gy[yo+j]
				}
			}
			if k.lstm {
				cp := tr.cPrev[t*N*H : (t+1)*N*H]
				tcs := tr.tc[t*N*H : (t+1)*N*H]
				for j := 0; j < H; j++ {
					i, og, f, cg := gn[j], gn[H+j], gn[2*H+j], gn[3*H+j]
					tc := tcs[o+j]
					dhj := dh[o+j]
					dcj := dc[o+j] + dhj*og*(1-tc*tc)
					dgn[j] = dcj * cg * i * (1 - i)
					dgn[H+j] = dhj * tc * og * (1 - og)
					dgn[2*H+j] = dcj * cp[o+j] * f * (1 - f)
					dgn[3*H+j] = dcj * i * (1 - cg*cg)
					dc[o+j] = dcj * f
				}
				clear(next[o : o+H])
				continue
			}
			dgrn := dgrt[n*GH : (n+1)*GH]
			for j := 0; j < H; j++ {
				z, r, hh := gn[j], gn[H+j], gn[2*H+j]
				dhj := dh[o+j]
				dgn[j] = dhj * (hp[o+j] - hh) * z * (1 - z)
				dah := dhj * (1 - z) * (1 - hh*hh)
				dgn[2*H+j] = dah
				next[o+j] = dhj * z
				if k.lbr {
					q := tr.aux[(t*N+n)*H+j]
					dar := dah * q * r * (1 - r)
					dgn[H+j] = dar
					dgrn[j], dgrn[H+j], dgrn[2*H+j] = dgn[j], dar, dah*r
				}
			}
		}
		switch {
		case k.lstm:
			kernels.Sgemm(false, false, N, H, GH, 1, dgt, GH, rd, H, 1, next, H)
		case k.lbr:
			kernels.Sgemm(false, false, N, H, GH, 1, dgrt, GH, rd, H, 1, next, H)
		default:
			// The candidate's recurrent term is (r*h) R_h^T: its gradient
			// reaches r and h through tmp = dah R_h.
			kernels.Sgemm(false, false, N, H, H, 1, dgt[2*H:], GH, rd[2*H*H:], H, 0, tmp, H)
			for n := 0; n < N; n++ {
				if !a.active(t, n) {
					continue
				}
				o := n * H
				for j := 0; j < H; j++ {
					r := tr.gates[(t*N+n)*GH+H+j]
					dgt[n*GH+H+j] = tmp[o+j] * hp[o+j] * r * (1 - r)
					next[o+j] += tmp[o+j] * r
				}
			}
			kernels.Sgemm(false, false, N, H, 2*H, 1, dgt, GH, rd, H, 1, next, H)
		}
		copy(dh, next)
	}
	return dg, dgr
}
