package causes

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/hyperspace-ai/hyperspace/internal/receipt"
)

// FuzzParse: a cause definition (the body of POST /api/v1/causes, YAML or
// JSON) parses into a valid cause or fails with an error, never a panic.
// A cause that parses encodes as JSON (what the API stores; an encoding
// error would be a 500), holds no NUL (the causes.definition JSONB column
// cannot store it), parses again from that JSON (Resolve reloads it from
// there for every later campaign) into the same definition, and its
// baseline validates against its space.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodYAML))
	f.Add([]byte(goodJSON))
	if b, err := os.ReadFile("templates/autoresearch.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"name: nul\ndescription: \"a\\0b\"\nmetric: {name: m, direction: minimize}\nspace: [{name: x, kind: float, min: 0, max: 1}]\nbaseline: {x: 0.5}\nevaluator: {command: [sh]}\n",
		"name: t\ndescription: d\nmetric: {name: m, direction: maximize}\nspace: [{name: w, kind: choice, choices: [\"1e+06\", \"16\", \"true\"]}]\nbaseline: {w: 1e6}\nevaluator: {command: [sh], files: {a/b.py: x}, env: {A: \"1\"}}\n",
		"name: t\ndescription: d\nmetric: {name: m, direction: maximize}\nspace: [{name: w, kind: choice, choices: [\"16\"]}]\nbaseline: {w: 0x10}\nevaluator: {command: [sh]}\n",
		"name: t\ndescription: d\nmetric: {name: m, direction: minimize}\nspace: [{name: n, kind: int, min: 1, max: 9007199254740993}]\nbaseline: {n: 9007199254740993}\nevaluator: {command: [sh], timeoutSeconds: .nan}\n",
		"name: t\ndescription: d\nmetric: {name: m, direction: minimize}\nspace: [{name: d, kind: choice, choices: [\"2001-12-14\"]}]\nbaseline: {d: 2001-12-14}\nevaluator: {command: [sh]}\n",
		"a: &a [*a]\n", "---\n---\n", "name: [1, 2]\n", "{}", "{\"name\":\"x\"} {}", "\t\n", "null", "~",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a cause and an error")
			}
			return
		}
		def, err := c.MarshalJSON()
		if err != nil {
			t.Fatalf("a parsed cause does not encode (a 500 in createCause): %v", err)
		}
		if bytes.Contains(def, []byte(`\u0000`)) {
			t.Fatalf("a parsed cause holds a NUL, which PostgreSQL cannot store: %s", def)
		}
		c2, err := Parse(def)
		if err != nil {
			t.Fatalf("a stored cause does not parse again (Resolve would fail): %v\n%s", err, def)
		}
		def2, err := c2.MarshalJSON()
		if err != nil || !bytes.Equal(def, def2) {
			t.Fatalf("definition changed when reloaded (%v):\n%s\n%s", err, def, def2)
		}
		if c2.Baseline().Key() != c.Baseline().Key() {
			t.Fatalf("baseline changed when reloaded: %s vs %s", c.Baseline().Key(), c2.Baseline().Key())
		}
		if _, err := c.Validate(c.Baseline()); err != nil {
			t.Fatalf("the baseline does not validate: %v", err)
		}
		_ = c.Describe()
		_ = c.Domain()
	})
}

// FuzzResultLine: an evaluator's stdout (a user's command, or code an LLM
// wrote for a code cause) yields a result or an error, never a panic. A
// result holds only finite numbers and value names PostgreSQL can store,
// so that a receipt can be signed over it.
func FuzzResultLine(f *testing.F) {
	for _, s := range []string{
		`{"metric": 0.123, "testMetric": 0.130, "values": {"steps": 100}}`,
		"log line\nval_bpb: 1.2\n{\"metric\": 1.5, \"curve\": [[0, 2.5], [100, 1.5]]}\r\n\n",
		`{"metric": NaN}`, `{"metric": 1, "testMetric": -Infinity}`, `{"metric": 1, "values": {"a": NaN, "b": "x", "c": 1e308}}`,
		`{"metric": "Infinity"}`, `{"metric": 1, "values": {"a\u0000b": 2}}`, `{"metric": 1, "curve": [[1]]}`, `{"metric": 1e400}`,
		`{"metric": 1, "note": "NaN Infinity", "values": null, "testMetric": null}`, `{`, ``, "\r", `{"metric":1}` + "\r" + `{"metric":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdout []byte) {
		out, err := parseResultLine(stdout)
		if err != nil {
			return
		}
		r := receipt.Receipt{Metric: receipt.MetricValue{Value: out.metric}, Result: receipt.Result{Values: out.values, LossCurve: out.curve}}
		if out.testMetric != nil {
			r.Metric.TestValue = *out.testMetric
		}
		if err := r.Check(); err != nil {
			t.Fatalf("a parsed result cannot be signed: %v", err)
		}
		for k := range out.values {
			if strings.IndexByte(k, 0) >= 0 {
				t.Fatalf("value name %q holds a NUL, which PostgreSQL cannot store", k)
			}
		}
		if math.IsNaN(out.metric) {
			t.Fatal("NaN metric")
		}
	})
}
