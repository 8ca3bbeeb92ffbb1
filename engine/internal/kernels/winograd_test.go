package kernels

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWinogradMatrices checks the identity behind F(4, 3) in float64,
// Aᵀ[(G g) ⊙ (Bᵀ d)] = the correlation of d (6) with g (3), on basis
// vectors, for the points in use and the common 0, ±1, ±2; and that the
// float32 tables are those matrices.
func TestWinogradMatrices(t *testing.T) {
	for _, pts := range [][winoIn - 1]float64{winoPoints, {0, 1, -1, 2, -2}} {
		at, g, bt := winoMatrices(pts)
		for dj := 0; dj < winoIn; dj++ {
			for gk := 0; gk < 3; gk++ {
				for i := 0; i < winoOut; i++ {
					var s float64
					for j := 0; j < winoIn; j++ {
						s += at[i][j] * g[j][gk] * bt[j][dj]
					}
					want := 0.0
					if dj-i == gk {
						want = 1
					}
					if math.Abs(s-want) > 1e-12 {
						t.Fatalf("points %v: y[%d] for d=e%d, g=e%d is %g, want %g", pts, i, dj, gk, s, want)
					}
				}
			}
		}
	}
	at, g, bt := winoMatrices(winoPoints)
	for i := 0; i < winoIn; i++ {
		for j := 0; j < winoIn; j++ {
			if wino.bt[i*winoIn+j] != float32(bt[i][j]) {
				t.Fatalf("bt[%d][%d] = %g, want %g", i, j, wino.bt[i*winoIn+j], bt[i][j])
			}
			want := 0.0
			if i < winoOut {
				want = at[i][j]
			}
			if wino.at[i*winoIn+j] != float32(want) {
				t.Fatalf("at[%d][%d] = %g, want %g", i, j, wino.at[i*winoIn+j], want)
			}
		}
	}
	for a := 0; a < winoIn; a++ {
		for k := 0; k < 3; k++ {
			if got, want := wino.g[a*3+k], float32(g[a][k]); got != want {
				t.Fatalf("g[%d][%d] = %g, want %g", a, k, got, want)
			}
		}
	}
}

