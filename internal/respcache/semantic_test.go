package respcache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/embed"
)

// paraphrases are prompt pairs of the same meaning: a semantic cache
// should answer the second from the first.
var paraphrases = [][2]string{
	{"what is the effect of sweepback on the lift of a wing at supersonic speeds", "how does wing sweepback affect lift at supersonic speeds"},
	{"heat transfer to a blunt body in hypersonic flow", "hypersonic flow heat transfer on blunt bodies"},
	{"boundary layer transition on a flat plate", "transition of the boundary layer over flat plates"},
	{"calculate the pressure distribution on a cone at zero incidence", "pressure distribution over a cone at zero angle of attack"},
	{"flutter of panels in supersonic flow", "supersonic panel flutter"},
	{"skin friction in turbulent boundary layers with pressure gradient", "turbulent boundary layer skin friction under a pressure gradient"},
	{"buckling of thin cylindrical shells under axial compression", "axially compressed thin cylindrical shell buckling"},
	{"shock wave boundary layer interaction", "interaction between shock waves and boundary layers"},
	{"aerodynamic heating of re-entry vehicles", "re-entry vehicle aerodynamic heating"},
	{"lift and drag of slender delta wings", "delta wings of slender planform: lift and drag"},
	{"stagnation point heat transfer in dissociated air", "heat transfer at the stagnation point in dissociated air"},
	{"unsteady aerodynamic forces on an oscillating airfoil", "oscillating airfoil unsteady aerodynamic forces"},
	{"laminar boundary layer separation in adverse pressure gradient", "separation of laminar boundary layers in an adverse pressure gradient"},
	{"viscous flow around a circular cylinder at low reynolds number", "low reynolds number viscous flow past circular cylinders"},
	{"wing body interference at transonic speeds", "transonic wing-body interference"},
	{"thermal stresses in plates heated nonuniformly", "nonuniform heating of plates and the resulting thermal stresses"},
	{"free molecule flow drag on a sphere", "drag of a sphere in free molecule flow"},
	{"base pressure behind a blunt trailing edge in supersonic flow", "supersonic base pressure behind blunt trailing edges"},
	{"vibration of rectangular plates with clamped edges", "clamped rectangular plate vibration"},
	{"jet noise from a supersonic nozzle", "noise of jets from supersonic nozzles"},
	{"ablation of a heat shield during atmospheric entry", "heat shield ablation during entry into the atmosphere"},
	{"hypersonic similarity rule for slender bodies", "similarity law of hypersonic flow over slender bodies"},
	{"mass transfer cooling of a turbulent boundary layer", "turbulent boundary layer cooling by mass transfer"},
	{"creep of structural materials at elevated temperature", "structural material creep at high temperature"},
	{"the effect of nose bluntness on the pressure on a cone", "how nose bluntness changes cone pressure"},
	{"compressible flow through a convergent divergent nozzle", "convergent-divergent nozzle compressible flow"},
	{"stability of a laminar boundary layer to small disturbances", "small disturbance stability of laminar boundary layers"},
	{"induced drag of a finite wing", "finite wing induced drag"},
	{"the shape of the bow shock ahead of a blunt body", "bow shock shape in front of blunt bodies"},
	{"aeroelastic divergence of a swept wing", "divergence of swept wings due to aeroelasticity"},
	{"pressure fluctuations under a turbulent boundary layer", "turbulent boundary layer wall pressure fluctuations"},
	{"heat conduction in a thick slab with radiation at the surface", "radiating surface heat conduction in thick slabs"},
	{"the downwash behind a wing at high angle of attack", "downwash aft of wings at large angles of attack"},
	{"solutions of the navier stokes equations for a flat plate", "flat plate navier-stokes solutions"},
	{"the hypersonic flow of a rarefied gas over a wedge", "rarefied gas hypersonic flow past a wedge"},
	{"temperature recovery factor of a cone in supersonic flow", "recovery factor of temperature for cones at supersonic speed"},
	{"effect of mach number on the lift curve slope", "how mach number affects lift curve slope"},
	{"stress concentration around a circular hole in a plate", "plate with a circular hole: stress concentration"},
	{"transonic flow over a thin airfoil", "thin airfoils in transonic flow"},
	{"the wake behind a hypersonic body", "hypersonic body wake"},
	{"magnetohydrodynamic flow over a flat plate", "flat plate magnetohydrodynamic flow"},
	{"dynamic stability of a missile in pitch", "missile pitch dynamic stability"},
}

