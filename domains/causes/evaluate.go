package causes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hyperspace-ai/hyperspace/domains"
)

// configFile is the name of the config file written into the working
// directory of every run.
const configFile = "config.json"

// MaxOutputBytes caps what is kept of an evaluator's stdout and of its
// stderr: the first and the last MaxOutputBytes/2 bytes, with a marker in
// between when output was dropped. The result line must therefore fit in
// the last MaxOutputBytes/2 bytes.
const MaxOutputBytes = 1 << 20

// progressInterval is how often Evaluate reports Progress while the
// evaluator runs (so activity heartbeats keep flowing).
var progressInterval = 5 * time.Second

// groupKillGrace bounds how long Evaluate waits for output pipes to close
// after the process group was killed (a process that left the group may
// still hold them).
const groupKillGrace = 2 * time.Second

// evalOutput is the parsed result line of one run.
type evalOutput struct {
	metric     float64
	testMetric *float64
	values     map[string]float64
	curve      [][2]float64
}

// runOutput is what one run of the evaluator produced.
type runOutput struct {
	out            evalOutput
	stdout, stderr []byte
}

// Evaluate implements domains.Domain. It validates cfg, then runs the
// evaluator command once on the validation split:
//
//   - a fresh temporary directory is created (and removed afterwards); the
//     evaluator.workdir template is copied into it, then evaluator.files
//     are written, then config.json: the normalised config plus "seed"
//     and "split" ("validation" or "test");
//   - the command runs there (cwd) in its own process group, with the
//     environment limited to PATH, HOME, evaluator.passEnv, evaluator.env
//     and HYPERSPACE_CONFIG (absolute path of config.json),
//     HYPERSPACE_SEED and HYPERSPACE_SPLIT;
//   - each run is limited to evaluator.timeoutSeconds, or to
//     opts.BudgetSeconds when that is positive and smaller; on timeout or
//     ctx cancellation the whole process group is killed (SIGKILL), and
//     any process left in the group after a normal exit is killed too;
//   - stdout and stderr are kept up to MaxOutputBytes each and returned
//     as the artifacts stdout.txt and stderr.txt;
//   - the last non-empty stdout line must be a JSON object
//     {"metric": n, "testMetric"?: n, "values"?: {name: n}, "curve"?: [[x, y], ...]};
//     non-numeric values (and names holding NUL) are ignored; a
//     non-finite metric is an error.
//
// When the result has no testMetric, the evaluator runs a second time with
// split "test" (same config and seed) and that run's metric becomes
// TestMetric; its values are added with a "test." prefix and its output
// as stdout.test.txt and stderr.test.txt. Evaluators that can score both
// splits in one go should print testMetric to avoid the second run.
//
// Values always hold durationSec (wall time of all runs). Progress is
// reported at the start, every few seconds while running (Fraction is the
// elapsed share of the time limit) and at the end. Evaluate is as
// deterministic as the evaluator is for a given config and seed.
func (c *Cause) Evaluate(ctx context.Context, cfg domains.Config, seed int64, opts domains.EvalOptions) (domains.Result, error) {
	if len(c.space) == 0 || len(c.def.Evaluator.Command) == 0 {
		return domains.Result{}, errors.New("causes: cause not initialised (build it with Parse or New)")
	}
	ncfg, err := c.Validate(cfg)
	if err != nil {
		return domains.Result{}, err
	}
	report := opts.Progress
	if report == nil {
		report = func(domains.Progress) {}
	}
	t0 := time.Now()
	limit := c.timeout()
	if opts.BudgetSeconds > 0 && opts.BudgetSeconds < limit {
		limit = opts.BudgetSeconds
	}
	timeout := time.Duration(limit * float64(time.Second))

	report(domains.Progress{Fraction: 0, Message: fmt.Sprintf("starting evaluator %q (limit %gs)", c.def.Evaluator.Command[0], limit)})
	val, err := c.run(ctx, ncfg, seed, domains.Validation, timeout, report, 0, 0.5)
	if err != nil {
		return domains.Result{}, err
	}
	res := domains.Result{
		Metric:    val.out.metric,
		Values:    val.out.values,
		Curve:     val.out.curve,
		Artifacts: map[string][]byte{"stdout.txt": val.stdout, "stderr.txt": val.stderr},
	}
	if val.out.testMetric != nil {
		res.TestMetric = *val.out.testMetric
	} else {
		test, err := c.run(ctx, ncfg, seed, domains.Test, timeout, report, 0.5, 0.5)
		if err != nil {
			return domains.Result{}, fmt.Errorf("%w (test split run)", err)
		}
		res.TestMetric = test.out.metric
		for k, v := range test.out.values {
			res.Values["test."+k] = v
		}
		res.Artifacts["stdout.test.txt"] = test.stdout
		res.Artifacts["stderr.test.txt"] = test.stderr
	}
	res.Values["durationSec"] = time.Since(t0).Seconds()
	report(domains.Progress{Fraction: 1, Metric: res.Metric, Message: fmt.Sprintf("done: %s = %g", c.def.Metric.Name, res.Metric)})
	return res, nil
}

