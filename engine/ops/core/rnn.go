package core

import (
	"fmt"
	"math"

	"github.com/loupe-ml/loupe/engine/op"
	"github.com/loupe-ml/loupe/graph"
	"github.com/loupe-ml/loupe/tensor"
)

// rnn is ONNX's LSTM or GRU in the forward direction with the default
// activations, both layouts, and a full backward pass through time.
type rnn struct {
	gru         bool
	hidden      int
	layout      int
	linearReset bool
}

func newRNN(gru bool) op.Factory {
	return func(n *graph.Node, opset int) (op.Kernel, error) {
		r := &rnn{gru: gru, hidden: int(n.Int("hidden_size", 0)), layout: int(n.Int("layout", 0)), linearReset: n.Int("linear_before_reset", 0) != 0}
		if d := n.Str("direction", "forward"); d != "forward" {
			return nil, op.Errorf(n, "direction %q is not supported (forward only)", d)
		}
		if n.Has("activations") || n.Has("clip") {
			return nil, op.Errorf(n, "custom activations and clip are not supported")
		}
		if n.Int("input_forget", 0) != 0 {
			return nil, op.Errorf(n, "input_forget is not supported")
		}
		if !gru && len(n.Inputs) > 7 && n.Inputs[7] != "" {
			return nil, op.Errorf(n, "peephole weights (P) are not supported")
		}
		if r.hidden <= 0 {
			return nil, op.Errorf(n, "hidden_size must be positive")
		}
		return r, nil
	}
}

func (r *rnn) gates() int {
	if r.gru {
		return 3
	}
	return 4
}

// dims checks the inputs and returns seq, batch, input sizes.
func (r *rnn) dims(in []*tensor.Tensor) (int, int, int, error) {
	for i := 0; i < 3; i++ {
		if err := wantFloat(in, i); err != nil {
			return 0, 0, 0, err
		}
	}
	x := in[0]
	if x.Rank() != 3 {
		return 0, 0, 0, fmt.Errorf("X has shape %v, want rank 3", x.Shape)
	}
	seq, batch, isz := x.Shape[0], x.Shape[1], x.Shape[2]
	if r.layout == 1 {
		seq, batch = batch, seq
	}
	G, H := r.gates(), r.hidden
	if !tensor.SameShape(in[1].Shape, []int{1, G * H, isz}) || !tensor.SameShape(in[2].Shape, []int{1, G * H, H}) {
		return 0, 0, 0, fmt.Errorf("W %v and R %v do not fit %d gates of %d units on inputs of %d", in[1].Shape, in[2].Shape, G, H, isz)
	}
	if len(in) > 3 && in[3] != nil && in[3].Len() != 2*G*H {
		return 0, 0, 0, fmt.Errorf("B has shape %v, want [1 %d]", in[3].Shape, 2*G*H)
	}
	if len(in) > 4 && in[4] != nil {
		for _, l := range in[4].AsInt64().I {
			if int(l) != seq {
				return 0, 0, 0, fmt.Errorf("sequence_lens other than the full length %d are not supported", seq)
			}
		}
	}
	for _, i := range []int{5, 6} {
		if len(in) > i && in[i] != nil && in[i].Len() != batch*H {
			return 0, 0, 0, fmt.Errorf("input %d has shape %v, want [1 %d %d]", i, in[i].Shape, batch, H)
		}
	}
	return seq, batch, isz, nil
}

// xAt returns the offset of X[t, b, :].
func (r *rnn) xAt(t, b, seq, batch, isz int) int {
	if r.layout == 1 {
		return (b*seq + t) * isz
	}
	return (t*batch + b) * isz
}

// trace holds what the forward pass computed at each step.
type trace struct {
	h, c   [][]float32 // state after step t (index t+1; 0 is the initial state)
	g      [][]float32 // gate activations per step [batch*G*H]
	hh     [][]float32 // GRU: R_h·h_{t-1} + Rb_h per step (for linear_before_reset)
	tanhC  [][]float32
	seq, b int
}

func sigm(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }
func tanh(x float32) float32 { return float32(math.Tanh(float64(x))) }