// contrasts are prompt pairs that share most words but not their meaning
// (negations, other numbers, antonyms, another quantity): a semantic cache
// must not answer one with the other. The first 15 are negations and
// numbers, which the lexical guard is built for.
var contrasts = [][2]string{
	{"is the boundary layer laminar at this reynolds number", "is the boundary layer not laminar at this reynolds number"},
	{"heat transfer with mass injection", "heat transfer without mass injection"},
	{"does the shock wave detach from the wedge", "does the shock wave not detach from the wedge"},
	{"lift of wings with sweepback", "lift of wings without sweepback"},
	{"flow with dissociation in equilibrium", "flow with dissociation not in equilibrium"},
	{"can the panel flutter at this dynamic pressure", "the panel cannot flutter at this dynamic pressure"},
	{"viscous effects are important in the leading edge region", "viscous effects are not important in the leading edge region"},
	{"the cylinder buckles under axial load", "the cylinder doesn't buckle under axial load"},
	{"pressure on a cone with a blunt nose", "pressure on a cone with no blunt nose"},
	{"transition occurs on the flat plate", "transition never occurs on the flat plate"},
	{"pressure on a cone at mach 2", "pressure on a cone at mach 6"},
	{"flat plate heat transfer at reynolds number 10000", "flat plate heat transfer at reynolds number 1000000"},
	{"delta wing lift at 5 degrees angle of attack", "delta wing lift at 30 degrees angle of attack"},
	{"shell buckling with 2 stiffeners", "shell buckling with 8 stiffeners"},
	{"nozzle flow with area ratio 4", "nozzle flow with area ratio 25"},
	{"increase of drag with mach number", "decrease of drag with mach number"},
	{"subsonic flow over a thin airfoil", "supersonic flow over a thin airfoil"},
	{"laminar skin friction on a flat plate", "turbulent skin friction on a flat plate"},
	{"heating of the leading edge", "cooling of the leading edge"},
	{"favourable pressure gradient boundary layer", "adverse pressure gradient boundary layer"},
	{"upper surface pressure of the wing", "lower surface pressure of the wing"},
	{"compression corner flow", "expansion corner flow"},
	{"maximum lift of an airfoil", "minimum drag of an airfoil"},
	{"upstream influence of a shock", "downstream influence of a shock"},
	{"the leading edge of a wing", "the trailing edge of a wing"},
	{"inviscid flow past a sphere", "viscous flow past a sphere"},
	{"two dimensional wings", "three dimensional wings"},
	{"steady flow over an airfoil", "unsteady flow over an airfoil"},
	{"thin shells in tension", "thin shells in compression"},
	{"heat transfer to the windward side", "heat transfer to the leeward side"},
	{"drag of a cylinder in free molecule flow", "heat transfer to a cylinder in free molecule flow"},
	{"lift of a slender delta wing", "flutter of a slender delta wing"},
	{"pressure distribution on a cone", "heat transfer distribution on a cone"},
	{"vibration of a cylindrical shell", "buckling of a cylindrical shell"},
	{"skin friction in a turbulent boundary layer", "heat transfer in a turbulent boundary layer"},
	{"noise from a jet engine", "thrust from a jet engine"},
	{"temperature at the stagnation point", "pressure at the stagnation point"},
	{"lift of a wing in ground effect", "lift of a wing in a slipstream"},
	{"shock tube flow of argon", "shock tube flow of hydrogen"},
	{"boundary layer on a rotating disk", "boundary layer on a rotating cylinder"},
	{"drag reduction by suction", "drag reduction by blowing"},
	{"stress in a rotating disk", "stress in a heated disk"},
}

const guardedContrasts = 15

var (
	lsaOnce sync.Once
	lsaM    *embed.LSA
	lsaErr  error
)