// run executes the evaluator once for split. Progress fractions go from
// base to base+span.
func (c *Cause) run(ctx context.Context, cfg domains.Config, seed int64, split domains.Split, timeout time.Duration,
	report func(domains.Progress), base, span float64) (runOutput, error) {
	name := c.def.Name
	dir, err := os.MkdirTemp("", "hyperspace-cause-"+name+"-")
	if err != nil {
		return runOutput{}, fmt.Errorf("causes: %s: %w", name, err)
	}
	defer os.RemoveAll(dir)
	cfgPath, err := c.prepare(dir, cfg, seed, split)
	if err != nil {
		return runOutput{}, fmt.Errorf("causes: %s: %w", name, err)
	}

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := c.def.Evaluator.Command
	cmd := exec.CommandContext(runCtx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = c.env(cfgPath, seed, split)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }

	// Our own pipes (not io.Writers) so that Wait returns when the
	// evaluator exits even if a stray child still holds its stdout.
	stdout, stderr := newCapBuffer(MaxOutputBytes), newCapBuffer(MaxOutputBytes)
	outR, outW, err := os.Pipe()
	if err != nil {
		return runOutput{}, fmt.Errorf("causes: %s: %w", name, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return runOutput{}, fmt.Errorf("causes: %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	startErr := cmd.Start()
	outW.Close()
	errW.Close()
	if startErr != nil {
		outR.Close()
		errR.Close()
		return runOutput{}, fmt.Errorf("causes: %s: start evaluator %q: %w", name, argv[0], startErr)
	}
	var copies sync.WaitGroup
	for _, p := range []struct {
		r *os.File
		w io.Writer
	}{{outR, stdout}, {errR, stderr}} {
		copies.Go(func() { io.Copy(p.w, p.r) })
	}

	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	var waitErr error
wait:
	for {
		select {
		case waitErr = <-done:
			break wait
		case <-tick.C:
			el := time.Since(t0)
			report(domains.Progress{
				Fraction: base + span*math.Min(el.Seconds()/timeout.Seconds(), 0.99),
				Step:     int(el.Seconds()),
				Message:  fmt.Sprintf("evaluating %s split: %ds elapsed of %gs", split, int(el.Seconds()), timeout.Seconds()),
			})
		}
	}
	// Clean up anything the evaluator left behind in its group, then
	// drain the pipes (bounded, in case a process escaped the group).
	killGroup(cmd.Process.Pid)
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(groupKillGrace):
		outR.Close()
		errR.Close()
		<-drained
	}
	outR.Close()
	errR.Close()
	ro := runOutput{stdout: stdout.Bytes(), stderr: stderr.Bytes()}

	switch {
	case ctx.Err() != nil:
		return ro, fmt.Errorf("causes: %s: evaluation cancelled (process group killed): %w", name, ctx.Err())
	case runCtx.Err() != nil:
		return ro, fmt.Errorf("causes: %s: evaluator timed out after %gs on the %s split (process group killed)%s",
			name, timeout.Seconds(), split, tailNote(ro.stderr))
	case waitErr != nil:
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			return ro, fmt.Errorf("causes: %s: evaluator failed on the %s split: %v%s", name, split, ee, tailNote(ro.stderr))
		}
		return ro, fmt.Errorf("causes: %s: evaluator on the %s split: %w", name, split, waitErr)
	}
	out, err := parseResultLine(ro.stdout)
	if err != nil {
		return ro, fmt.Errorf("causes: %s: %s split: %w%s", name, split, err, tailNote(ro.stderr))
	}
	ro.out = out
	return ro, nil
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// tailNote formats the end of stderr for an error message.
func tailNote(stderr []byte) string {
	const n = 2000
	s := bytes.TrimSpace(stderr)
	if len(s) == 0 {
		return ""
	}
	if len(s) > n {
		s = append([]byte("..."), s[len(s)-n:]...)
	}
	return "; stderr tail:\n" + string(s)
}

// prepare fills the working directory and returns the config path.
func (c *Cause) prepare(dir string, cfg domains.Config, seed int64, split domains.Split) (string, error) {
	e := c.def.Evaluator
	if e.Workdir != "" {
		src := e.Workdir
		if !filepath.IsAbs(src) && c.baseDir != "" {
			src = filepath.Join(c.baseDir, src)
		}
		st, err := os.Stat(src)
		if err != nil {
			return "", fmt.Errorf("evaluator.workdir: %w", err)
		}
		if !st.IsDir() {
			return "", fmt.Errorf("evaluator.workdir: %s is not a directory", src)
		}
		if err := copyDir(src, dir); err != nil {
			return "", fmt.Errorf("evaluator.workdir: copy %s: %w", src, err)
		}
	}
	for _, name := range sortedKeys(e.Files) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(e.Files[name]), 0o755); err != nil {
			return "", err
		}
	}
	doc := make(map[string]any, len(cfg)+2)
	for _, p := range c.space {
		v := cfg[p.Name]
		if p.Kind == domains.Int {
			v = int64(cfg.Int(p.Name))
		}
		doc[p.Name] = v
	}
	doc["seed"] = seed
	doc["split"] = string(split)
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, configFile)
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}

