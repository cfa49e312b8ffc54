"""Hyperspace adapter for an autoresearch-style train.py.

Runs in a copy of the autoresearch directory. It reads the config from
$HYPERSPACE_CONFIG, rewrites the matching top-level constants of the
training script (camelCase parameter -> UPPER_SNAKE constant, e.g.
matrixLr -> MATRIX_LR), puts $HYPERSPACE_SEED into its seed(<int>) and
manual_seed(<int>) calls, runs it with this interpreter while echoing its
output, and prints the Hyperspace result line:

    {"metric": <val_bpb>, "testMetric": <val_bpb>, "values": {...}}

autoresearch has a single held-out evaluation shard, so testMetric repeats
val_bpb (no second multi-minute run). Every other "name: number" line of
the final summary becomes a value.
"""
import ast
import json
import os
import re
import subprocess
import sys

SCRIPT = os.environ.get("AUTORESEARCH_SCRIPT", "train.py")


def fail(msg, code=2):
    print("autoresearch adapter: " + msg, file=sys.stderr, flush=True)
    sys.exit(code)


def upper_snake(name):
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).upper()


def literal(v):
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, (int, float)):
        return repr(v)
    try:
        if isinstance(ast.literal_eval(v), (int, float, tuple, list)):
            return v
    except (ValueError, SyntaxError):
        pass
    return repr(v)


def main():
    with open(os.environ.get("HYPERSPACE_CONFIG", "config.json")) as f:
        cfg = json.load(f)
    seed = int(cfg.pop("seed", os.environ.get("HYPERSPACE_SEED", "0")))
    cfg.pop("split", None)
    try:
        with open(SCRIPT) as f:
            src = f.read()
    except OSError as e:
        fail("cannot read %s: %s" % (SCRIPT, e))
    for key, value in sorted(cfg.items()):
        const = upper_snake(key)
        pat = re.compile(r"^%s[ \t]*(:[^=\n]*)?=[^\n]*$" % re.escape(const), re.M)
        src, n = pat.subn(lambda m: "%s = %s  # set by hyperspace" % (const, literal(value)), src, count=1)
        if n == 0:
            fail("%s has no top-level assignment %s = ... for parameter %s" % (SCRIPT, const, key))
    src = re.sub(r"\b((?:manual_seed|seed)\(\s*)\d+(\s*\))", lambda m: m.group(1) + str(seed) + m.group(2), src)
    with open(SCRIPT, "w") as f:
        f.write(src)

    proc = subprocess.Popen([sys.executable, SCRIPT], stdout=subprocess.PIPE)
    tail = b""
    out = sys.stdout.buffer
    for chunk in iter(lambda: proc.stdout.read1(65536), b""):
        out.write(chunk)
        out.flush()
        tail = (tail + chunk)[-65536:]
    rc = proc.wait()
    out.write(b"\n")
    out.flush()
    if rc != 0:
        fail("%s exited with status %d" % (SCRIPT, rc), 1)

    lines = re.split(r"[\r\n]+", tail.decode("utf-8", "replace"))
    if "---" in lines:
        lines = lines[len(lines) - 1 - lines[::-1].index("---"):]
    metric, values = None, {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*):\s+(\S+)\s*$", line)
        if not m:
            continue
        try:
            num = float(m.group(2))
        except ValueError:
            continue
        if m.group(1) == "val_bpb":
            metric = num
        else:
            values[m.group(1)] = num
    if metric is None:
        fail("no 'val_bpb: <number>' line in the output of %s" % SCRIPT, 1)
    print(json.dumps({"metric": metric, "testMetric": metric, "values": values}), flush=True)


if __name__ == "__main__":
    main()
