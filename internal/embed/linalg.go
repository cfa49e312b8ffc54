package embed

import (
	"math"
	"runtime"
	"sort"
	"sync"
)

// This file holds the small amount of linear algebra LSA needs: a sparse
// matrix in compressed-row form, products of it with blocks of dense
// columns, Gram–Schmidt orthonormalisation and a Jacobi eigensolver for
// small symmetric matrices. Dense blocks are stored as slices of columns
// ([][]float64, each column contiguous), which keeps the column-oriented
// inner loops of Gram–Schmidt cache-friendly.
//
// Every routine sums in a fixed order, and parallel loops split work so
// that each output number is computed by one goroutine, in an order that
// does not depend on how the work was split; results are therefore the
// same whatever the scheduling or GOMAXPROCS.

// csr is a rows x cols sparse matrix in compressed sparse row form: the
// non-zeros of row i are val[ptr[i]:ptr[i+1]] in columns idx[...], with
// column indices ascending within a row.
type csr struct {
	rows, cols int
	ptr        []int
	idx        []int32
	val        []float64
}

// mul returns A·X for a block X of columns of length a.cols.
//
// The product runs on row-major copies (each row of X or of the result is
// one contiguous vector of len(X) numbers), so every non-zero of A costs
// one contiguous axpy; rows of the result are independent and computed in
// parallel.
func (a *csr) mul(x [][]float64) [][]float64 {
	l := len(x)
	xr := toRows(x, a.cols)
	out := make([]float64, a.rows*l)
	parallelRange(a.rows, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			o := out[i*l : (i+1)*l]
			for p := a.ptr[i]; p < a.ptr[i+1]; p++ {
				t := int(a.idx[p])
				axpy(a.val[p], xr[t*l:(t+1)*l], o)
			}
		}
	})
	return fromRows(out, a.rows, l)
}

// tmul returns Aᵀ·Y for a block Y of columns of length a.rows.
//
// Row-major like mul; the scattered updates of Aᵀ·Y are split between
// goroutines by column ranges of the result, so no two write the same
// number and each number is summed in row order.
func (a *csr) tmul(y [][]float64) [][]float64 {
	l := len(y)
	yr := toRows(y, a.rows)
	out := make([]float64, a.cols*l)
	parallelRange(l, func(c0, c1 int) {
		for i := 0; i < a.rows; i++ {
			yi := yr[i*l+c0 : i*l+c1]
			for p := a.ptr[i]; p < a.ptr[i+1]; p++ {
				t := int(a.idx[p])
				axpy(a.val[p], yi, out[t*l+c0:t*l+c1])
			}
		}
	})
	return fromRows(out, a.cols, l)
}

// toRows copies a block of columns (each of length m) to row-major form.
func toRows(cols [][]float64, m int) []float64 {
	l := len(cols)
	out := make([]float64, m*l)
	for c, col := range cols {
		for r, v := range col[:m] {
			out[r*l+c] = v
		}
	}
	return out
}

// fromRows is the inverse of toRows for an m × l row-major matrix.
func fromRows(rows []float64, m, l int) [][]float64 {
	cols := newBlock(l, m)
	for r := 0; r < m; r++ {
		for c, v := range rows[r*l : (r+1)*l] {
			cols[c][r] = v
		}
	}
	return cols
}

// parallelRange splits [0, n) into up to GOMAXPROCS contiguous ranges and
// calls f on each in parallel. f must write only data owned by its range.
func parallelRange(n int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			f(lo, hi)
		}(n*w/workers, n*(w+1)/workers)
	}
	wg.Wait()
}

// newBlock allocates n zero columns of length m in one backing array.
func newBlock(n, m int) [][]float64 {
	buf := make([]float64, n*m)
	cols := make([][]float64, n)
	for c := range cols {
		cols[c] = buf[c*m : (c+1)*m : (c+1)*m]
	}
	return cols
}

