package engine

import (
	"errors"
	"sync"

	"github.com/loupe-ml/loupe/engine/internal/op"
	"github.com/loupe-ml/loupe/tensor"
)

// Memory reuse. Kernels that implement op.Allocating take their outputs'
// memory from the pass (Pass.alloc), which draws it from the model's pool
// of buffers that earlier passes, or this one, no longer use. A buffer
// goes back to the pool when no node of the pass reads its tensor any more
// (a pass that does not record), or when the caller releases a recorded
// pass (Pass.Release), unless something outside the pass may hold it: it
// is wanted (an output or a tap), returned as a gradient, or read by a
// kernel that is not op.Allocating (which may return a view of it, as
// Reshape does): such a buffer is pinned, and left to the garbage
// collector. Pooled buffers are not zeroed: an allocating kernel writes
// every element of its outputs (or clears them).
//
// Backward does the same for gradients (Pass.galloc, for
// op.BackwardAllocating kernels, a fused ReLU's gradient and the sums
// where gradients meet): a gradient it drops goes back to the pool unless
// another gradient it still holds shares the buffer.

// bufPool holds free float32 buffers by length. sync.Pool lets the garbage
// collector drop them when no pass asks for them.
type bufPool struct {
	byLen sync.Map // int -> *sync.Pool of *[]float32
}

// get returns a buffer of n elements, from the pool when it has one.
func (b *bufPool) get(n int) []float32 {
	if p, ok := b.byLen.Load(n); ok {
		if v, _ := p.(*sync.Pool).Get().(*[]float32); v != nil {
			return *v
		}
	}
	return make([]float32, n)
}

// put gives buffer f back to the pool.
func (b *bufPool) put(f []float32) {
	p, _ := b.byLen.LoadOrStore(len(f), &sync.Pool{})
	p.(*sync.Pool).Put(&f)
}

// alloc is the op.Alloc of pass p for values: a tensor whose memory the
// pass owns.
func (p *Pass) alloc(shape ...int) *tensor.Tensor { return p.take(shape, p.owned) }

// galloc is the op.Alloc of pass p for the gradients of its Backward.
func (p *Pass) galloc(shape ...int) *tensor.Tensor { return p.take(shape, p.gowned) }

// take returns a tensor of the given shape on a pooled buffer, which it
// records in owner.
func (p *Pass) take(shape []int, owner map[*float32]bool) *tensor.Tensor {
	n, err := tensor.CheckedSize(shape)
	if err != nil {
		panic(err.Error()) // as tensor.New; the kernel's recovery names the node
	}
	if n == 0 {
		return tensor.New(shape...)
	}
	f := p.m.bufs.get(n)
	owner[&f[0]] = true
	return &tensor.Tensor{DType: tensor.Float32, Shape: append([]int(nil), shape...), F: f}
}

// backwardIn is d's vector-Jacobian product, with the gradients from the
// memory of pass p when d is op.BackwardAllocating and p is not nil.
func backwardIn(d op.Differentiable, in, out, gout []*tensor.Tensor, need []bool, p *Pass) ([]*tensor.Tensor, error) {
	if bk, ok := d.(op.BackwardAllocating); ok && p != nil {
		return bk.BackwardAlloc(in, out, gout, need, p.galloc)
	}
	return d.Backward(in, out, gout, need)
}

// recycleGrad gives the buffer of gradient g, dropped by Backward, back to
// the pool if Backward allocated it and no gradient it still holds (grads,
// raw) shares it (a kernel such as Add passes its output's gradient on).
func (p *Pass) recycleGrad(g *tensor.Tensor, grads, raw []*tensor.Tensor) {
	if g == nil || len(g.F) == 0 || !p.gowned[&g.F[0]] {
		return
	}
	ptr := &g.F[0]
	for _, list := range [][]*tensor.Tensor{grads, raw} {
		for _, t := range list {
			if t != nil && len(t.F) > 0 && &t.F[0] == ptr {
				return
			}
		}
	}
	delete(p.gowned, ptr)
	p.m.bufs.put(g.F)
}

// owns reports whether t's memory is a buffer of the pass that may go
// back to the pool.
func (p *Pass) owns(t *tensor.Tensor) bool {
	return t != nil && t.DType == tensor.Float32 && len(t.F) > 0 && p.owned[&t.F[0]] && !p.pinned[&t.F[0]]
}

// pin keeps t's buffer, if the pass owns it, out of the pool.
func (p *Pass) pin(t *tensor.Tensor) {
	if t != nil && t.DType == tensor.Float32 && len(t.F) > 0 && p.owned[&t.F[0]] {
		p.pinned[&t.F[0]] = true
	}
}

// recycle gives t's buffer back to the pool if the pass owns it and it is
// not pinned.
func (p *Pass) recycle(t *tensor.Tensor) {
	if !p.owns(t) {
		return
	}
	delete(p.owned, &t.F[0])
	p.m.bufs.put(t.F)
}

// Release ends a recorded pass: the memory of the values it computed goes
// back to the model for later passes, except for the tensors it was asked
// for (outputs and taps), the gradients its Backward returned, and what
// other kernels may have kept views of. Afterwards Backward fails, and so
// does Value for anything but those tensors. Releasing is optional:
// without it the garbage collector frees the pass's memory.
func (p *Pass) Release() {
	if p.released {
		return
	}
	p.released = true
	keep := map[int]bool{}
	for _, s := range p.want {
		keep[s] = true
		p.pin(p.vals[s])
	}
	for s, t := range p.vals {
		if keep[s] || t == nil || p.m.consts[s] != nil {
			continue
		}
		p.vals[s] = nil
		p.recycle(t)
	}
}

// errReleased is the error of a released pass's Value and Backward.
var errReleased = errors.New("the pass was released (Pass.Release)")
