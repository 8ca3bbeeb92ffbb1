package par

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// visits checks that seen holds 1 everywhere.
func visits(t *testing.T, what string, n int, seen []int32) {
	t.Helper()
	for i, v := range seen {
		if v != 1 {
			t.Fatalf("%s n=%d: index %d visited %d times", what, n, i, v)
		}
	}
}

func TestFor(t *testing.T) {
	for _, n := range []int{0, 1, 5, 1000} {
		seen := make([]int32, n)
		For(n, 3, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				atomic.AddInt32(&seen[i], 1)
			}
		})
		visits(t, "For", n, seen)
	}
}

func TestRange(t *testing.T) {
	for _, n := range []int{0, 1, 5, 1000} {
		for _, workers := range []int{0, 1, 2, 7} {
			seen := make([]int32, n)
			Range(n, 2, workers, func(lo, hi int) {
				if hi-lo < min(2, n) {
					t.Errorf("Range n=%d: range [%d, %d) is shorter than its chunk", n, lo, hi)
				}
				for i := lo; i < hi; i++ {
					atomic.AddInt32(&seen[i], 1)
				}
			})
			visits(t, "Range", n, seen)
		}
	}
}

func TestChunks(t *testing.T) {
	for _, n := range []int{0, 1, 5, 1000} {
		for _, c := range []int{1, 2, 3, 8} {
			seen := make([]int32, n)
			got := make([]int32, c)
			Chunks(n, c, func(ci, lo, hi int) {
				if lo != ci*n/c || hi != (ci+1)*n/c {
					t.Errorf("Chunks n=%d c=%d: chunk %d is [%d, %d)", n, c, ci, lo, hi)
				}
				atomic.AddInt32(&got[ci], 1)
				for i := lo; i < hi; i++ {
					atomic.AddInt32(&seen[i], 1)
				}
			})
			visits(t, "Chunks", n, seen)
			visits(t, "Chunks (chunk calls)", c, got)
		}
	}
	if c := ChunkCount(0, 10); c != 1 {
		t.Errorf("ChunkCount(0, 10) = %d, want 1", c)
	}
	if c := ChunkCount(MinWork, 1); c != 1 {
		t.Errorf("ChunkCount(MinWork, 1) = %d, want 1", c)
	}
	if c := ChunkCount(MinWork+1, 1); c < 1 || c > 2 {
		t.Errorf("ChunkCount(MinWork+1, 1) = %d, want 1 or 2", c)
	}
}

func TestTasks(t *testing.T) {
	for _, n := range []int{0, 1, 5, 1000} {
		for _, workers := range []int{1, 2, 4} {
			seen := make([]int32, n)
			var bad atomic.Bool
			Tasks(n, workers, func(w int, q *Queue) {
				if w < 0 || w >= max(workers, 1) {
					bad.Store(true)
				}
				for i := q.Next(-1); i >= 0; i = q.Next(i) {
					atomic.AddInt32(&seen[i], 1)
				}
			})
			if bad.Load() {
				t.Fatalf("Tasks n=%d workers=%d: worker number out of range", n, workers)
			}
			visits(t, "Tasks", n, seen)
		}
	}
}

func TestGrain(t *testing.T) {
	if g := Grain(0); g != MinWork {
		t.Errorf("Grain(0) = %d, want %d", g, MinWork)
	}
	if g := Grain(2 * MinWork); g != 1 {
		t.Errorf("Grain(2*MinWork) = %d, want 1", g)
	}
}

// TestPanicReachesCaller checks that a panic in a task, on whichever
// goroutine runs it, stops the work and is raised in the caller's
// goroutine once the running tasks are complete (it used to kill the
// process from a helper goroutine, or hang the caller).
func TestPanicReachesCaller(t *testing.T) {
	catch := func(f func()) (v any) {
		defer func() { v = recover() }()
		f()
		return nil
	}
	for _, workers := range []int{1, 2, 3, 8} {
		for rep := 0; rep < 200; rep++ {
			bad := rep % 64
			var ran atomic.Int64
			v := catch(func() {
				Tasks(64, workers, func(_ int, q *Queue) {
					for i := q.Next(-1); i >= 0; i = q.Next(i) {
						ran.Add(1)
						if i == bad {
							panic("boom")
						}
					}
				})
			})
			msg := fmt.Sprint(v)
			if wp, ok := v.(*WorkerPanic); ok {
				msg = fmt.Sprint(wp.Value)
				if len(wp.Stack) == 0 {
					t.Fatal("a worker's panic without its stack")
				}
			}
			if msg != "boom" {
				t.Fatalf("workers=%d task %d: recovered %v, want the task's panic", workers, bad, v)
			}
		}
		v := catch(func() {
			For(1<<20, 1, func(lo, hi int) {
				if lo <= 1<<19 && 1<<19 < hi {
					panic("for")
				}
			})
		})
		if v == nil {
			t.Fatalf("workers=%d: For swallowed a panic", workers)
		}
	}
}

// TestTasksBackToBack runs many short calls in a row, as a forward pass
// does, so that lingering helpers join later calls: every task must run
// once, and no two bodies of one call may share a worker number.
func TestTasksBackToBack(t *testing.T) {
	for c := 0; c < 2000; c++ {
		workers := 2 + c%3
		n := 1 + c%7
		seen := make([]int32, n)
		ids := make([]int32, workers)
		var bad atomic.Bool
		Tasks(n, workers, func(w int, q *Queue) {
			if w < 0 || w >= workers || atomic.AddInt32(&ids[w], 1) != 1 {
				bad.Store(true)
			}
			for i := q.Next(-1); i >= 0; i = q.Next(i) {
				atomic.AddInt32(&seen[i], 1)
			}
		})
		if bad.Load() {
			t.Fatalf("call %d: worker number out of range or given twice", c)
		}
		visits(t, "Tasks", n, seen)
	}
}

// TestHelpersLeave checks that helpers do not outlive their linger: after
// many calls, the goroutines they started are gone once the calls stop.
func TestHelpersLeave(t *testing.T) {
	settled := func() {
		deadline := time.Now().Add(5 * time.Second)
		for lingering.Load() != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	settled() // helpers of earlier tests
	before := runtime.NumGoroutine()
	for c := 0; c < 200; c++ {
		Tasks(4, 4, func(_ int, q *Queue) {
			for i := q.Next(-1); i >= 0; i = q.Next(i) {
			}
		})
	}
	settled()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines 5 s after the calls, %d before", n, before)
	}
	if n := lingering.Load(); n != 0 {
		t.Errorf("%d helpers still lingering", n)
	}
}