func (r *rnn) run(in []*tensor.Tensor) (*trace, error) {
	seq, batch, isz, err := r.dims(in)
	if err != nil {
		return nil, err
	}
	G, H := r.gates(), r.hidden
	W, R := in[1].F, in[2].F
	var Wb, Rb []float32
	if len(in) > 3 && in[3] != nil {
		Wb, Rb = in[3].F[:G*H], in[3].F[G*H:]
	}
	tr := &trace{seq: seq, b: batch}
	h0 := make([]float32, batch*H)
	c0 := make([]float32, batch*H)
	if len(in) > 5 && in[5] != nil {
		copy(h0, in[5].F)
	}
	if !r.gru && len(in) > 6 && in[6] != nil {
		copy(c0, in[6].F)
	}
	tr.h, tr.c = [][]float32{h0}, [][]float32{c0}
	x := in[0].F
	for t := 0; t < seq; t++ {
		hp, cp := tr.h[t], tr.c[t]
		g := make([]float32, batch*G*H)
		hh := make([]float32, batch*H)
		h := make([]float32, batch*H)
		c := make([]float32, batch*H)
		tc := make([]float32, batch*H)
		for b := 0; b < batch; b++ {
			xb := x[r.xAt(t, b, seq, batch, isz):]
			pre := g[b*G*H : (b+1)*G*H]
			for u := 0; u < G*H; u++ {
				var s float32
				for k := 0; k < isz; k++ {
					s += W[u*isz+k] * xb[k]
				}
				if Wb != nil {
					s += Wb[u]
				}
				var rs float32
				for k := 0; k < H; k++ {
					rs += R[u*H+k] * hp[b*H+k]
				}
				if Rb != nil {
					rs += Rb[u]
				}
				if r.gru && u >= 2*H {
					// candidate: recurrent part handled below
					hh[b*H+u-2*H] = rs
					pre[u] = s
				} else {
					pre[u] = s + rs
				}
			}
			if r.gru {
				for k := 0; k < H; k++ {
					z, rr := sigm(pre[k]), sigm(pre[H+k])
					pre[k], pre[H+k] = z, rr
				}
				if !r.linearReset {
					// recompute R_h (r ⊙ h) + Rb_h
					for k := 0; k < H; k++ {
						var rs float32
						for q := 0; q < H; q++ {
							rs += R[(2*H+k)*H+q] * pre[H+q] * hp[b*H+q]
						}
						if Rb != nil {
							rs += Rb[2*H+k]
						}
						hh[b*H+k] = rs
					}
				}
				for k := 0; k < H; k++ {
					z, rr := pre[k], pre[H+k]
					var a float32
					if r.linearReset {
						a = pre[2*H+k] + rr*hh[b*H+k]
					} else {
						a = pre[2*H+k] + hh[b*H+k]
					}
					n := tanh(a)
					pre[2*H+k] = n
					h[b*H+k] = (1-z)*n + z*hp[b*H+k]
				}
				continue
			}
			for k := 0; k < H; k++ {
				i, o, f, cc := sigm(pre[k]), sigm(pre[H+k]), sigm(pre[2*H+k]), tanh(pre[3*H+k])
				pre[k], pre[H+k], pre[2*H+k], pre[3*H+k] = i, o, f, cc
				c[b*H+k] = f*cp[b*H+k] + i*cc
				tc[b*H+k] = tanh(c[b*H+k])
				h[b*H+k] = o * tc[b*H+k]
			}
		}
		tr.g = append(tr.g, g)
		tr.hh = append(tr.hh, hh)
		tr.tanhC = append(tr.tanhC, tc)
		tr.h = append(tr.h, h)
		tr.c = append(tr.c, c)
	}
	return tr, nil
}

func (r *rnn) Forward(in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	tr, err := r.run(in)
	if err != nil {
		return nil, err
	}
	H, seq, batch := r.hidden, tr.seq, tr.b
	var y *tensor.Tensor
	if r.layout == 1 {
		y = tensor.New(batch, seq, 1, H)
	} else {
		y = tensor.New(seq, 1, batch, H)
	}
	for t := 0; t < seq; t++ {
		for b := 0; b < batch; b++ {
			off := (t*batch + b) * H
			if r.layout == 1 {
				off = (b*seq + t) * H
			}
			copy(y.F[off:off+H], tr.h[t+1][b*H:(b+1)*H])
		}
	}
	hs := []int{1, batch, H}
	if r.layout == 1 {
		hs = []int{batch, 1, H}
	}
	yh := tensor.New(hs...)
	copy(yh.F, tr.h[seq])
	yc := tensor.New(hs...)
	copy(yc.F, tr.c[seq])
	return []*tensor.Tensor{y, yh, yc}, nil
}

