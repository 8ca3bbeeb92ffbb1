package mathops

import (
	"fmt"

	"github.com/loupe-ml/loupe/engine/internal/kernels"
	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/internal/par"
	"github.com/loupe-ml/loupe/tensor"
)

// sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices (see
// kernels.Sgemm, which it calls).
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	kernels.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// batchGrain is the number of multiply-adds a task of a batched product
// should have at least.
const batchGrain = 1 << 16

// forBatches runs fn for the batches [0, count), spread across the cores
// when their outputs are distinct (independent); each product may itself be
// parallelized by the GEMM, but splitting by batch costs less.
func forBatches(count, work int, independent bool, fn func(i int)) {
	if !independent || count < 2 {
		for i := range count {
			fn(i)
		}
		return
	}
	par.For(count, max(1, batchGrain/max(work, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			fn(i)
		}
	})
}

// mmPlan describes a numpy-style MatMul: 1-D operands promoted to matrices,
// batch dimensions broadcast.
type mmPlan struct {
	m, k, n    int
	out        []int // output shape
	count      int   // number of output matrices
	aOff, bOff []int // per output matrix, offset of its A and B matrices
	aAll, bAll bool  // A (B) has one matrix per output matrix (no broadcast)
	bOne       bool  // B has a single matrix
}

func planMatMul(as, bs []int) (*mmPlan, error) {
	if len(as) == 0 || len(bs) == 0 {
		return nil, fmt.Errorf("inputs have shapes %v and %v; MatMul needs at least 1-D operands", as, bs)
	}
	ap, bp := as, bs
	if len(as) == 1 {
		ap = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bp = []int{bs[0], 1}
	}
	p := &mmPlan{m: ap[len(ap)-2], k: ap[len(ap)-1], n: bp[len(bp)-1]}
	if kb := bp[len(bp)-2]; kb != p.k {
		return nil, fmt.Errorf("input 0 has shape %v and input 1 has shape %v: inner dimensions %d and %d differ", as, bs, p.k, kb)
	}
	ab, bb := ap[:len(ap)-2], bp[:len(bp)-2]
	batch, err := tensor.BroadcastShape(ab, bb)
	if err != nil {
		return nil, fmt.Errorf("input 0 has shape %v and input 1 has shape %v: batch dimensions do not broadcast", as, bs)
	}
	p.out = shapeOf(batch)
	if len(as) > 1 {
		p.out = append(p.out, p.m)
	}
	if len(bs) > 1 {
		p.out = append(p.out, p.n)
	}
	p.count = tensor.Size(batch)
	na, nb := tensor.Size(ab), tensor.Size(bb)
	p.aAll, p.bAll, p.bOne = na == p.count, nb == p.count, nb == 1
	p.aOff = make([]int, p.count)
	p.bOff = make([]int, p.count)
	if p.count > 0 {
		bp := planBcast(batch, ab, bb)
		sa, sb := p.st(bp, 0), p.st(bp, 1)
		bp.walk(0, bp.n, func(o int, offs []int, run int) {
			for i := range run {
				p.aOff[o+i] = (offs[0] + i*sa) * p.m * p.k
				p.bOff[o+i] = (offs[1] + i*sb) * p.k * p.n
			}
		})
	}
	return p, nil
}

func (p *mmPlan) st(b *bcast, j int) int { return b.st[j][len(b.dims)-1] }

// matmulKernel is MatMul with numpy semantics.
type matmulKernel struct{}

func newMatMul(*graph.Node, int) (op.Kernel, error) { return matmulKernel{}, nil }

