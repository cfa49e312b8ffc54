package proposer

import (
	"math"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// minSurrogate is the number of distinct evaluated configs needed before
// exploit candidates are screened with the surrogate model.
const minSurrogate = 5

// ridgeLambda regularises the surrogate fit.
const ridgeLambda = 0.1

// surrogate is a ridge-regressed separable quadratic response surface over
// the history: for each numeric parameter a linear and a squared term of
// its normalised (log-scaled when Param.Log) value, one-hot terms for
// choices and a 0/1 term for bools. It is fitted to ranks (0 = best,
// 1 = worst), which makes it robust to outliers such as diverged runs and
// independent of the metric direction. It only orders candidates; it never
// replaces an evaluation.
type surrogate struct {
	space domains.Space
	mean  []float64 // feature means (centring)
	beta  []float64
}

// fitSurrogate fits the model to s.ranked, or returns nil when there are
// too few configs.
func (s *state) fitSurrogate() *surrogate {
	n := len(s.ranked)
	if n < minSurrogate {
		return nil
	}
	m := &surrogate{space: s.space}
	X := make([][]float64, n)
	for i, r := range s.ranked {
		X[i] = m.features(r.cfg)
	}
	k := len(X[0])
	if k == 0 {
		return nil
	}
	m.mean = make([]float64, k)
	for _, x := range X {
		for j, v := range x {
			m.mean[j] += v / float64(n)
		}
	}
	y := make([]float64, n)
	var ymean float64
	for i := range y {
		y[i] = float64(i) / float64(n-1)
		ymean += y[i] / float64(n)
	}
	// Normal equations (XᵀX + λI)β = Xᵀy on centred data.
	A := make([][]float64, k)
	b := make([]float64, k)
	for j := range A {
		A[j] = make([]float64, k)
		A[j][j] = ridgeLambda
	}
	for i, x := range X {
		for j := range k {
			xj := x[j] - m.mean[j]
			b[j] += xj * (y[i] - ymean)
			for l := range k {
				A[j][l] += xj * (x[l] - m.mean[l])
			}
		}
	}
	beta, ok := solve(A, b)
	if !ok {
		return nil
	}
	m.beta = beta
	return m
}

// predict returns the predicted rank of cfg (lower is better), up to a
// constant.
func (m *surrogate) predict(cfg domains.Config) float64 {
	var y float64
	for j, v := range m.features(cfg) {
		y += m.beta[j] * (v - m.mean[j])
	}
	return y
}

func (m *surrogate) features(c domains.Config) []float64 {
	var f []float64
	for _, p := range m.space {
		if !mutable(p) {
			continue
		}
		switch p.Kind {
		case domains.Int, domains.Float:
			u := norm(p, c.Float(p.Name)) - 0.5
			f = append(f, u, u*u)
		case domains.Choice:
			cur := c.String(p.Name)
			for _, ch := range p.Choices {
				f = append(f, float64(boolInt(ch == cur)))
			}
		case domains.Bool:
			f = append(f, float64(boolInt(c.Bool(p.Name))))
		}
	}
	return f
}

// solve solves Ax = b by Gaussian elimination with partial pivoting. A and
// b are overwritten.
func solve(A [][]float64, b []float64) ([]float64, bool) {
	n := len(b)
	for c := range n {
		piv := c
		for r := c + 1; r < n; r++ {
			if math.Abs(A[r][c]) > math.Abs(A[piv][c]) {
				piv = r
			}
		}
		if math.Abs(A[piv][c]) < 1e-12 {
			return nil, false
		}
		A[c], A[piv] = A[piv], A[c]
		b[c], b[piv] = b[piv], b[c]
		for r := c + 1; r < n; r++ {
			f := A[r][c] / A[c][c]
			for k := c; k < n; k++ {
				A[r][k] -= f * A[c][k]
			}
			b[r] -= f * b[c]
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		v := b[r]
		for k := r + 1; k < n; k++ {
			v -= A[r][k] * x[k]
		}
		x[r] = v / A[r][r]
	}
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, false
		}
	}
	return x, true
}