// cranfieldLSA fits LSA (64 dimensions, seed 1) on the Cranfield abstracts
// (titles and bodies), skipping when the collection is absent.
func cranfieldLSA(t testing.TB) *embed.LSA {
	t.Helper()
	dir := os.Getenv("HYPERSPACE_DATA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	path := filepath.Join(dir, "cranfield", "cran.all.1400")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("Cranfield not found at %s; set HYPERSPACE_DATA_DIR to run this test", path)
	}
	lsaOnce.Do(func() {
		var docs []string
		text := strings.ReplaceAll(string(raw), "\r\n", "\n")
		for _, rec := range strings.Split("\n"+text, "\n.I ")[1:] {
			var b strings.Builder
			keep := false
			for _, line := range strings.Split(rec, "\n") {
				if strings.HasPrefix(line, ".") && len(line) == 2 {
					keep = line == ".T" || line == ".W"
					continue
				}
				if keep {
					b.WriteString(line)
					b.WriteByte(' ')
				}
			}
			docs = append(docs, b.String())
		}
		lsaM, lsaErr = embed.FitLSA(docs, embed.LSAOptions{Dim: 64, Seed: 1})
	})
	if lsaErr != nil {
		t.Fatal(lsaErr)
	}
	return lsaM
}

// semanticEval is one configuration's figures on the evaluation set.
type semanticEval struct {
	threshold            float64
	guard                bool
	paraHits, paraWrong  int // paraphrase queries that hit the right / another prompt
	contrastHits         int // contrast queries that hit anything
	guardedContrastHits  int // of them, among the negation and number pairs
	pairwiseParaAbove    int // pairs whose cosine alone reaches the threshold
	pairwiseContrastOver int
}

func (e semanticEval) hits() int { return e.paraHits + e.paraWrong + e.contrastHits }

// falseHitRate is the share of wrong answers among hits.
func (e semanticEval) falseHitRate() float64 {
	if e.hits() == 0 {
		return 0
	}
	return float64(e.paraWrong+e.contrastHits) / float64(e.hits())
}

func (e semanticEval) recall() float64 { return float64(e.paraHits) / float64(len(paraphrases)) }