var winoCases = []struct {
	name string
	p    ConvParams
}{
	{"pad1 one tile", ConvParams{N: 1, C: 2, H: 4, W: 4, M: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"pad0 odd", ConvParams{N: 2, C: 3, H: 9, W: 7, M: 5}},
	{"pad1 odd", ConvParams{N: 3, C: 5, H: 11, W: 13, M: 7, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"asym pads", ConvParams{N: 2, C: 4, H: 10, W: 6, M: 4, PadT: 2, PadL: 0, PadB: 1, PadR: 2}},
	{"tiny", ConvParams{N: 1, C: 1, H: 3, W: 3, M: 1}},
	{"1 row", ConvParams{N: 2, C: 3, H: 1, W: 19, M: 2, PadT: 1, PadB: 1, PadL: 1, PadR: 1}},
	{"many tiles", ConvParams{N: 3, C: 9, H: 30, W: 26, M: 13, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"deep", ConvParams{N: 2, C: 300, H: 6, W: 5, M: 8, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	{"wide", ConvParams{N: 1, C: 7, H: 8, W: 8, M: 150, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
}

func TestConv2DWinograd(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, tc := range winoCases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.KH, p.KW = 3, 3
			p = p.norm()
			if !winogradOK(p) {
				t.Fatal("not a Winograd convolution")
			}
			nx, nw, ny := sizes(p)
			x, w, bias := rnd(r, nx), rnd(r, nw), rnd(r, p.M)
			for _, b := range [][]float32{nil, bias} {
				want := naiveConv(p, x, w, b)
				for _, workers := range []int{0, 1, 3} {
					y := nanSlice(ny)
					conv2DWinograd(p, x, w, nil, b, y, workers)
					closeToMax(t, fmt.Sprintf("workers=%d bias=%v", workers, b != nil), y, want, 2e-5)
					// Both modes, with several blocks and bands.
					pl := planWinograd(p, workers)
					for _, q := range []winoPlan{pl.withBlock(winoTile), pl.withBlock(8), pl.withBands(p, 8, mr, false), pl.withBands(p, 2*winoTile, 2*mr, false), pl.withBands(p, 8, mr, true)} {
						y := nanSlice(ny)
						winoRun(p, q, x, w, nil, b, y, false)
						closeToMax(t, fmt.Sprintf("workers=%d bias=%v plan %+v", workers, b != nil, q), y, want, 2e-5)
					}
				}
			}
			// The input gradient, as the transposed convolution with the
			// weights read rotated.
			gy, want := rnd(r, ny), nanSlice(nx)
			inputGradChunked(p, w, gy, want, 0)
			q, _ := p.transposed()
			for _, workers := range []int{0, 1, 3} {
				gx := nanSlice(nx)
				winoInputGrad(p, w, nil, gy, gx, workers)
				closeToMax(t, fmt.Sprintf("input gradient workers=%d", workers), gx, want, 2e-5)
				pl := planWinograd(q, workers)
				for _, ql := range []winoPlan{pl.withBlock(winoTile), pl.withBlock(8), pl.withBands(q, 8, mr, false), pl.withBands(q, 2*winoTile, 2*mr, false), pl.withBands(q, 8, mr, true)} {
					gx := nanSlice(nx)
					winoRun(q, ql, gy, w, nil, nil, gx, true)
					closeToMax(t, fmt.Sprintf("input gradient workers=%d plan %+v", workers, ql), gx, want, 2e-5)
				}
			}
		})
	}
}

// closeToMax fails unless every element of got is within tol·max(1,
// max|want|) of want's (Winograd's errors scale with the largest
// outputs, not with each one).
func closeToMax(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, v := range want {
		scale = max(scale, math.Abs(float64(v)))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol*scale) {
			t.Fatalf("%s: [%d] = %g, want %g (max |want| %g)", what, i, got[i], want[i], scale)
		}
	}
}

// winoErr returns the relative L2 error of y against want and its largest
// error relative to max|want|.
func winoErr(y []float32, want []float64) (rel2, relMax float64) {
	var e2, w2, emax, wmax float64
	for i, v := range y {
		d := float64(v) - want[i]
		e2 += d * d
		w2 += want[i] * want[i]
		emax = max(emax, math.Abs(d))
		wmax = max(wmax, math.Abs(want[i]))
	}
	return math.Sqrt(e2 / w2), emax / wmax
}

// naiveConv64 is naiveConv without the final rounding to float32.
func naiveConv64(p ConvParams, x, w []float32) []float64 {
	OH, OW := p.OutH(), p.OutW()
	y := make([]float64, p.N*p.M*OH*OW)
	for n := 0; n < p.N; n++ {
		for m := 0; m < p.M; m++ {
			for c := 0; c < p.C; c++ {
				xc := x[(n*p.C+c)*p.H*p.W:]
				for kh := 0; kh < 3; kh++ {
					for kw := 0; kw < 3; kw++ {
						wv := float64(w[((m*p.C+c)*3+kh)*3+kw])
						for oh := 0; oh < OH; oh++ {
							ih := oh - p.PadT + kh
							if ih < 0 || ih >= p.H {
								continue
							}
							yr := y[((n*p.M+m)*OH+oh)*OW:]
							for ow := 0; ow < OW; ow++ {
								iw := ow - p.PadL + kw
								if iw < 0 || iw >= p.W {
									continue
								}
								yr[ow] += wv * float64(xc[ih*p.W+iw])
							}
						}
					}
				}
			}
		}
	}
	return y
}

// resnet18Wino lists resnet18's 3×3 stride-1 layers: channels and size.
var resnet18Wino = []struct{ c, h int }{{64, 56}, {128, 28}, {256, 14}, {512, 7}}

// TestWinogradAccuracy compares Winograd and direct convolutions with a
// float64 reference on resnet18's 3×3 layers, with N(0,1) inputs and
// He-initialized weights (std √(2/9C)), forward and input gradient (of
// an N(0,1) output gradient).
func TestWinogradAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, l := range resnet18Wino {
		m := l.c
		if testing.Short() {
			m = 16
		}
		p := ConvParams{N: 1, C: l.c, H: l.h, W: l.h, M: m, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}.norm()
		nx, nw, ny := sizes(p)
		x, w, gy := rnd(r, nx), rnd(r, nw), rnd(r, ny)
		std := float32(math.Sqrt(2 / float64(9*p.C)))
		for i := range w {
			w[i] *= std
		}
		// The input gradient is the convolution q of gy with the weights
		// flipped, their channel axes swapped.
		q, _ := p.transposed()
		wt := make([]float32, nw)
		for c := 0; c < p.C; c++ {
			for o := 0; o < p.M; o++ {
				for k := 0; k < 9; k++ {
					wt[(c*p.M+o)*9+8-k] = w[(o*p.C+c)*9+k]
				}
			}
		}
		for _, tc := range []struct {
			what     string
			direct   func(y []float32)
			winograd func(y []float32)
			want     []float64
			n        int
		}{
			{"forward", func(y []float32) { conv2DDirect(p, x, w, nil, y, 0) }, func(y []float32) { conv2DWinograd(p, x, w, nil, nil, y, 0) }, naiveConv64(p, x, w), ny},
			{"input gradient", func(gx []float32) { inputGradChunked(p, w, gy, gx, 0) }, func(gx []float32) { winoInputGrad(p, w, nil, gy, gx, 0) }, naiveConv64(q, gy, wt), nx},
		} {
			y := make([]float32, tc.n)
			tc.direct(y)
			d2, dmax := winoErr(y, tc.want)
			tc.winograd(y)
			w2, wmax := winoErr(y, tc.want)
			t.Logf("%d->%d %dx%d %s: direct rel L2 %.2e max %.2e; Winograd rel L2 %.2e max %.2e", p.C, p.M, p.H, p.W, tc.what, d2, dmax, w2, wmax)
			if !(w2 <= 1e-5 && wmax <= 1e-4) {
				t.Errorf("%d->%d %dx%d %s: Winograd rel L2 %.2e, max %.2e of max|y|", p.C, p.M, p.H, p.W, tc.what, w2, wmax)
			}
		}
	}
}

// TestWinogradSpeed prints the speed of direct and Winograd convolutions
// on resnet18's 3×3 layers, measured interleaved, when LOUPE_WINO_BENCH
// is set.
func TestWinogradSpeed(t *testing.T) {
	if os.Getenv("LOUPE_WINO_BENCH") == "" {
		t.Skip("set LOUPE_WINO_BENCH=1")
	}
	r := rand.New(rand.NewPCG(1, 2))
	rounds := 10
	// LOUPE_WINO_BENCH=1: resnet18's layers; =C/N,C/N,...: those of
	// them with C channels at batch N; =small: smaller ones (as in the
	// conformance suite's resnet_mini, and others).
	layers := resnet18Wino
	if os.Getenv("LOUPE_WINO_BENCH") == "small" {
		layers = []struct{ c, h int }{{8, 56}, {16, 28}, {32, 14}, {64, 7}, {16, 56}, {32, 28}, {32, 56}, {48, 28}, {48, 14}, {128, 14}}
	}
	for _, batch := range []int{1, 10} {
		for _, l := range layers {
			if f := os.Getenv("LOUPE_WINO_BENCH"); f != "1" && f != "small" && !strings.Contains(f, fmt.Sprintf("small%d/%d", l.c, batch)) && !strings.Contains(f, fmt.Sprintf("%d/%d", l.c, batch)) {
				continue
			}
			p := ConvParams{N: batch, C: l.c, H: l.h, W: l.h, M: l.c, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}.norm()
			nx, nw, ny := sizes(p)
			x, w, bias, y, gy, gx := rnd(r, nx), rnd(r, nw), rnd(r, p.M), make([]float32, ny), rnd(r, ny), make([]float32, nx)
			flops := 2 * float64(p.N*p.M*p.C*9*p.OutH()*p.OutW())
			variants := []struct {
				name string
				f    func()
			}{
				{"direct", func() { conv2DDirect(p, x, w, bias, y, 0) }},
				{"winograd", func() { conv2DWinograd(p, x, w, nil, bias, y, 0) }},
				{"grad", func() { inputGradNoWino(p, w, gy, gx) }},
				{"grad-wino", func() { winoInputGrad(p, w, nil, gy, gx, 0) }},
			}
			// The fastest single run of each, the variants taking turns:
			// the machine is shared, and other work only slows a run down.
			best := make([]float64, len(variants))
			for round := 0; round < rounds; round++ {
				for i, v := range variants {
					v.f()
					start := time.Now()
					for time.Since(start) < 60*time.Millisecond {
						t0 := time.Now()
						v.f()
						best[i] = max(best[i], flops/time.Since(t0).Seconds()/1e9)
					}
				}
			}
			t.Logf("N=%-2d %3d %2dx%-2d fwd direct %6.1f wino %6.1f (x%.2f) | grad direct %6.1f wino %6.1f (x%.2f) GFLOP/s",
				batch, l.c, l.h, l.h, best[0], best[1], best[1]/best[0], best[2], best[3], best[3]/best[2])
		}
	}
}

// TestWinogradDispatch checks Conv2D and Conv2DInputGrad on shapes that
// useWinograd sends to conv2DWinograd, against the float64 convolution
// and against the direct paths.
func TestWinogradDispatch(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, p := range []ConvParams{
		{N: 2, C: 32, H: 17, W: 19, M: 40, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 3, C: 36, H: 13, W: 10, M: 33, PadT: 2, PadL: 0, PadB: 1, PadR: 2},
		{N: 1, C: 40, H: 30, W: 30, M: 32},
	} {
		p.KH, p.KW = 3, 3
		p = p.norm()
		q, _ := p.transposed()
		if !useWinograd(p) || !useWinograd(q) {
			t.Fatalf("%+v: not sent to conv2DWinograd", p)
		}
		nx, nw, ny := sizes(p)
		x, w, bias, gy := rnd(r, nx), rnd(r, nw), rnd(r, p.M), rnd(r, ny)
		y := nanSlice(ny)
		Conv2D(p, x, w, bias, y)
		closeToMax(t, fmt.Sprintf("%+v forward", p), y, naiveConv(p, x, w, bias), 2e-5)
		gx, want := nanSlice(nx), nanSlice(nx)
		Conv2DInputGrad(p, w, gy, gx)
		inputGradChunked(p, w, gy, want, 0)
		closeToMax(t, fmt.Sprintf("%+v input gradient", p), gx, want, 2e-5)
		y2 := make([]float32, ny)
		Conv2D(p, x, w, nil, y2)
		if lhs, rhs := dot64(y2, gy), dot64(x, gx); math.Abs(lhs-rhs) > 1e-4*(1+math.Abs(lhs))*math.Sqrt(float64(ny)) {
			t.Errorf("%+v: <conv(x,w), gy> = %g, <x, InputGrad(gy)> = %g", p, lhs, rhs)
		}
	}
}

// inputGradNoWino is conv2DInputGrad without Winograd: the transposed
// convolution by conv2DDirect where conv2DInputGrad takes it, else
// inputGradChunked.
func inputGradNoWino(p ConvParams, w, gy, gx []float32) {
	q, ok := p.transposed()
	if !ok || rowEfficiency(p.W) < 0.95 || 2*p.M > p.N*p.OutH()*p.OutW() {
		inputGradChunked(p, w, gy, gx, 0)
		return
	}
	wt := make([]float32, len(w))
	for c := 0; c < p.C; c++ {
		for m := 0; m < p.M; m++ {
			for k := 0; k < 9; k++ {
				wt[(c*p.M+m)*9+8-k] = w[(m*p.C+c)*9+k]
			}
		}
	}
	conv2DDirect(q, gy, wt, nil, gx, 0)
}

// TestWinoWeights checks winoWeightRows on ranges of kernels that start
// and end inside a row of the weights, against G g Gᵀ in float64.
func TestWinoWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	_, g, _ := winoMatrices(winoPoints)
	const C, M = 37, 5
	w := rnd(r, C*M*9)
	for _, flip := range []bool{false, true} {
		for _, rg := range [][2]int{{0, C * M}, {3, 40}, {17, 111}, {C, 2 * C}, {C*M - 1, C * M}} {
			us := C * M
			u := nanSlice(winoPos * us)
			winoWeightRows(w, u, us, C, M, rg[0], rg[1], flip)
			for i := 0; i < us; i++ {
				o, c := i/C, i%C
				var k [9]float32
				if flip { // w is C×M kernels; rotate w[c][o]
					for j := 0; j < 9; j++ {
						k[j] = w[(c*M+o)*9+8-j]
					}
				} else {
					copy(k[:], w[i*9:])
				}
				for a := 0; a < winoIn; a++ {
					for b := 0; b < winoIn; b++ {
						var want float64
						for kh := 0; kh < 3; kh++ {
							for kw := 0; kw < 3; kw++ {
								want += g[a][kh] * float64(k[kh*3+kw]) * g[b][kw]
							}
						}
						got := float64(u[(a*winoIn+b)*us+i])
						in := i >= rg[0] && i < rg[1]
						if in && math.Abs(got-want) > 1e-5*(1+math.Abs(want)) || !in && !math.IsNaN(got) {
							t.Fatalf("flip=%v range %v: U[%d][%d] = %g, want %g (in range: %v)", flip, rg, a*winoIn+b, i, got, want, in)
						}
					}
				}
			}
		}
	}
}

// TestWinogradAsmGenerated checks that winograd_amd64.s is what its
// generator in _winoasm writes (run go generate after changing it).
func TestWinogradAsmGenerated(t *testing.T) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to run the generator:", err)
	}
	want, err := os.ReadFile("winograd_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "winograd_amd64.s")
	if msg, err := exec.Command(gotool, "run", "./_winoasm", "-out", out).CombinedOutput(); err != nil {
		t.Fatalf("go run ./_winoasm: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("winograd_amd64.s differs from what go run ./_winoasm writes; run go generate ./engine/internal/kernels")
	}
}

// TestWinogradPrepared checks that weights transformed once give the same
// outputs and input gradients, bit for bit, as transforming them on each
// call, and that convolutions Winograd does not run ignore them.
func TestWinogradPrepared(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	cases := []ConvParams{
		{N: 2, C: 64, H: 14, W: 14, M: 64, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 1, C: 40, H: 20, W: 18, M: 72, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 1, C: 256, H: 16, W: 16, M: 256, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 2, C: 64, H: 14, W: 14, M: 64, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
	}
	for _, p := range cases {
		p = p.norm()
		nx, nw, ny := sizes(p)
		x, w, bias, gy := rnd(r, nx), rnd(r, nw), rnd(r, p.M), rnd(r, ny)
		u, ug := WinogradWeights(p, w, false), WinogradWeights(p, w, true)
		if winogradOK(p) != (u != nil) {
			t.Fatalf("%+v: WinogradWeights returned %d floats, Winograd applies: %v", p, len(u), winogradOK(p))
		}
		if p.StrideH == 1 && UsesWinograd(p, false) == false {
			t.Fatalf("%+v: expected a Winograd convolution", p)
		}
		want, got := nanSlice(ny), nanSlice(ny)
		Conv2D(p, x, w, bias, want)
		Conv2DPrepared(p, x, w, u, bias, got)
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("%+v: output %d: prepared %v, plain %v", p, i, got[i], want[i])
			}
		}
		wantx, gotx := nanSlice(nx), nanSlice(nx)
		Conv2DInputGrad(p, w, gy, wantx)
		Conv2DInputGradPrepared(p, w, ug, gy, gotx)
		for i := range wantx {
			if wantx[i] != gotx[i] {
				t.Fatalf("%+v: input gradient %d: prepared %v, plain %v", p, i, gotx[i], wantx[i])
			}
		}
	}
}