// env builds the evaluator's environment.
func (c *Cause) env(cfgPath string, seed int64, split domains.Split) []string {
	pathVar := os.Getenv("PATH")
	if pathVar == "" {
		pathVar = "/usr/local/bin:/usr/bin:/bin"
	}
	env := []string{"PATH=" + pathVar, "HOME=" + os.Getenv("HOME")}
	for _, k := range c.def.Evaluator.PassEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range sortedKeys(c.def.Evaluator.Env) {
		env = append(env, k+"="+c.def.Evaluator.Env[k])
	}
	return append(env,
		"HYPERSPACE_CONFIG="+cfgPath,
		"HYPERSPACE_SEED="+strconv.FormatInt(seed, 10),
		"HYPERSPACE_SPLIT="+string(split),
	)
}

// copyDir copies the tree at src into dst (which exists): directories,
// regular files (with their permission bits) and symlinks.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		}
		return nil // sockets, devices, pipes: skipped
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// parseResultLine decodes the JSON object on the last non-empty line of
// stdout.
func parseResultLine(stdout []byte) (evalOutput, error) {
	var out evalOutput
	line := lastLine(stdout)
	if len(line) == 0 || line[0] != '{' {
		show := string(line)
		if len(show) > 200 {
			show = show[:200] + "..."
		}
		return out, fmt.Errorf(`no JSON result: the last line of stdout must be {"metric": <number>, ...}, got %q`, show)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(quoteNonFinite(line), &raw); err != nil {
		return out, fmt.Errorf("invalid JSON result line: %v", err)
	}
	m, err := number(raw["metric"])
	if err != nil {
		return out, fmt.Errorf("result metric: %w", err)
	}
	if math.IsNaN(m) || math.IsInf(m, 0) {
		return out, fmt.Errorf("result metric is %v (not a finite number)", m)
	}
	out.metric = m
	if r, ok := raw["testMetric"]; ok && string(r) != "null" {
		t, err := number(r)
		if err != nil {
			return out, fmt.Errorf("result testMetric: %w", err)
		}
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return out, fmt.Errorf("result testMetric is %v (not a finite number)", t)
		}
		out.testMetric = &t
	}
	out.values = map[string]float64{}
	if r, ok := raw["values"]; ok && string(r) != "null" {
		var vals map[string]json.RawMessage
		if err := json.Unmarshal(r, &vals); err != nil {
			return out, fmt.Errorf("result values: must be an object of numbers: %v", err)
		}
		for k, v := range vals {
			if strings.IndexByte(k, 0) >= 0 {
				continue // a name PostgreSQL cannot store (the receipt is kept as JSONB)
			}
			if f, err := number(v); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				out.values[k] = f
			}
		}
	}
	if r, ok := raw["curve"]; ok && string(r) != "null" {
		if err := json.Unmarshal(r, &out.curve); err != nil {
			return out, fmt.Errorf("result curve: must be [[step, value], ...]: %v", err)
		}
	}
	return out, nil
}

