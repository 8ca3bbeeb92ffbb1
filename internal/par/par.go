// Package par is the one way loupe runs work on several
// goroutines. For splits a loop over [0, n) into ranges; Chunks cuts it
// into a given number of chunks and tells each call which one it has (for
// per-chunk partial results combined in a fixed order afterwards); Range
// and Tasks, for the GEMM and convolution kernels, take an explicit number
// of goroutines, and Tasks tells each goroutine which one it is (for
// per-goroutine buffers).
//
// All of them share out work dynamically, through a Queue: the caller and
// its helper goroutines take tasks from a counter until none are left, and
// the caller returns as soon as every task is complete, without waiting
// for helpers that have not started yet. Starting a goroutine on an idle
// core can take long (on the development machine, a Firecracker VM, about
// 175 µs from the go statement to the first instruction, measured); with a
// fixed split the caller would wait that long for the helper's share, with
// dynamic tasks it works through them meanwhile. A helper that starts
// after the work is done finds no task, touching only the task counter.
// Helpers then linger a little for the next call's work (see linger), so
// that a run of short calls, the ops of one pass at batch 1, keeps both
// cores busy. A call allocates its queue and starts the helpers that are
// not lingering, nothing per task.
package par

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// MinWork is about how many elementary operations (a multiply-add, a copied
// element) a range must hold to pay for handing it to another goroutine.
const MinWork = 1 << 15

// Grain returns the grain to give For for items that cost about cost
// elementary operations each: MinWork/cost, at least 1.
func Grain(cost int) int {
	return max(MinWork/max(cost, 1), 1)
}

// For runs fn over contiguous ranges that together cover [0, n) exactly
// once, on up to GOMAXPROCS goroutines, and returns when all are done. It
// runs fn(0, n) inline when n <= grain. The ranges hold at least grain
// elements (all of [0, n) if fewer) and are handed out dynamically, a few
// per goroutine, so fn may be called more than once per goroutine.
func For(n, grain int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n <= grain || n < 2 || workers < 2 {
		fn(0, n)
		return
	}
	Range(n, max(grain, (n+4*workers-1)/(4*workers)), workers, fn)
}

// ChunkCount returns how many chunks to cut n items that cost about cost
// elementary operations each into for Chunks: one per core at most, and
// fewer when a chunk would hold less than MinWork; at least 1.
func ChunkCount(n, cost int) int {
	g := Grain(cost)
	return max(min(runtime.GOMAXPROCS(0), (n+g-1)/g), 1)
}

// Chunks cuts [0, n) into c contiguous chunks, chunk i being
// [i*n/c, (i+1)*n/c), and runs fn(i, lo, hi) once for each, on up to c
// goroutines; it returns when all are done. With c <= 1 it runs
// fn(0, 0, n) inline. Which goroutine runs a chunk varies from call to
// call; the chunks do not.
func Chunks(n, c int, fn func(chunk, lo, hi int)) {
	if c <= 1 {
		fn(0, 0, n)
		return
	}
	s := &split{n: n, chunk: fn}
	s.run(c, c)
}

// Range runs fn over [0, n) in ranges of at least chunk elements (all of
// [0, n) in one call if fewer, or if workers <= 1), on up to workers
// goroutines, and returns when all are done.
func Range(n, chunk, workers int, fn func(lo, hi int)) {
	tasks := n / max(chunk, 1) // ranges of at least chunk elements
	if workers <= 1 || tasks <= 1 {
		fn(0, n)
		return
	}
	s := &split{n: n, rng: fn}
	s.run(tasks, workers)
}

// split is the work of Range or Chunks: [0, n) cut into tasks ranges,
// passed to rng, or with their number to chunk.
type split struct {
	n     int
	rng   func(lo, hi int)
	chunk func(chunk, lo, hi int)
}

// run does the tasks on up to workers goroutines (at least 2 tasks).
func (s *split) run(tasks, workers int) {
	Tasks(tasks, workers, func(_ int, q *Queue) {
		for t := q.Next(-1); t >= 0; t = q.Next(t) {
			lo, hi := t*s.n/tasks, (t+1)*s.n/tasks
			if s.rng != nil {
				s.rng(lo, hi)
			} else {
				s.chunk(t, lo, hi)
			}
		}
	})
}

// Tasks runs body(worker, q) on up to workers goroutines, worker 0 being
// the caller's, and the others numbered from 1. Each body takes task
// numbers in [0, n) from q until there are none left:
//
//	for t := q.Next(-1); t >= 0; t = q.Next(t) {
//
// Tasks returns when all n tasks are complete. A body must not change
// shared state before its first task, since a late helper may run it
// after Tasks has returned.
//
// A panic in a body, on any goroutine, stops the handing out of tasks;
// Tasks waits for the tasks already running and then panics in the
// caller's goroutine with the first panic's value (wrapped in a
// *WorkerPanic when it came from a helper), so that the engine's recovery
// around a kernel turns it into an error rather than a crash.
func Tasks(n, workers int, body func(worker int, q *Queue)) {
	st := &queueState{n: int64(n), done: make(chan struct{})}
	st.left.Store(int64(n))
	workers = min(workers, n)
	var o *offer
	if workers > 1 {
		o = &offer{st: st, body: body, workers: int32(workers)}
		offered.Store(o)
		// Helpers lingering after an earlier call join through offered;
		// new ones are started for the rest.
		for range workers - 1 - int(lingering.Load()) {
			go helper(o)
		}
	}
	q := &Queue{s: st, held: -1}
	func() {
		defer func() {
			if r := recover(); r != nil {
				st.fail(q, r)
			}
		}()
		body(0, q)
	}()
	st.wait()
	if o != nil {
		offered.CompareAndSwap(o, nil)
	}
	if p := st.panicked.Load(); p != nil {
		panic(p.v)
	}
}

