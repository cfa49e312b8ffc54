package causes

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed templates/autoresearch.yaml
var autoresearchYAML []byte

//go:embed templates/autoresearch_run.py
var autoresearchRunner string

// AutoresearchRunnerFile is the name of the adapter script that
// AutoresearchCause adds to the working directory.
const AutoresearchRunnerFile = "_hyperspace_autoresearch.py"

// AutoresearchTemplate returns the YAML template of the autoresearch
// cause (evaluator.workdir and the adapter file are filled in by
// AutoresearchCause).
func AutoresearchTemplate() []byte { return bytes.Clone(autoresearchYAML) }

// AutoresearchOption adjusts the autoresearch definition before it is
// validated (rename it, change the space or the baseline, ...).
type AutoresearchOption func(*Definition)

// WithName renames the cause (so several autoresearch forks can coexist).
func WithName(name string) AutoresearchOption {
	return func(d *Definition) { d.Name = name }
}

// WithPython sets the interpreter command that runs the adapter, which
// then runs train.py with the same interpreter (default: python3; e.g.
// "uv", "run", "python" or "/opt/venv/bin/python").
func WithPython(argv ...string) AutoresearchOption {
	return func(d *Definition) {
		d.Evaluator.Command = append(append([]string(nil), argv...), AutoresearchRunnerFile)
	}
}

// WithTimeout sets the per-run time limit in seconds (default 900: the
// 5-minute training budget plus start-up and the final evaluation).
func WithTimeout(seconds float64) AutoresearchOption {
	return func(d *Definition) { d.Evaluator.TimeoutSeconds = seconds }
}

// WithScript names the training script in dir (default train.py).
func WithScript(name string) AutoresearchOption {
	return func(d *Definition) {
		if d.Evaluator.Env == nil {
			d.Evaluator.Env = map[string]string{}
		}
		d.Evaluator.Env["AUTORESEARCH_SCRIPT"] = name
	}
}

// AutoresearchCause returns a cause that runs Karpathy-style autoresearch
// in dir: a directory with a train.py that trains for a fixed time budget
// and prints "val_bpb: <x>" in its final summary (lower is better).
//
// Each evaluation copies dir into a temporary directory, rewrites the
// top-level hyperparameter constants of the copied train.py from the
// config (parameter depth -> DEPTH, matrixLr -> MATRIX_LR; see
// templates/autoresearch.yaml for the space), puts the seed into its
// seed(...)/manual_seed(...) calls, runs it and reports val_bpb as the
// metric. autoresearch has one held-out shard, so TestMetric repeats
// val_bpb. A parameter with no matching constant in train.py fails the
// evaluation with a clear error.
//
// In real use the experiments worker runs this cause on a GPU machine
// where autoresearch's prepare.py has populated ~/.cache/autoresearch;
// the environment passes through CUDA_VISIBLE_DEVICES and a few other
// variables (evaluator.passEnv).
func AutoresearchCause(dir string, opts ...AutoresearchOption) (*Cause, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("causes: autoresearch: %w", err)
	}
	def, err := decode(autoresearchYAML)
	if err != nil {
		return nil, fmt.Errorf("causes: autoresearch template: %w", err)
	}
	def.Evaluator.Workdir = abs
	def.Evaluator.Files = map[string]string{AutoresearchRunnerFile: autoresearchRunner}
	for _, o := range opts {
		o(&def)
	}
	script := "train.py"
	if s := def.Evaluator.Env["AUTORESEARCH_SCRIPT"]; s != "" {
		script = s
	}
	// An LLM may rewrite the training script itself (the proposer only
	// changes its hyperparameters).
	if def.Evaluator.CodeFile == "" {
		def.Evaluator.CodeFile = script
	}
	if st, err := os.Stat(filepath.Join(abs, script)); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("causes: autoresearch: %s has no %s", abs, script)
	}
	return New(def)
}