// parallelCols calls f(c) for c in [0, n) on up to GOMAXPROCS goroutines.
// Each call must only write its own output column, which makes the result
// independent of how the calls are scheduled.
func parallelCols(n int, f func(c int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for c := 0; c < n; c++ {
			f(c)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for c := w; c < n; c += workers {
				f(c)
			}
		}(w)
	}
	wg.Wait()
}

func dot(a, b []float64) float64 {
	var s0, s1, s2, s3 float64
	b = b[:len(a)]
	for len(a) >= 4 { // reslicing lets the compiler drop bounds checks
		s0 += a[0] * b[0]
		s1 += a[1] * b[1]
		s2 += a[2] * b[2]
		s3 += a[3] * b[3]
		a, b = a[4:], b[4:]
	}
	for i := range a {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy computes y += alpha·x.
func axpy(alpha float64, x, y []float64) {
	y = y[:len(x)]
	for len(x) >= 4 {
		y[0] += alpha * x[0]
		y[1] += alpha * x[1]
		y[2] += alpha * x[2]
		y[3] += alpha * x[3]
		x, y = x[4:], y[4:]
	}
	for i := range x {
		y[i] += alpha * x[i]
	}
}

// orthoChunk is the number of rows orthonormalize hands to one goroutine.
// It is a constant, not derived from the number of CPUs, so that partial
// sums, and therefore results, are the same on every machine.
const orthoChunk = 1024

// orthonormalize makes the columns of q orthonormal in place, in order,
// by classical Gram–Schmidt with selective reorthogonalisation: column j
// loses its components along columns 0..j-1 (all dot products first, then
// the update), and when that removed more than ~30% of its norm, a sign of
// cancellation, a second identical pass cleans up what rounding left
// ("twice is enough": two passes give orthogonality to machine
// precision). A column that is numerically dependent on the earlier ones
// (less than 1e-10 of its norm survives) is set to zero and stays zero;
// later columns ignore it. It returns the number of non-zero columns.
//
// Rows are processed in fixed chunks of orthoChunk on parallel goroutines;
// per-chunk partial dot products are added in chunk order, so the result
// does not depend on scheduling or GOMAXPROCS.
func orthonormalize(q [][]float64) int {
	if len(q) == 0 {
		return 0
	}
	m := len(q[0])
	chunks := max(1, (m+orthoChunk-1)/orthoChunk)
	part := make([][]float64, chunks) // part[ch][i]: chunk ch of q_iᵀc
	for ch := range part {
		part[ch] = make([]float64, len(q))
	}
	d := make([]float64, len(q))
	bounds := func(ch int) (int, int) { return ch * orthoChunk, min((ch+1)*orthoChunk, m) }
	norm := func(c []float64) float64 {
		var s float64
		for ch := 0; ch < chunks; ch++ {
			lo, hi := bounds(ch)
			s += dot(c[lo:hi], c[lo:hi])
		}
		return math.Sqrt(s)
	}
	rank := 0
	for j, c := range q {
		before := norm(c)
		if before == 0 {
			continue
		}
		after := before
		for pass := 0; pass < 2 && j > 0; pass++ {
			parallelCols(chunks, func(ch int) {
				lo, hi := bounds(ch)
				for i := 0; i < j; i++ {
					part[ch][i] = dot(q[i][lo:hi], c[lo:hi])
				}
			})
			for i := 0; i < j; i++ {
				d[i] = 0
				for ch := 0; ch < chunks; ch++ {
					d[i] += part[ch][i]
				}
			}
			parallelCols(chunks, func(ch int) {
				lo, hi := bounds(ch)
				for i := 0; i < j; i++ {
					if d[i] != 0 {
						axpy(-d[i], q[i][lo:hi], c[lo:hi])
					}
				}
			})
			prev := after
			after = norm(c)
			if after > 0.7*prev {
				break // little cancellation: one pass was enough
			}
		}
		if after <= 1e-10*before {
			clear(c)
			continue
		}
		inv := 1 / after
		for i := range c {
			c[i] *= inv
		}
		rank++
	}
	return rank
}

// gram returns XᵀX for a block of columns X (a small symmetric matrix,
// row-major).
func gram(x [][]float64) [][]float64 {
	n := len(x)
	g := make([][]float64, n)
	for i := range g {
		g[i] = make([]float64, n)
	}
	parallelCols(n, func(i int) {
		for j := 0; j <= i; j++ {
			g[i][j] = dot(x[i], x[j])
		}
	})
	for i := 0; i < n; i++ {
		for j := 0; j < i; j++ {
			g[j][i] = g[i][j]
		}
	}
	return g
}

// symEigen diagonalises the symmetric matrix a (row-major, destroyed) with
// the cyclic Jacobi method: it sweeps over all off-diagonal pairs (p, q),
// applying a plane rotation that zeroes a[p][q], until the off-diagonal
// mass is negligible. It returns the eigenvalues in descending order and
// the matching unit eigenvectors as columns of vecs (vecs[k][i] is
// component k of eigenvector i). Cost: O(n³) per sweep, a handful of
// sweeps; meant for n up to a few hundred.
func symEigen(a [][]float64) (vals []float64, vecs [][]float64) {
	n := len(a)
	v := make([][]float64, n)
	for i := range v {
		v[i] = make([]float64, n)
		v[i][i] = 1
	}
	for sweep := 0; sweep < 64; sweep++ {
		var off, diag float64
		for p := 0; p < n; p++ {
			diag += a[p][p] * a[p][p]
			for q := p + 1; q < n; q++ {
				off += a[p][q] * a[p][q]
			}
		}
		if off == 0 || off <= 1e-32*diag {
			break
		}
		for p := 0; p < n; p++ {
			for q := p + 1; q < n; q++ {
				apq := a[p][q]
				if apq == 0 {
					continue
				}
				// Choose the rotation J = [[c, s], [-s, c]] in the (p, q)
				// plane so that (JᵀAJ)[p][q] = 0: t = tan(angle) is the
				// smaller root of t² + 2θt − 1 = 0.
				theta := (a[q][q] - a[p][p]) / (2 * apq)
				var t float64
				if math.Abs(theta) > 1e150 {
					t = 1 / (2 * theta)
				} else {
					t = 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
					if theta < 0 {
						t = -t
					}
				}
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := 0; k < n; k++ { // A ← A·J (columns p, q)
					akp, akq := a[k][p], a[k][q]
					a[k][p] = c*akp - s*akq
					a[k][q] = s*akp + c*akq
				}
				for k := 0; k < n; k++ { // A ← Jᵀ·A (rows p, q)
					apk, aqk := a[p][k], a[q][k]
					a[p][k] = c*apk - s*aqk
					a[q][k] = s*apk + c*aqk
				}
				a[p][q], a[q][p] = 0, 0
				for k := 0; k < n; k++ { // V ← V·J
					vkp, vkq := v[k][p], v[k][q]
					v[k][p] = c*vkp - s*vkq
					v[k][q] = s*vkp + c*vkq
				}
			}
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return a[order[x]][order[x]] > a[order[y]][order[y]] })
	vals = make([]float64, n)
	vecs = make([][]float64, n)
	for r := range vecs {
		vecs[r] = make([]float64, n)
	}
	for i, o := range order {
		vals[i] = a[o][o]
		for k := 0; k < n; k++ {
			vecs[k][i] = v[k][o]
		}
	}
	return vals, vecs
}

// splitmix64 is a tiny, fully specified pseudo-random generator (Steele,
// Lea and Flood's SplitMix64). It is used instead of math/rand so that the
// random projection, and therefore the fitted model, is a pure function of
// the seed that no library update can change.
type splitmix64 struct{ s uint64 }

func (r *splitmix64) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uniform returns a number uniformly distributed in [-1, 1).
func (r *splitmix64) uniform() float64 {
	return float64(r.next()>>11)/(1<<52) - 1
}
