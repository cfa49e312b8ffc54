// Package causes implements user-defined research domains ("causes").
//
// A cause is declared in YAML or JSON: a name, a description, the metric to
// optimise, a typed search space, a baseline config and an evaluator, an
// external command that scores one config. A *Cause implements
// domains.Domain, so campaigns run on it exactly as on the built-in domains.
//
// Example definition:
//
//	name: toy-quadratic
//	description: Minimise a noisy quadratic.
//	metric: {name: loss, direction: minimize}
//	space:
//	  - {name: x, kind: float, min: -5, max: 5, help: first coordinate}
//	  - {name: mode, kind: choice, choices: [fast, slow]}
//	baseline: {x: 1.5, mode: fast}
//	evaluator:
//	  command: [python3, eval.py]
//	  workdir: /srv/causes/toy   # optional: copied into the temp dir
//	  timeoutSeconds: 60
//	  env: {OMP_NUM_THREADS: "1"}
//
// Evaluator protocol (see Cause.Evaluate): the command runs in a fresh
// temporary directory holding a copy of workdir, any inline files, and
// config.json (the config plus "seed" and "split"). It prints its result
// as JSON on the last non-empty line of stdout:
//
//	{"metric": 0.123, "testMetric": 0.130, "values": {"steps": 100}}
//
// Security: an evaluator is an arbitrary command run with the worker's
// privileges. Only trusted users may define causes.
package causes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// ReservedNames are the built-in domain names a cause may not take.
var ReservedNames = []string{"ml", "search", "finance", "skills", "causes"}

// DefaultTimeoutSeconds bounds one evaluator run when the definition sets
// no timeoutSeconds.
const DefaultTimeoutSeconds = 600

// MaxTimeoutSeconds is the largest accepted timeoutSeconds (one day).
const MaxTimeoutSeconds = 24 * 3600

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	paramNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Definition is the declarative form of a cause, as written in YAML or
// JSON. Field names are the same in both formats.
type Definition struct {
	Name        string         `json:"name" yaml:"name"`
	Description string         `json:"description" yaml:"description"`
	Metric      MetricDef      `json:"metric" yaml:"metric"`
	Space       []ParamDef     `json:"space" yaml:"space"`
	Baseline    map[string]any `json:"baseline" yaml:"baseline"`
	Evaluator   EvaluatorDef   `json:"evaluator" yaml:"evaluator"`
}

// MetricDef declares the metric the evaluator reports.
type MetricDef struct {
	Name      string `json:"name" yaml:"name"`
	Direction string `json:"direction" yaml:"direction"` // minimize | maximize
	Unit      string `json:"unit,omitempty" yaml:"unit,omitempty"`
}

// ParamDef declares one search-space parameter (see domains.Param). Min and
// Max are pointers so that a missing bound is reported, not read as 0.
type ParamDef struct {
	Name    string   `json:"name" yaml:"name"`
	Kind    string   `json:"kind" yaml:"kind"` // int | float | choice | bool
	Min     *float64 `json:"min,omitempty" yaml:"min,omitempty"`
	Max     *float64 `json:"max,omitempty" yaml:"max,omitempty"`
	Log     bool     `json:"log,omitempty" yaml:"log,omitempty"`
	Choices []string `json:"choices,omitempty" yaml:"choices,omitempty"`
	Help    string   `json:"help,omitempty" yaml:"help,omitempty"`
	Fixed   bool     `json:"fixed,omitempty" yaml:"fixed,omitempty"`
}

// EvaluatorDef declares the command that scores one config.
type EvaluatorDef struct {
	// Command is the argv to run (no shell). A relative program path with
	// a slash (./run.sh) is resolved in the working directory; a bare name
	// is looked up in PATH.
	Command []string `json:"command" yaml:"command"`
	// Workdir is an optional template directory copied into the temporary
	// working directory of each run. Relative paths are resolved against
	// the directory of the definition file when loaded by a Store.
	Workdir string `json:"workdir,omitempty" yaml:"workdir,omitempty"`
	// Files are inline files (relative path -> content) written into the
	// working directory after the workdir copy, e.g. a small evaluator
	// script kept in the definition itself.
	Files map[string]string `json:"files,omitempty" yaml:"files,omitempty"`
	// CodeFile, when set, names the file an LLM may rewrite: a proposal's
	// source code is written there (over the workdir copy and Files) before
	// the command runs, e.g. train.py for the autoresearch adapter.
	CodeFile string `json:"codeFile,omitempty" yaml:"codeFile,omitempty"`
	// TimeoutSeconds bounds one run (default DefaultTimeoutSeconds).
	TimeoutSeconds float64 `json:"timeoutSeconds,omitempty" yaml:"timeoutSeconds,omitempty"`
	// Env holds extra environment variables for the command. Names
	// starting with HYPERSPACE_ are reserved.
	Env map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// PassEnv names variables copied from the worker's environment when
	// set there (e.g. CUDA_VISIBLE_DEVICES). Everything else is dropped
	// except PATH and HOME.
	PassEnv []string `json:"passEnv,omitempty" yaml:"passEnv,omitempty"`
}