// lastLine returns the last non-blank line (after any carriage return).
func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, " \t\r\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if i := bytes.LastIndexByte(b, '\r'); i >= 0 {
		b = b[i+1:]
	}
	return bytes.TrimSpace(b)
}

// number decodes a JSON number, or one of the strings (or, after
// quoteNonFinite, bare tokens) NaN, Infinity, -Infinity.
func number(raw json.RawMessage) (float64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("missing")
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		return f, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch s {
		case "NaN", "nan":
			return math.NaN(), nil
		case "Infinity", "inf":
			return math.Inf(1), nil
		case "-Infinity", "-inf":
			return math.Inf(-1), nil
		}
	}
	return 0, fmt.Errorf("not a number: %s", raw)
}

// quoteNonFinite rewrites the bare NaN, Infinity and -Infinity tokens that
// Python's json module emits into strings, so the line stays decodable.
func quoteNonFinite(line []byte) []byte {
	var b bytes.Buffer
	inStr, esc := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case ch == '\\':
				esc = true
			case ch == '"':
				inStr = false
			}
			b.WriteByte(ch)
			continue
		}
		if ch == '"' {
			inStr = true
			b.WriteByte(ch)
			continue
		}
		matched := false
		for _, tok := range []string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(line[i:], []byte(tok)) {
				b.WriteString(`"` + tok + `"`)
				i += len(tok) - 1
				matched = true
				break
			}
		}
		if !matched {
			b.WriteByte(ch)
		}
	}
	return b.Bytes()
}

// capBuffer keeps the first and the last limit/2 bytes written to it.
type capBuffer struct {
	half  int
	head  []byte
	tail  []byte
	total int64
}

func newCapBuffer(limit int) *capBuffer { return &capBuffer{half: limit / 2} }

// Write implements io.Writer; it never fails.
func (b *capBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.total += int64(n)
	if room := b.half - len(b.head); room > 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if len(p) >= b.half {
		b.tail = append(b.tail[:0], p[len(p)-b.half:]...)
		return n, nil
	}
	b.tail = append(b.tail, p...)
	if len(b.tail) > 2*b.half {
		b.tail = append(b.tail[:0], b.tail[len(b.tail)-b.half:]...)
	}
	return n, nil
}

// Bytes returns the kept output, with a marker where bytes were dropped.
func (b *capBuffer) Bytes() []byte {
	tail := b.tail
	if len(tail) > b.half {
		tail = tail[len(tail)-b.half:]
	}
	out := append([]byte(nil), b.head...)
	if dropped := b.total - int64(len(b.head)+len(tail)); dropped > 0 {
		out = fmt.Appendf(out, "\n... [hyperspace: %d bytes of output omitted] ...\n", dropped)
	}
	return append(out, tail...)
}
