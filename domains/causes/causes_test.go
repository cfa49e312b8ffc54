package causes

import (
	"errors"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/domains"
)

const goodYAML = `
name: toy-quadratic
description: Minimise a shifted quadratic.
metric: {name: loss, direction: minimize, unit: squared}
space:
  - {name: x, kind: float, min: -5, max: 5, help: coordinate}
  - {name: lr, kind: float, min: 0.0001, max: 0.1, log: true}
  - {name: steps, kind: int, min: 1, max: 100}
  - {name: mode, kind: choice, choices: ["32", "64", fast]}
  - {name: clip, kind: bool, fixed: true}
baseline: {x: 1.5, lr: 0.01, steps: 10, mode: 64, clip: false}
evaluator:
  command: [sh, eval.sh]
  timeoutSeconds: 30
  env: {FOO: bar}
`

const goodJSON = `{
  "name": "toy-json",
  "description": "JSON flavour.",
  "metric": {"name": "score", "direction": "maximize"},
  "space": [{"name": "x", "kind": "int", "min": 0, "max": 10}],
  "baseline": {"x": 3},
  "evaluator": {"command": ["sh", "-c", "echo '{\"metric\": 1}'"]}
}`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(goodYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "toy-quadratic" || c.Metric().Direction != domains.Minimize || c.Metric().Unit != "squared" {
		t.Fatalf("bad header: %q %+v", c.Name(), c.Metric())
	}
	if len(c.Space()) != 5 || !c.Space()[1].Log || !c.Space()[4].Fixed {
		t.Fatalf("bad space: %+v", c.Space())
	}
	b := c.Baseline()
	if b.Float("x") != 1.5 || b.Int("steps") != 10 || b.String("mode") != "64" || b.Bool("clip") {
		t.Fatalf("bad baseline: %v", b)
	}
	cfg, err := c.Validate(domains.Config{"x": -2.0})
	if err != nil || cfg.Float("x") != -2 || cfg.Float("lr") != 0.01 {
		t.Fatalf("Validate: %v %v", cfg, err)
	}
	if _, err := c.Validate(domains.Config{"x": 9.0}); err == nil || !strings.Contains(err.Error(), "x") {
		t.Fatalf("out-of-range config accepted: %v", err)
	}
	if _, err := c.Validate(domains.Config{"nope": 1.0}); err == nil {
		t.Fatal("unknown config key accepted")
	}
	d := c.Describe()
	for _, want := range []string{"toy-quadratic", "Minimise a shifted quadratic", "loss (minimize", "lr (float in [0.0001, 0.1], log scale", "fixed"} {
		if !strings.Contains(d, want) {
			t.Errorf("Describe lacks %q:\n%s", want, d)
		}
	}

	j, err := Parse([]byte(goodJSON))
	if err != nil {
		t.Fatal(err)
	}
	if j.Name() != "toy-json" || j.Metric().Direction != domains.Maximize || j.Baseline().Int("x") != 3 {
		t.Fatalf("bad JSON cause: %q %+v %v", j.Name(), j.Metric(), j.Baseline())
	}
	// Round trip through the persisted form.
	data, err := j.MarshalJSONIndent()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data); err != nil {
		t.Fatalf("re-parse of %s: %v", data, err)
	}
}

func TestParseBad(t *testing.T) {
	cases := []struct {
		name, from, to, want string
	}{
		{"unknown field", "description:", "colour: red\ndescription:", "unknown field colour"},
		{"unknown param field", "help: coordinate}", "help: coordinate, step: 2}", "unknown field step"},
		{"name missing", "name: toy-quadratic", "name: ''", "name: required"},
		{"name charset", "name: toy-quadratic", "name: Toy_Q", "name: \"Toy_Q\" must be"},
		{"reserved name", "name: toy-quadratic", "name: finance", "name: \"finance\" is a built-in"},
		{"description", "description: Minimise a shifted quadratic.", "description: ''", "description: required"},
		{"metric name", "name: loss,", "name: '',", "metric.name: required"},
		{"direction", "direction: minimize", "direction: down", "metric.direction: must be minimize or maximize"},
		{"max <= min", "{name: steps, kind: int, min: 1, max: 100}", "{name: steps, kind: int, min: 100, max: 1}", "space[2].max: must be > min"},
		{"missing max", "{name: x, kind: float, min: -5, max: 5, help: coordinate}", "{name: x, kind: float, min: -5}", "space[0].max: required"},
		{"log needs positive min", "min: 0.0001, max: 0.1, log: true", "min: 0, max: 0.1, log: true", "space[1].min: must be > 0 when log"},
		{"int bounds", "{name: steps, kind: int, min: 1, max: 100}", "{name: steps, kind: int, min: 1.5, max: 100}", "space[2].min: int bounds"},
		{"kind", "{name: clip, kind: bool, fixed: true}", "{name: clip, kind: text}", "space[4].kind: must be int, float, choice or bool"},
		{"no choices", `choices: ["32", "64", fast]`, "choices: []", "space[3].choices: at least one"},
		{"duplicate param", "{name: steps, kind: int", "{name: x, kind: int", "space[2].name: duplicate parameter \"x\""},
		{"param name", "{name: steps, kind: int", "{name: 'st eps', kind: int", "space[2].name"},
		{"baseline range", "lr: 0.01,", "lr: 5,", "baseline.lr: 5 out of range [0.0001, 0.1]"},
		{"baseline missing", "steps: 10, ", "", "baseline.steps: missing"},
		{"baseline unknown", "clip: false}", "clip: false, extra: 1}", "baseline.extra: unknown parameter"},
		{"baseline choice", "mode: 64", "mode: slow", "baseline.mode: must be one of"},
		{"command", "command: [sh, eval.sh]", "command: []", "evaluator.command: required"},
		{"timeout", "timeoutSeconds: 30", "timeoutSeconds: -1", "evaluator.timeoutSeconds"},
		{"reserved env", "env: {FOO: bar}", "env: {HYPERSPACE_SEED: '1'}", "evaluator.env.HYPERSPACE_SEED: HYPERSPACE_* variables are reserved"},
		{"bad file", "env: {FOO: bar}", "files: {../x.sh: 'echo'}", "evaluator.files.../x.sh"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(goodYAML, tc.from, tc.to, 1)
			if src == goodYAML {
				t.Fatalf("replacement %q not found", tc.from)
			}
			_, err := Parse([]byte(src))
			if err == nil {
				t.Fatalf("accepted:\n%s", src)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	var de *DefinitionError
	_, err := Parse([]byte(strings.Replace(goodYAML, "direction: minimize", "direction: up", 1)))
	if !errors.As(err, &de) || de.Field != "metric.direction" {
		t.Fatalf("want a *DefinitionError for metric.direction, got %#v", err)
	}
	for _, bad := range []string{"", "{", goodJSON + "{}", `{"name": "x", "bogus": 1}`, "a: 1\n---\nb: 2\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