// DefinitionError is one problem in a definition; Field is a path such as
// "space[2].max" or "baseline.lr".
type DefinitionError struct {
	Field   string
	Message string
}

func (e *DefinitionError) Error() string { return e.Field + ": " + e.Message }

// Cause is a validated cause definition; it implements domains.Domain.
// Build one with Parse, New or AutoresearchCause; treat it as immutable.
type Cause struct {
	def      Definition
	space    domains.Space
	baseline domains.Config
	// baseDir resolves a relative Evaluator.Workdir ("" = process cwd).
	baseDir string
}

var _ domains.Domain = (*Cause)(nil)

// Parse decodes a YAML or JSON definition (JSON when the first non-blank
// byte is '{'), rejecting unknown fields, and validates it. Errors name
// the offending field; validation errors are joined *DefinitionError
// values (use errors.As to get the first).
func Parse(data []byte) (*Cause, error) {
	def, err := decode(data)
	if err != nil {
		return nil, err
	}
	return New(def)
}

// New validates def and returns the cause.
func New(def Definition) (*Cause, error) {
	space, base, err := check(&def)
	if err != nil {
		return nil, err
	}
	return &Cause{def: def, space: space, baseline: base}, nil
}

func decode(data []byte) (Definition, error) {
	var def Definition
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return def, errors.New("causes: empty definition")
	}
	if trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&def); err != nil {
			return def, fmt.Errorf("causes: invalid JSON definition: %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return def, errors.New("causes: invalid JSON definition: trailing data after the object")
		}
		return def, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&def); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				msgs[i] = yamlFieldRE.ReplaceAllString(m, "unknown field $1")
			}
			return def, fmt.Errorf("causes: invalid YAML definition: %s", strings.Join(msgs, "; "))
		}
		return def, fmt.Errorf("causes: invalid YAML definition: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); err != io.EOF {
		return def, errors.New("causes: invalid YAML definition: more than one document")
	}
	return def, nil
}

var yamlFieldRE = regexp.MustCompile(`field (\S+) not found in type \S+`)

