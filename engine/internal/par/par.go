// Package par is the one way loupe's engine runs work on several
// goroutines. For splits a loop over [0, n) into ranges; Chunks cuts it
// into a given number of chunks and tells each call which one it has (for
// per-chunk partial results combined in a fixed order afterwards); Range
// and Tasks, for the GEMM and convolution kernels, take an explicit number
// of goroutines, and Tasks tells each goroutine which one it is (for
// per-goroutine buffers).
//
// All of them share out work dynamically: the caller and its helper
// goroutines take tasks from a counter until none are left, and the caller
// returns as soon as every task is complete, without waiting for helpers
// that have not started yet. Starting a goroutine on an idle core can take
// long (on the development machine, a Firecracker VM, about 175 µs from
// the go statement to the first instruction, measured); with a fixed split
// the caller would wait that long for the helper's share, with dynamic
// tasks it works through them meanwhile. A helper that starts after the
// work is done finds no task and exits at once, touching only the task
// counter.
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
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
	Tasks(c, c, func(_ int, next func() int) {
		for t := next(); t >= 0; t = next() {
			fn(t, t*n/c, (t+1)*n/c)
		}
	})
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
	Tasks(tasks, workers, func(_ int, next func() int) {
		for t := next(); t >= 0; t = next() {
			fn(t*n/tasks, (t+1)*n/tasks)
		}
	})
}

// Tasks runs body(worker, next) on up to workers goroutines, worker 0
// being the caller's, and the others numbered from 1. Each body calls next
// for task numbers in [0, n) until it returns -1, processing each task
// before calling next again. Tasks returns when all n tasks are complete. A
// body must not change shared state before its first task, since a late
// helper may run it after Tasks has returned.
func Tasks(n, workers int, body func(worker int, next func() int)) {
	workers = min(workers, n)
	if workers <= 1 {
		i := 0
		body(0, func() int {
			if i >= n {
				return -1
			}
			i++
			return i - 1
		})
		return
	}
	q := &taskQueue{n: int64(n)}
	q.done.Add(n)
	for w := 1; w < workers; w++ {
		go body(w, q.nextFunc())
	}
	body(0, q.nextFunc())
	q.done.Wait()
}

// taskQueue hands out task numbers and counts completed tasks.
type taskQueue struct {
	next atomic.Int64
	n    int64
	done sync.WaitGroup
}

// nextFunc returns a function that marks the previously claimed task
// complete and claims a new one, returning its number or -1 when none is
// left.
func (q *taskQueue) nextFunc() func() int {
	claimed := false
	return func() int {
		if claimed {
			q.done.Done()
		}
		i := q.next.Add(1) - 1
		claimed = i < q.n
		if !claimed {
			return -1
		}
		return int(i)
	}
}