// Helpers linger: a helper goroutine whose call is over waits up to
// linger for the next call's offer and joins it, so that a sequence of
// short parallel calls (the ops of one forward pass at batch 1) does not
// pay a goroutine's start on an idle core each time; at most
// GOMAXPROCS-1 linger at once, and none after linger without work. The
// caller, its own share done, spins up to callerSpin for the helpers'
// last tasks before it blocks. (Measured on resnet18's batch-1 forward
// and input gradient, 83 parallel calls: a new helper started 81 µs
// after the call on average, and callers waited 45 µs; together 7% of
// the two cores.)
const (
	linger     = 200 * time.Microsecond
	callerSpin = 50 * time.Microsecond
)

// offered is the latest call's offer to lingering helpers (nil when it is
// over); lingering counts the helpers waiting for one. These two are the
// package's only state shared across calls: they hand work out, and no
// call's result depends on them.
var (
	offered   atomic.Pointer[offer]
	lingering atomic.Int32
)

// offer is one Tasks call as helpers see it.
type offer struct {
	st      *queueState
	body    func(worker int, q *Queue)
	workers int32
	joined  atomic.Int32 // helper numbers handed out: 1, 2, ...
}

// helper runs the body of o, then of the offers that come while it
// lingers.
func helper(o *offer) {
	for o != nil {
		o.join()
		o = awaitOffer(o)
	}
}

// join runs o's body as the next helper, unless o has all its helpers.
func (o *offer) join() {
	w := o.joined.Add(1)
	if w >= o.workers {
		return
	}
	q := &Queue{s: o.st, held: -1}
	defer func() {
		if r := recover(); r != nil {
			o.st.fail(q, &WorkerPanic{Value: r, Stack: debug.Stack()})
		}
	}()
	o.body(int(w), q)
}

// awaitOffer waits up to linger for an offer other than last that still
// has tasks and room for a helper, and returns it, or nil.
func awaitOffer(last *offer) *offer {
	if lingering.Add(1) > int32(runtime.GOMAXPROCS(0)-1) {
		lingering.Add(-1)
		return last.next() // as below, after leaving the count
	}
	deadline := time.Now().Add(linger)
	for i := 1; ; i++ {
		if o := last.next(); o != nil {
			lingering.Add(-1)
			return o
		}
		if i%8 == 0 {
			if time.Now().After(deadline) {
				break
			}
			runtime.Gosched()
		}
	}
	// A call that counted this helper as lingering, and so started one
	// helper fewer, published its offer before reading the count: having
	// left the count, the helper looks once more.
	lingering.Add(-1)
	return last.next()
}

// next returns the latest offer if it is not last and still has tasks and
// room for a helper, else nil.
func (last *offer) next() *offer {
	if o := offered.Load(); o != nil && o != last && o.joined.Load()+1 < o.workers && o.st.next.Load() < o.st.n {
		return o
	}
	return nil
}

// WorkerPanic is the value Tasks (and For, Chunks, Range) panic with when
// a body panicked on a helper goroutine: the helper's panic value and its
// stack.
type WorkerPanic struct {
	Value any
	Stack []byte
}

func (p *WorkerPanic) Error() string {
	return fmt.Sprintf("panic in a worker goroutine: %v", p.Value)
}

// Queue hands out the task numbers of Tasks to one goroutine's body and
// counts completed tasks.
type Queue struct {
	s    *queueState
	held int // the task claimed and not yet complete, or -1
}

// queueState is what the bodies of one Tasks call share.
type queueState struct {
	next     atomic.Int64
	n        int64
	left     atomic.Int64  // tasks not yet complete
	done     chan struct{} // closed when left reaches 0
	panicked atomic.Pointer[panicValue]
}

// complete marks one task complete.
func (st *queueState) complete() {
	if st.left.Add(-1) == 0 {
		close(st.done)
	}
}

// wait returns when every task is complete: it spins for up to
// callerSpin, then blocks.
func (st *queueState) wait() {
	if st.left.Load() == 0 {
		return
	}
	deadline := time.Now().Add(callerSpin)
	for i := 1; time.Now().Before(deadline); i++ {
		if st.left.Load() == 0 {
			return
		}
		if i%8 == 0 {
			runtime.Gosched()
		}
	}
	<-st.done
}

type panicValue struct{ v any }

// fail records the first panic, completes the task q held, and claims and
// completes every task not yet handed out, so that Tasks stops waiting
// for them.
func (st *queueState) fail(q *Queue, v any) {
	st.panicked.CompareAndSwap(nil, &panicValue{v})
	if q.held >= 0 {
		q.held = -1
		st.complete()
	}
	for {
		i := st.next.Add(1) - 1
		if i >= st.n {
			return
		}
		st.complete()
	}
}

// Next marks task prev complete (none if prev < 0: the first call) and
// claims another, returning its number, or -1 when none is left. A body
// calls it once more after its last task, with that task's number.
func (q *Queue) Next(prev int) int {
	st := q.s
	if prev >= 0 && q.held >= 0 {
		q.held = -1
		st.complete()
	}
	i := st.next.Add(1) - 1
	if i >= st.n {
		return -1
	}
	q.held = int(i)
	return int(i)
}