func (r *rnn) Backward(in, out, gout []*tensor.Tensor, need []bool) ([]*tensor.Tensor, error) {
	tr, err := r.run(in)
	if err != nil {
		return nil, err
	}
	seq, batch, isz, _ := r.dims(in)
	G, H := r.gates(), r.hidden
	W, R := in[1].F, in[2].F
	grads := make([]*tensor.Tensor, len(in))
	gx := tensor.New(in[0].Shape...)
	gW := tensor.New(in[1].Shape...)
	gR := tensor.New(in[2].Shape...)
	gB := tensor.New(2 * G * H)
	dh := make([]float32, batch*H)
	dc := make([]float32, batch*H)
	if len(gout) > 1 && gout[1] != nil {
		copy(dh, gout[1].F)
	}
	if len(gout) > 2 && gout[2] != nil {
		copy(dc, gout[2].F)
	}
	for t := seq - 1; t >= 0; t-- {
		if gout[0] != nil {
			for b := 0; b < batch; b++ {
				off := (t*batch + b) * H
				if r.layout == 1 {
					off = (b*seq + t) * H
				}
				for k := 0; k < H; k++ {
					dh[b*H+k] += gout[0].F[off+k]
				}
			}
		}
		hp, cp, g := tr.h[t], tr.c[t], tr.g[t]
		dhp := make([]float32, batch*H)
		dcp := make([]float32, batch*H)
		for b := 0; b < batch; b++ {
			pre := g[b*G*H : (b+1)*G*H]
			dpre := make([]float32, G*H) // gradient at the pre-activations, W part
			drec := make([]float32, G*H) // gradient at the recurrent pre-activations
			if r.gru {
				for k := 0; k < H; k++ {
					z, rr, n := pre[k], pre[H+k], pre[2*H+k]
					d := dh[b*H+k]
					dn := d * (1 - z)
					dz := d * (hp[b*H+k] - n)
					dhp[b*H+k] += d * z
					da := dn * (1 - n*n)
					dpre[2*H+k] = da
					if r.linearReset {
						drec[2*H+k] = da * rr
						dr := da * tr.hh[t][b*H+k]
						dpre[H+k] = dr * rr * (1 - rr)
					} else {
						drec[2*H+k] = da
					}
					dpre[k] = dz * z * (1 - z)
				}
				if !r.linearReset {
					// a_h = ... + R_h (r ⊙ h): gradient to r and h.
					for q := 0; q < H; q++ {
						var s float32
						for k := 0; k < H; k++ {
							s += R[(2*H+k)*H+q] * drec[2*H+k]
						}
						rr := pre[H+q]
						dhp[b*H+q] += s * rr
						dpre[H+q] = s * hp[b*H+q] * rr * (1 - rr)
					}
				}
				for u := 0; u < 2*H; u++ {
					drec[u] = dpre[u]
				}
			} else {
				for k := 0; k < H; k++ {
					i, o, f, cc := pre[k], pre[H+k], pre[2*H+k], pre[3*H+k]
					tc := tr.tanhC[t][b*H+k]
					dct := dc[b*H+k] + dh[b*H+k]*o*(1-tc*tc)
					dpre[H+k] = dh[b*H+k] * tc * o * (1 - o)
					dpre[k] = dct * cc * i * (1 - i)
					dpre[2*H+k] = dct * cp[b*H+k] * f * (1 - f)
					dpre[3*H+k] = dct * i * (1 - cc*cc)
					dcp[b*H+k] = dct * f
				}
				copy(drec, dpre)
			}
			xo := r.xAt(t, b, seq, batch, isz)
			xb := in[0].F[xo:]
			for u := 0; u < G*H; u++ {
				du, dr := dpre[u], drec[u]
				if r.gru && u >= 2*H && !r.linearReset {
					// recurrent part of the candidate went through r ⊙ h above
					dr = 0
				}
				for k := 0; k < isz; k++ {
					gx.F[xo+k] += W[u*isz+k] * du
					gW.F[u*isz+k] += xb[k] * du
				}
				gB.F[u] += du
				if dr != 0 {
					for k := 0; k < H; k++ {
						dhp[b*H+k] += R[u*H+k] * dr
						gR.F[u*H+k] += hp[b*H+k] * dr
					}
				}
				gB.F[G*H+u] += drec[u]
			}
			if r.gru && !r.linearReset {
				for k := 0; k < H; k++ {
					for q := 0; q < H; q++ {
						gR.F[(2*H+k)*H+q] += pre[H+q] * hp[b*H+q] * drec[2*H+k]
					}
				}
			}
		}
		dh, dc = dhp, dcp
	}
	if need[0] {
		grads[0] = gx
	}
	if need[1] {
		grads[1] = gW
	}
	if need[2] {
		grads[2] = gR
	}
	if len(in) > 3 && in[3] != nil && need[3] {
		gB.Shape = in[3].Shape
		grads[3] = gB
	}
	if len(in) > 5 && in[5] != nil && need[5] {
		grads[5] = &tensor.Tensor{DType: tensor.Float32, Shape: in[5].Shape, F: dh}
	}
	if !r.gru && len(in) > 6 && in[6] != nil && need[6] {
		grads[6] = &tensor.Tensor{DType: tensor.Float32, Shape: in[6].Shape, F: dc}
	}
	return grads, nil
}
