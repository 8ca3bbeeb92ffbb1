package kernels

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPlanCompare(t *testing.T) {
	spec := os.Getenv("PLANCMP") // c,h,n
	if spec == "" {
		t.Skip()
	}
	f := strings.Split(spec, ",")
	c, _ := strconv.Atoi(f[0])
	h, _ := strconv.Atoi(f[1])
	n, _ := strconv.Atoi(f[2])
	r := rand.New(rand.NewPCG(1, 2))
	p := ConvParams{N: n, C: c, H: h, W: h, M: c, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}.norm()
	nx, nw, ny := sizes(p)
	x, w, y := rnd(r, nx), rnd(r, nw), make([]float32, ny)
	flops := 2 * float64(p.N*p.M*p.C*9*p.OutH()*p.OutW())
	base := planWinograd(p, 2)
	var plans []winoPlan
	names := []string{}
	add := func(name string, q winoPlan) { plans = append(plans, q); names = append(names, name) }
	add("auto", base)
	for _, b := range []int{16, 32, 48, 64} {
		if b <= base.tiles {
			add(fmt.Sprint("tiles", b), base.withBlock(b))
		}
	}
	T8 := roundUp(base.tiles, 8)
	for _, band := range []int{24, 36, 48, 66, 96} {
		if band > c {
			continue
		}
		add(fmt.Sprint("own all/", band), base.withBands(p, T8, band, true))
		for _, b := range []int{16, 32, 64} {
			if b < base.tiles {
				add(fmt.Sprint("own ", b, "/", band), base.withBands(p, b, band, true))
				add(fmt.Sprint("shr ", b, "/", band), base.withBands(p, b, band, false))
			}
		}
		add(fmt.Sprint("shr all/", band), base.withBands(p, T8, band, false))
	}
	best := make([]float64, len(plans))
	for round := 0; round < 6; round++ {
		for i, q := range plans {
			winoRun(p, q, x, w, nil, y, false)
			start := time.Now()
			for time.Since(start) < 40*time.Millisecond {
				t0 := time.Now()
				winoRun(p, q, x, w, nil, y, false)
				best[i] = max(best[i], flops/time.Since(t0).Seconds()/1e9)
			}
		}
	}
	for i := range plans {
		t.Logf("%-14s %6.1f GFLOP/s  %+v", names[i], best[i], plans[i])
	}
}