// evaluate files every pair's first prompt in one index (one scope: the
// same model and parameters) and queries each second prompt.
func evaluate(t testing.TB, m embed.Embedder, threshold float64, guard bool) semanticEval {
	ctx := context.Background()
	x, err := NewSemanticIndex(SemanticConfig{Embedder: m, Threshold: threshold, NoGuard: !guard})
	if err != nil {
		t.Fatal(err)
	}
	const scope = "tiny-lm|{}"
	for i, p := range paraphrases {
		if err := x.Add(ctx, scope, p[0], fmt.Sprintf("para-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range contrasts {
		if err := x.Add(ctx, scope, p[0], fmt.Sprintf("contrast-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ev := semanticEval{threshold: threshold, guard: guard}
	for i, p := range paraphrases {
		hit, ok, err := x.Match(ctx, scope, p[1])
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ok && hit.RequestHash == fmt.Sprintf("para-%d", i):
			ev.paraHits++
		case ok:
			ev.paraWrong++
		}
		if cos(m, p[0], p[1]) >= threshold {
			ev.pairwiseParaAbove++
		}
	}
	for i, p := range contrasts {
		_, ok, err := x.Match(ctx, scope, p[1])
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			ev.contrastHits++
			if i < guardedContrasts {
				ev.guardedContrastHits++
			}
		}
		if cos(m, p[0], p[1]) >= threshold {
			ev.pairwiseContrastOver++
		}
	}
	return ev
}

func cos(m embed.Embedder, a, b string) float64 {
	v, _ := m.Embed(context.Background(), []string{a, b})
	return embed.Cosine(v[0], v[1])
}

// TestSemanticEvaluation measures recall and the false-hit rate (wrong
// answers among hits) of the semantic layer with LSA fitted on Cranfield,
// on 42 paraphrase and 42 contrast pairs, and logs them per threshold
// (run with -v to see the table). It asserts only what the guard promises:
// no negation or number contrast ever hits with the guard on.
func TestSemanticEvaluation(t *testing.T) {
	m := cranfieldLSA(t)
	if len(paraphrases) < 40 || len(contrasts) < 40 {
		t.Fatalf("evaluation set too small: %d paraphrases, %d contrasts", len(paraphrases), len(contrasts))
	}
	var negCos, paraCos float64
	for _, p := range contrasts[:10] {
		negCos += cos(m, p[0], p[1])
	}
	for _, p := range paraphrases {
		paraCos += cos(m, p[0], p[1])
	}
	t.Logf("LSA-64 on Cranfield: mean cosine of paraphrase pairs %.3f, of negation pairs %.3f", paraCos/float64(len(paraphrases)), negCos/10)
	t.Logf("%-9s %-5s %7s %10s %14s %16s %20s", "threshold", "guard", "recall", "false-hit", "contrast hits", "neg/num hits", "pairwise para/contr")
	for _, th := range []float64{0.80, 0.85, 0.90, 0.92, 0.95} {
		for _, guard := range []bool{false, true} {
			ev := evaluate(t, m, th, guard)
			t.Logf("%-9.2f %-5v %6.1f%% %9.1f%% %8d/%d %13d/%d %13d/%d %d/%d", th, guard, 100*ev.recall(), 100*ev.falseHitRate(),
				ev.contrastHits, len(contrasts), ev.guardedContrastHits, guardedContrasts,
				ev.pairwiseParaAbove, len(paraphrases), ev.pairwiseContrastOver, len(contrasts))
			if guard && ev.guardedContrastHits > 0 {
				t.Errorf("threshold %.2f: %d negation or number contrasts hit through the guard", th, ev.guardedContrastHits)
			}
		}
	}
}

func TestSemanticIndexScopesAndBounds(t *testing.T) {
	m := cranfieldLSA(t)
	ctx := context.Background()
	x, err := NewSemanticIndex(SemanticConfig{Embedder: m, MaxItems: 2})
	if err != nil {
		t.Fatal(err)
	}
	p := "boundary layer transition on a flat plate"
	if err := x.Add(ctx, Scope("a", "{}"), p, "h1"); err != nil {
		t.Fatal(err)
	}
	if hit, ok, _ := x.Match(ctx, Scope("a", "{}"), p); !ok || hit.RequestHash != "h1" || hit.Score < 0.999 {
		t.Fatalf("exact prompt: %+v %v", hit, ok)
	}
	if _, ok, _ := x.Match(ctx, Scope("b", "{}"), p); ok {
		t.Fatal("hit across models")
	}
	if _, ok, _ := x.Match(ctx, Scope("a", `{"maxTokens":9}`), p); ok {
		t.Fatal("hit across parameters")
	}
	if Scope("ab", "c") == Scope("a", "bc") {
		t.Fatal("scopes collide")
	}
	_ = x.Add(ctx, Scope("a", "{}"), "supersonic panel flutter", "h2")
	_ = x.Add(ctx, Scope("a", "{}"), "hypersonic body wake", "h3")
	if x.Len() != 2 {
		t.Fatalf("len %d, bound 2", x.Len())
	}
	if _, ok, _ := x.Match(ctx, Scope("a", "{}"), p); ok {
		t.Fatal("oldest prompt not evicted")
	}
	x.Remove("h2")
	if x.Len() != 1 {
		t.Fatalf("len %d after Remove", x.Len())
	}
	if _, ok, _ := x.Match(ctx, Scope("a", "{}"), "zzzz qqqq"); ok {
		t.Fatal("out-of-vocabulary prompt hit")
	}
	if _, err := NewSemanticIndex(SemanticConfig{}); err == nil {
		t.Fatal("index without an embedder")
	}
}

func TestGuardKey(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"the cylinder does not buckle", "the cylinder doesn't buckle", true},
		{"the cylinder buckles", "the cylinder does not buckle", false},
		{"mach 2 cone", "cone at mach 2.", true},
		{"mach 2 cone", "mach 2.5 cone", false},
		{"flow with injection", "flow without injection", false},
	} {
		if got := guardKey(c.a) == guardKey(c.b); got != c.same {
			t.Errorf("guard(%q)=%q guard(%q)=%q: same=%v, want %v", c.a, guardKey(c.a), c.b, guardKey(c.b), got, c.same)
		}
	}
}
