package ml

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The worker pool is shared by every matmul and every parallel loop in the
// package. Workers are started once (lazily, growing to GOMAXPROCS) and
// reused across calls, so a training step does not spawn goroutines.
//
// Determinism: parallelFor splits work into a fixed number of tasks that
// does not depend on the number of workers; each task writes a disjoint part
// of the output and computes it in a fixed order. Which goroutine runs a task
// therefore never changes any result.

type pjob struct {
	n       int
	next    atomic.Int64
	pending atomic.Int32 // helpers that have not finished yet
	fn      func(task int)
	wg      sync.WaitGroup
}

// spinFor is how long idle workers poll for the next job, and the caller
// polls for helpers to finish, before blocking. A training step issues
// dozens of short parallel loops back to back; parking and waking goroutines
// for each would cost a large share of a 2-core machine.
const spinFor = 50 * time.Microsecond

func (j *pjob) run() {
	for {
		t := int(j.next.Add(1) - 1)
		if t >= j.n {
			return
		}
		j.fn(t)
	}
}

var pool struct {
	mu      sync.Mutex
	workers int
	jobs    chan *pjob
}

// ensureWorkers starts workers until there are at least n.
func ensureWorkers(n int) {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if pool.jobs == nil {
		pool.jobs = make(chan *pjob, 1024)
	}
	for pool.workers < n {
		pool.workers++
		go func() {
			for {
				j := nextJob()
				j.run()
				j.pending.Add(-1)
				j.wg.Done()
			}
		}()
	}
}

// nextJob returns the next job, polling briefly before blocking.
func nextJob() *pjob {
	select {
	case j := <-pool.jobs:
		return j
	default:
	}
	start := time.Now()
	for time.Since(start) < spinFor {
		for i := 0; i < 64; i++ {
			select {
			case j := <-pool.jobs:
				return j
			default:
			}
		}
		runtime.Gosched()
	}
	return <-pool.jobs
}

var jobPool = sync.Pool{New: func() any { return new(pjob) }}

// parallelFor calls fn(t) for t in [0, n), spread over up to GOMAXPROCS
// goroutines (the caller included). fn must not call parallelFor.
func parallelFor(n int, fn func(task int)) {
	if n <= 0 {
		return
	}
	p := runtime.GOMAXPROCS(0)
	if p > n {
		p = n
	}
	if p <= 1 {
		for t := 0; t < n; t++ {
			fn(t)
		}
		return
	}
	ensureWorkers(p - 1)
	j := jobPool.Get().(*pjob)
	j.n = n
	j.next.Store(0)
	j.fn = fn
	j.wg.Add(p - 1)
	j.pending.Store(int32(p - 1))
	for i := 0; i < p-1; i++ {
		pool.jobs <- j
	}
	j.run()
	if j.pending.Load() > 0 {
		start := time.Now()
		for j.pending.Load() > 0 && time.Since(start) < spinFor {
			runtime.Gosched()
		}
	}
	j.wg.Wait()
	j.fn = nil
	jobPool.Put(j)
}