// Definition returns a copy of the cause's definition.
func (c *Cause) Definition() Definition {
	d := c.def
	d.Space = slices.Clone(d.Space)
	d.Baseline = cloneMap(d.Baseline)
	d.Evaluator.Command = slices.Clone(d.Evaluator.Command)
	d.Evaluator.Files = cloneMap(d.Evaluator.Files)
	d.Evaluator.Env = cloneMap(d.Evaluator.Env)
	d.Evaluator.PassEnv = slices.Clone(d.Evaluator.PassEnv)
	return d
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// MarshalJSON encodes the cause as its definition.
func (c *Cause) MarshalJSON() ([]byte, error) { return json.Marshal(c.def) }

// Check validates the definition (Validate is taken by domains.Domain for
// configs). It reports every problem found, each a *DefinitionError naming
// its field, joined with errors.Join. New and Parse call it.
func (c *Cause) Check() error {
	_, _, err := check(&c.def)
	return err
}

// check validates d and returns its space and normalised baseline.
func check(d *Definition) (domains.Space, domains.Config, error) {
	var space domains.Space
	var baseline domains.Config
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &DefinitionError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	switch {
	case d.Name == "":
		bad("name", "required")
	case len(d.Name) > 63 || !nameRE.MatchString(d.Name):
		bad("name", "%q must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit", d.Name)
	case slices.Contains(ReservedNames, d.Name):
		bad("name", "%q is a built-in domain name (reserved: %s)", d.Name, strings.Join(ReservedNames, ", "))
	}
	if strings.TrimSpace(d.Description) == "" {
		bad("description", "required")
	}
	if d.Metric.Name == "" {
		bad("metric.name", "required")
	}
	if dir := domains.Direction(d.Metric.Direction); dir != domains.Minimize && dir != domains.Maximize {
		bad("metric.direction", "must be minimize or maximize, got %q", d.Metric.Direction)
	}

	sp, spaceErrs := buildSpace(d.Space)
	errs = append(errs, spaceErrs...)
	if len(spaceErrs) == 0 {
		base := coerceChoices(sp, d.Baseline)
		if len(d.Baseline) == 0 {
			bad("baseline", "required (a value for every parameter)")
		} else if norm, err := sp.Normalize(base, nil); err != nil {
			var fe *domains.FieldError
			if errors.As(err, &fe) {
				bad("baseline."+fe.Field, "%s", fe.Message)
			} else {
				bad("baseline", "%v", err)
			}
		} else {
			space, baseline = sp, norm
		}
	}

	e := &d.Evaluator
	if len(e.Command) == 0 || e.Command[0] == "" {
		bad("evaluator.command", "required (argv list, e.g. [python3, eval.py])")
	}
	if math.IsNaN(e.TimeoutSeconds) || e.TimeoutSeconds < 0 || e.TimeoutSeconds > MaxTimeoutSeconds {
		bad("evaluator.timeoutSeconds", "must be between 0 (default %d) and %d, got %v", DefaultTimeoutSeconds, MaxTimeoutSeconds, e.TimeoutSeconds)
	}
	for _, k := range sortedKeys(e.Env) {
		switch {
		case !envNameRE.MatchString(k):
			bad("evaluator.env."+k, "not a valid variable name")
		case strings.HasPrefix(k, "HYPERSPACE_"):
			bad("evaluator.env."+k, "HYPERSPACE_* variables are reserved")
		}
	}
	for i, k := range e.PassEnv {
		if !envNameRE.MatchString(k) {
			bad(fmt.Sprintf("evaluator.passEnv[%d]", i), "%q is not a valid variable name", k)
		}
	}
	for _, name := range sortedKeys(e.Files) {
		if clean := path.Clean(name); name == "" || path.IsAbs(name) || clean != name || clean == "." || strings.HasPrefix(clean, "../") || clean == ".." || name == configFile {
			bad("evaluator.files."+name, "must be a clean relative path inside the working directory (not %s)", configFile)
		}
	}
	if name := e.CodeFile; name != "" {
		if clean := path.Clean(name); path.IsAbs(name) || clean != name || clean == "." || strings.HasPrefix(clean, "../") || clean == ".." || name == configFile {
			bad("evaluator.codeFile", "must be a clean relative path inside the working directory (not %s)", configFile)
		}
	}
	// The definition is stored as JSONB, which cannot hold NUL (the other
	// strings are names, paths and choices checked above or below).
	noNUL := func(field, v string) {
		if strings.IndexByte(v, 0) >= 0 {
			bad(field, "must not contain a NUL character")
		}
	}
	noNUL("description", d.Description)
	noNUL("metric.name", d.Metric.Name)
	noNUL("metric.unit", d.Metric.Unit)
	for i, p := range d.Space {
		noNUL(fmt.Sprintf("space[%d].help", i), p.Help)
		for j, ch := range p.Choices {
			noNUL(fmt.Sprintf("space[%d].choices[%d]", i, j), ch)
		}
	}
	for i, a := range e.Command {
		noNUL(fmt.Sprintf("evaluator.command[%d]", i), a)
	}
	noNUL("evaluator.workdir", e.Workdir)
	noNUL("evaluator.codeFile", e.CodeFile)
	for _, name := range sortedKeys(e.Files) {
		noNUL("evaluator.files", name)
		noNUL("evaluator.files."+name, e.Files[name])
	}
	for _, k := range sortedKeys(e.Env) {
		noNUL("evaluator.env."+k, e.Env[k])
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return space, baseline, nil
}

// buildSpace checks the parameter declarations and converts them.
func buildSpace(ps []ParamDef) (domains.Space, []error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &DefinitionError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if len(ps) == 0 {
		bad("space", "at least one parameter is required")
	}
	seen := map[string]int{}
	space := make(domains.Space, 0, len(ps))
	for i, p := range ps {
		f := fmt.Sprintf("space[%d]", i)
		if p.Name == "" {
			bad(f+".name", "required")
		} else if !paramNameRE.MatchString(p.Name) {
			bad(f+".name", "%q must be an identifier ([A-Za-z_][A-Za-z0-9_]*)", p.Name)
		} else if j, dup := seen[p.Name]; dup {
			bad(f+".name", "duplicate parameter %q (also space[%d])", p.Name, j)
		} else {
			seen[p.Name] = i
		}
		out := domains.Param{Name: p.Name, Kind: domains.ParamKind(p.Kind), Log: p.Log, Choices: slices.Clone(p.Choices), Help: p.Help, Fixed: p.Fixed}
		switch out.Kind {
		case domains.Int, domains.Float:
			if len(p.Choices) > 0 {
				bad(f+".choices", "only for kind choice")
			}
			if p.Min == nil {
				bad(f+".min", "required for kind %s", p.Kind)
			}
			if p.Max == nil {
				bad(f+".max", "required for kind %s", p.Kind)
			}
			if p.Min == nil || p.Max == nil {
				break
			}
			lo, hi := *p.Min, *p.Max
			switch {
			case math.IsNaN(lo) || math.IsInf(lo, 0):
				bad(f+".min", "must be finite")
			case math.IsNaN(hi) || math.IsInf(hi, 0):
				bad(f+".max", "must be finite")
			case !(hi > lo):
				bad(f+".max", "must be > min (%v)", lo)
			case out.Kind == domains.Int && (lo != math.Trunc(lo) || hi != math.Trunc(hi)):
				bad(f+".min", "int bounds must be integers, got [%v, %v]", lo, hi)
			case p.Log && lo <= 0:
				bad(f+".min", "must be > 0 when log is true, got %v", lo)
			}
			out.Min, out.Max = lo, hi
		case domains.Choice:
			if p.Min != nil || p.Max != nil || p.Log {
				bad(f, "min, max and log are not allowed for kind choice")
			}
			if len(p.Choices) == 0 {
				bad(f+".choices", "at least one choice is required")
			}
			seenChoice := map[string]bool{}
			for j, ch := range p.Choices {
				if seenChoice[ch] {
					bad(fmt.Sprintf("%s.choices[%d]", f, j), "duplicate choice %q", ch)
				}
				seenChoice[ch] = true
			}
		case domains.Bool:
			if p.Min != nil || p.Max != nil || p.Log || len(p.Choices) > 0 {
				bad(f, "min, max, log and choices are not allowed for kind bool")
			}
		case "":
			bad(f+".kind", "required (int, float, choice or bool)")
		default:
			bad(f+".kind", "must be int, float, choice or bool, got %q", p.Kind)
		}
		space = append(space, out)
	}
	return space, errs
}

// coerceChoices turns scalar baseline values of choice parameters into
// strings (YAML reads `width: 64` as an int even when the choices are
// strings "32", "64").
func coerceChoices(space domains.Space, base map[string]any) domains.Config {
	out := make(domains.Config, len(base))
	for k, v := range base {
		if p, ok := space.Lookup(k); ok && p.Kind == domains.Choice {
			switch v.(type) {
			case int, int64, float64, bool:
				v = fmt.Sprint(v)
			}
		}
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Name implements domains.Domain.
func (c *Cause) Name() string { return c.def.Name }

// Metric implements domains.Domain.
func (c *Cause) Metric() domains.Metric {
	return domains.Metric{Name: c.def.Metric.Name, Direction: domains.Direction(c.def.Metric.Direction), Unit: c.def.Metric.Unit}
}

// Space implements domains.Domain.
func (c *Cause) Space() domains.Space {
	s := slices.Clone(c.space)
	for i := range s {
		s[i].Choices = slices.Clone(s[i].Choices)
	}
	return s
}

// Baseline implements domains.Domain.
func (c *Cause) Baseline() domains.Config { return c.baseline.Clone() }

// Validate implements domains.Domain: types and ranges against the space,
// missing parameters filled from the baseline. Causes declare no
// cross-parameter constraints; the evaluator may reject a config by
// exiting non-zero.
func (c *Cause) Validate(cfg domains.Config) (domains.Config, error) {
	return c.space.Normalize(cfg, c.baseline)
}

// Describe implements domains.Domain.
func (c *Cause) Describe() string {
	var b strings.Builder
	m := c.Metric()
	fmt.Fprintf(&b, "Cause %q (user-defined research domain).\n\n%s\n\n", c.def.Name, strings.TrimSpace(c.def.Description))
	fmt.Fprintf(&b, "Metric: %s (%s", m.Name, m.Direction)
	if m.Unit != "" {
		fmt.Fprintf(&b, ", unit %s", m.Unit)
	}
	b.WriteString(") on the validation split; the test split is held out.\n\nParameters:\n")
	for _, p := range c.space {
		fmt.Fprintf(&b, "- %s (%s", p.Name, p.Kind)
		switch p.Kind {
		case domains.Int, domains.Float:
			fmt.Fprintf(&b, " in [%v, %v]", p.Min, p.Max)
			if p.Log {
				b.WriteString(", log scale")
			}
		case domains.Choice:
			fmt.Fprintf(&b, ": %s", strings.Join(p.Choices, "|"))
		}
		if p.Fixed {
			b.WriteString(", fixed: an assumption, do not change")
		}
		fmt.Fprintf(&b, "; baseline %v)", c.baseline[p.Name])
		if p.Help != "" {
			b.WriteString(": " + p.Help)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nEach evaluation runs an external command with a %gs time limit; the seed is passed to it.\n", c.timeout())
	return b.String()
}

// timeout is the per-run limit from the definition, in seconds.
func (c *Cause) timeout() float64 {
	if c.def.Evaluator.TimeoutSeconds > 0 {
		return c.def.Evaluator.TimeoutSeconds
	}
	return DefaultTimeoutSeconds
}

func jsonIndent(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
