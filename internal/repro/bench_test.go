package repro_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
	"github.com/hyperspace-ai/hyperspace/domains/finance"
	"github.com/hyperspace-ai/hyperspace/domains/ml"
	"github.com/hyperspace-ai/hyperspace/domains/search"
	"github.com/hyperspace-ai/hyperspace/domains/skills"
	"github.com/hyperspace-ai/hyperspace/internal/repro"
	"github.com/hyperspace-ai/hyperspace/internal/testenv"
)

// capped is the ML domain with tokenBudget held at or below max (and the
// baseline at max), so that a benchmark campaign of the built-in proposer
// stays within minutes on two cores.
type capped struct {
	domains.Domain
	max float64
}

func (c capped) Space() domains.Space {
	s := append(domains.Space(nil), c.Domain.Space()...)
	for i := range s {
		if s[i].Name == "tokenBudget" {
			s[i].Max = c.max
		}
	}
	return s
}

func (c capped) Baseline() domains.Config {
	b := c.Domain.Baseline()
	b["tokenBudget"] = c.max
	return b
}

func (c capped) Validate(cfg domains.Config) (domains.Config, error) {
	n, err := c.Domain.Validate(cfg)
	if err != nil {
		return nil, err
	}
	if tb, _ := n["tokenBudget"].(float64); tb > c.max {
		return nil, fmt.Errorf("tokenBudget %v above the benchmark's cap %v", tb, c.max)
	}
	return n, nil
}

// rebased is a domain whose campaigns start from another baseline (as a
// campaign's baseline override does).
type rebased struct {
	domains.Domain
	name string
	over domains.Config
}

func (r rebased) Name() string { return r.name }

func (r rebased) Baseline() domains.Config {
	b := r.Domain.Baseline()
	for k, v := range r.over {
		b[k] = v
	}
	return b
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkReproduction runs a few built-in-proposer campaigns per domain,
// judges every result under the old rule (K x SD against the best so far)
// and the new one (noise.Judge against the incumbent, with confirmations),
// and re-runs each new best and its reference with 3 fresh seeds: the
// share whose gain holds on the test split is the reproduction rate.
//
//	go test ./internal/repro -run '^$' -bench Reproduction -benchtime 1x -timeout 60m
//
// HYPERSPACE_REPRO_DOMAINS (default search,finance,finance-sp500,skills,ml),
// HYPERSPACE_REPRO_CAMPAIGNS and _EXPERIMENTS (defaults 5 x 20; ML 4 x 12)
// and HYPERSPACE_REPRO_ML_TOKENS (default 300000) size it.
func BenchmarkReproduction(b *testing.B) {
	dir := testenv.DataDir(b)
	names := strings.Split(os.Getenv("HYPERSPACE_REPRO_DOMAINS"), ",")
	if names[0] == "" {
		names = []string{"search", "finance", "finance-sp500", "skills", "ml"}
	}
	type row struct {
		rep  repro.Report
		spec string
	}
	var rows []row
	for range b.N {
		rows = rows[:0]
		for _, name := range names {
			camps, exps := envInt("HYPERSPACE_REPRO_CAMPAIGNS", 5), envInt("HYPERSPACE_REPRO_EXPERIMENTS", 20)
			var d domains.Domain
			switch name {
			case "search":
				d = search.New()
			case "finance":
				d = finance.New()
			case "finance-sp500":
				d = rebased{finance.New(), name, domains.Config{"universe": finance.UniverseSP500, "strategy": finance.StratBuyHold}}
			case "skills":
				d = skills.New()
			case "ml":
				d = capped{ml.New(), float64(envInt("HYPERSPACE_REPRO_ML_TOKENS", 300_000))}
				camps, exps = envInt("HYPERSPACE_REPRO_CAMPAIGNS", 4), envInt("HYPERSPACE_REPRO_EXPERIMENTS", 12)
			default:
				b.Fatalf("unknown domain %q", name)
			}
			n := 0
			rep, err := repro.Run(context.Background(), repro.Spec{Domain: d, Opts: domains.EvalOptions{DataDir: dir},
				Campaigns: camps, Experiments: exps,
				Progress: func(s string) {
					n++
					if n%50 == 0 {
						b.Logf("%d evaluations; now %s", n, s)
					}
				}})
			if err != nil {
				b.Fatal(err)
			}
			rows = append(rows, row{rep, fmt.Sprintf("%d x %d", camps, exps)})
		}
	}
	var sb strings.Builder
	sb.WriteString("\n| domain | campaigns x experiments | rule | candidates | new bests | hold on test (fresh seeds) | rate | hold on validation (fresh seeds) | evaluations |\n|---|---|---|---|---|---|---|---|---|\n")
	rate := func(r float64) string {
		if math.IsNaN(r) {
			return "-"
		}
		return fmt.Sprintf("%.0f %%", 100*r)
	}
	var all [2][2]int // per rule: new bests, holding on test
	for _, r := range rows {
		for i, o := range []repro.Outcome{r.rep.Before, r.rep.After} {
			t, v := o.Holds()
			all[i][0] += len(o.NewBests)
			all[i][1] += t
			cand := "-"
			if o.Rule == repro.After {
				cand = strconv.Itoa(o.Candidates)
			}
			fmt.Fprintf(&sb, "| %s | %s | %s | %s | %d | %d | %s | %d | %d |\n", r.rep.Domain, r.spec, o.Rule, cand, len(o.NewBests), t, rate(o.Rate()), v, r.rep.Evaluations)
		}
	}
	for i, name := range []string{repro.Before, repro.After} {
		r := math.NaN()
		if all[i][0] > 0 {
			r = float64(all[i][1]) / float64(all[i][0])
		}
		fmt.Fprintf(&sb, "| all | | %s | | %d | %d | %s | | |\n", name, all[i][0], all[i][1], rate(r))
	}
	for _, r := range rows {
		for _, o := range []repro.Outcome{r.rep.Before, r.rep.After} {
			for _, nb := range o.NewBests {
				fmt.Fprintf(&sb, "%s %s campaign %d run %d: gain %+.4f, re-run val %+.4f test %+.4f (%s over %s)\n",
					r.rep.Domain, o.Rule, nb.Campaign, nb.Run, nb.Gain, nb.ValGain, nb.TestGain, nb.Config, nb.Ref)
			}
		}
	}
	fmt.Println(sb.String())
}