func (matmulKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	// Not FloatArgs: taking the addresses of a and b would move them to
	// the heap, as the batch closures capture them.
	a, err := op.FloatArg(in, 0)
	if err != nil {
		return nil, err
	}
	b, err := op.FloatArg(in, 1)
	if err != nil {
		return nil, err
	}
	p, err := planMatMul(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	y := tensor.New(p.out...)
	m, k, n := p.m, p.k, p.n
	if len(y.F) == 0 {
		return []*tensor.Tensor{y}, nil
	}
	if p.bOne && p.aAll {
		// One product with the batch folded into the rows.
		sgemm(false, false, p.count*m, n, k, 1, a.F, k, b.F, n, 0, y.F, n)
		return []*tensor.Tensor{y}, nil
	}
	forBatches(p.count, m*n*k, true, func(i int) {
		sgemm(false, false, m, n, k, 1, a.F[p.aOff[i]:], k, b.F[p.bOff[i]:], n, 0, y.F[i*m*n:], n)
	})
	return []*tensor.Tensor{y}, nil
}

func (matmulKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res := make([]*tensor.Tensor, len(in))
	a, b := op.Arg(in, 0), op.Arg(in, 1)
	if a == nil || b == nil {
		return nil, fmt.Errorf("backward needs both inputs")
	}
	needA, needB := op.Needs(need, 0), op.Needs(need, 1)
	if !needA && !needB {
		return res, nil
	}
	p, err := planMatMul(a.Shape, b.Shape)
	if err != nil {
		return nil, err
	}
	g := op.GradAt(gout, 0)
	if g != nil && len(g.F) != tensor.Size(p.out) {
		return nil, fmt.Errorf("output gradient has shape %v, want %v", g.Shape, p.out)
	}
	m, k, n := p.m, p.k, p.n
	if needA {
		da := zerosLike(a)
		res[0] = da
		if g != nil && len(da.F) > 0 && p.count > 0 {
			if p.bOne && p.aAll {
				sgemm(false, true, p.count*m, k, n, 1, g.F, n, b.F, n, 0, da.F, k)
			} else {
				beta := float32(1) // accumulate over the batches that share a matrix
				if p.aAll {
					beta = 0
				}
				forBatches(p.count, m*n*k, p.aAll, func(i int) {
					sgemm(false, true, m, k, n, 1, g.F[i*m*n:], n, b.F[p.bOff[i]:], n, beta, da.F[p.aOff[i]:], k)
				})
			}
		}
	}
	if needB {
		db := zerosLike(b)
		res[1] = db
		if g != nil && len(db.F) > 0 && p.count > 0 {
			if p.bOne && p.aAll {
				sgemm(true, false, k, n, p.count*m, 1, a.F, k, g.F, n, 0, db.F, n)
			} else {
				beta := float32(1)
				if p.bAll {
					beta = 0
				}
				forBatches(p.count, m*n*k, p.bAll, func(i int) {
					sgemm(true, false, k, n, m, 1, a.F[p.aOff[i]:], k, g.F[i*m*n:], n, beta, db.F[p.bOff[i]:], n)
				})
			}
		}
	}
	return res, nil
}

// gemmKernel is Gemm: Y = alpha*op(A)*op(B) + beta*C, with C optional and
// broadcast (unidirectionally) to Y's shape.
type gemmKernel struct {
	alpha, beta    float32
	transA, transB bool
}

func newGemm(n *graph.Node, _ int) (op.Kernel, error) {
	return gemmKernel{
		alpha:  n.Float("alpha", 1),
		beta:   n.Float("beta", 1),
		transA: n.Int("transA", 0) != 0,
		transB: n.Int("transB", 0) != 0,
	}, nil
}

// dims checks the inputs and returns m, n, k and C (nil if omitted).
func (g gemmKernel) dims(in []*tensor.Tensor) (a, b, c *tensor.Tensor, m, n, k int, err error) {
	if err = op.FloatArgs(in, &a, &b); err != nil {
		return
	}
	if len(a.Shape) != 2 {
		err = fmt.Errorf("input 0 has shape %v, want 2-D", a.Shape)
		return
	}
	if len(b.Shape) != 2 {
		err = fmt.Errorf("input 1 has shape %v, want 2-D", b.Shape)
		return
	}
	m, k = a.Shape[0], a.Shape[1]
	if g.transA {
		m, k = k, m
	}
	kb, n := b.Shape[0], b.Shape[1]
	if g.transB {
		kb, n = n, kb
	}
	if kb != k {
		err = fmt.Errorf("input 0 has shape %v and input 1 has shape %v: inner dimensions %d and %d differ (transA=%v, transB=%v)",
			a.Shape, b.Shape, k, kb, g.transA, g.transB)
		return
	}
	if op.Arg(in, 2) != nil {
		if c, err = op.FloatArg(in, 2); err != nil {
			return
		}
		if s, e := tensor.BroadcastShape(c.Shape, []int{m, n}); e != nil || !tensor.SameShape(s, []int{m, n}) {
			err = fmt.Errorf("input 2 has shape %v, which does not broadcast to [%d %d]", c.Shape, m, n)
		}
	}
	return
}

func (g gemmKernel) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	a, b, c, m, n, k, err := g.dims(in)
	if err != nil {
		return nil, err
	}
	y := tensor.New(m, n)
	if len(y.F) == 0 {
		return []*tensor.Tensor{y}, nil
	}
	beta := float32(0)
	if c != nil && g.beta != 0 {
		beta = 1
		if len(c.F) == len(y.F) {
			copy(y.F, c.F)
		} else {
			y = expandTo(c, []int{m, n})
		}
		if g.beta != 1 {
			for i := range y.F {
				y.F[i] *= g.beta
			}
		}
	}
	sgemm(g.transA, g.transB, m, n, k, g.alpha, a.F, a.Shape[1], b.F, b.Shape[1], beta, y.F, n)
	return []*tensor.Tensor{y}, nil
}

func (g gemmKernel) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	res := make([]*tensor.Tensor, len(in))
	if !op.NeedAny(need) {
		return res, nil
	}
	a, b, c, m, n, k, err := g.dims(in)
	if err != nil {
		return nil, err
	}
	gy := op.GradAt(gout, 0)
	if gy != nil && len(gy.F) != m*n {
		return nil, fmt.Errorf("output gradient has shape %v, want [%d %d]", gy.Shape, m, n)
	}
	lda, ldb := a.Shape[1], b.Shape[1]
	if op.Needs(need, 0) {
		da := zerosLike(a)
		res[0] = da
		if gy != nil && len(da.F) > 0 {
			if !g.transA {
				sgemm(false, !g.transB, m, k, n, g.alpha, gy.F, n, b.F, ldb, 0, da.F, k)
			} else {
				sgemm(g.transB, true, k, m, n, g.alpha, b.F, ldb, gy.F, n, 0, da.F, m)
			}
		}
	}
	if op.Needs(need, 1) {
		db := zerosLike(b)
		res[1] = db
		if gy != nil && len(db.F) > 0 {
			if !g.transB {
				sgemm(!g.transA, false, k, n, m, g.alpha, a.F, lda, gy.F, n, 0, db.F, n)
			} else {
				sgemm(true, g.transA, n, k, m, g.alpha, gy.F, n, a.F, lda, 0, db.F, k)
			}
		}
	}
	if op.Needs(need, 2) && c != nil {
		if gy == nil || g.beta == 0 {
			res[2] = zerosLike(c)
		} else {
			gm := &tensor.Tensor{DType: tensor.Float32, Shape: []int{m, n}, F: gy.F}
			s := sumTo(gm, c.Shape)
			if g.beta != 1 {
				t := tensor.New(c.Shape...)
				for i, v := range s.F {
					t.F[i] = v * g.beta
				}
				s = t
			}
			res[2] = s
		}
	}
	return res, nil
}
