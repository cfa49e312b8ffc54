#!/usr/bin/env python3
"""Hyperspace PyTorch worker for the ML domain's character-level GPT.

The Go package domains/ml/torchml drives this script (it embeds a copy and
starts it as one persistent process per Backend). It trains and evaluates
exactly the model of domains/ml (model.go, layers.go, train.go) with torch
ops, so a GPU worker can run the ML domain's experiments and DiLoCo inner
rounds; parameters and optimizer state cross in the hyperspace tensor
format (internal/tensor: "HSTENSOR", fp32 sections).

Modes:

  hs_torch.py serve         requests as JSON lines on stdin, one JSON line
                            per response on stdout (progress lines first,
                            when asked for); stray output goes to stderr.
  hs_torch.py run [FILE|-]  one request from FILE (default stdin), the
                            response on stdout; exit status 1 on error.
  hs_torch.py info          versions, device and BLAS as JSON.

Requests ({"op": ..., "id": optional, echoed back}):

  train  config (normalised ML config), vocabSize, input (tensor file with
         sections params, m, v and meta {"step": s}), output (tensor file
         to write, same sections, meta {"step": s+n}), shard (file of uint8
         token ids), offsets (n lists of batchSize window offsets, from
         ml.SampleOffsets: window = shard[o : o+contextLength+1]),
         totalSteps (length of the LR schedule), optional device
         ("auto" | "cpu" | "cuda[:i]"), threads, progress (bool),
         budgetSeconds (stop early once exceeded; truncated=true).
         Response: losses, lrs, steps, tokens, seconds, device, torch,
         blas, threads, truncated.
  eval   config, vocabSize, params (tensor file with a params section),
         split (file of uint8 token ids): the mean loss over the fixed
         evaluation windows of ml.evalLoss. Response: loss, count.
  echo   input, output: decode a tensor file into torch tensors and write
         them back (format round-trip check).
  info   versions, device, BLAS.
  sleep  seconds (tests); crash code (tests: the process exits).

Every response has "ok"; errors have "error" (type: message) and
"traceback". Protocol version: PROTOCOL.

Numerics follow the Go trainer: token + learned position embeddings,
pre-norm blocks (layernorm with bias, or rmsnorm without; eps 1e-5 inside
the square root, biased variance), causal multi-head attention with a fused
[q | k | v] projection (head h = columns h*hd..(h+1)*hd of each part,
scores scaled by 1/sqrt(hd)), MLP relu / gelu (tanh approximation) /
swiglu (first projection laid out [gate | value], silu(gate)*value), final
norm, output linear; weights stored in x.W form (in x out). AdamW beta1 0.9,
beta2 0.95, eps 1e-8 with bias correction and decoupled decay on matrices
and embeddings; global gradient-norm clipping; warmup + cosine LR. Float32
throughout (the Go trainer does some reductions in float64), so results
agree closely but not bit for bit.
"""
import json
import math
import os
import struct
import sys
import time
import traceback

PROTOCOL = 1
# Deterministic cuBLAS needs this before CUDA initialises.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MAGIC = b"HSTENSOR"
TENSOR_VERSION = 1
MAX_HEADER = 1 << 20
NORM_EPS = 1e-5
BETA1, BETA2, ADAM_EPS = 0.9, 0.95, 1e-8
EVAL_SEGMENTS, EVAL_SEG_LEN = 32, 512


class RequestError(Exception):
    """A request the worker cannot serve (bad fields, shapes, files)."""


# ---------------------------------------------------------------- tensor files

def read_tensor_file(path):
    """Parses a hyperspace tensor file (fp32 sections only).

    Returns (header dict, {section name: float32 numpy array})."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 16 or b[:8] != MAGIC:
        raise RequestError("%s: not a hyperspace tensor file (bad magic)" % path)
    version, hlen = struct.unpack_from("<II", b, 8)
    if version != TENSOR_VERSION:
        raise RequestError("%s: tensor format version %d, want %d" % (path, version, TENSOR_VERSION))
    if hlen > MAX_HEADER or hlen > len(b) - 16:
        raise RequestError("%s: header length %d" % (path, hlen))
    hdr = json.loads(b[16:16 + hlen].decode("utf-8"))
    if hdr.get("format") != "hyperspace-tensor":
        raise RequestError("%s: format %r" % (path, hdr.get("format")))
    layout = hdr.get("layout") or []
    off = 0
    for t in layout:
        if t["offset"] != off or t["rows"] < 0 or t["cols"] < 0:
            raise RequestError("%s: layout tensor %s at %d, expected %d" % (path, t["name"], t["offset"], off))
        off += t["rows"] * t["cols"]
    pos = 16 + hlen
    vecs = {}
    for s in hdr.get("sections") or []:
        if s.get("codec") != "fp32":
            raise RequestError("%s: section %s has codec %s; the torch worker reads fp32 only" % (path, s.get("name"), s.get("codec")))
        n = int(s["numel"])
        if layout and n != off:
            raise RequestError("%s: section %s has %d values, layout has %d" % (path, s["name"], n, off))
        if s["bytes"] != 4 * n or pos + 4 * n > len(b):
            raise RequestError("%s: section %s: %d bytes declared, %d expected, %d present" % (path, s["name"], s["bytes"], 4 * n, len(b) - pos))
        if s["name"] in vecs:
            raise RequestError("%s: duplicate section %s" % (path, s["name"]))
        vecs[s["name"]] = np.frombuffer(b, dtype="<f4", count=n, offset=pos)
        pos += 4 * n
    if pos != len(b):
        raise RequestError("%s: %d trailing bytes" % (path, len(b) - pos))
    return hdr, vecs


def write_tensor_file(path, kind, layout, meta, vecs):
    """Writes a hyperspace tensor file with fp32 sections (name, tensor)."""
    datas, sections = [], []
    for name, t in vecs:
        a = t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
        if not np.isfinite(a).all():
            raise RequestError("section %s has non-finite values" % name)
        datas.append(a.tobytes())
        sections.append({"name": name, "codec": "fp32", "numel": int(a.size), "bytes": 4 * int(a.size)})
    hdr = {"format": "hyperspace-tensor", "kind": kind, "sections": sections}
    if layout:
        hdr["layout"] = layout
    if meta is not None:
        hdr["meta"] = meta
    hb = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<II", TENSOR_VERSION, len(hb)))
        f.write(hb)
        for d in datas:
            f.write(d)
    os.replace(tmp, path)


# ---------------------------------------------------------------- model

class Hyper:
    """The typed config (ml.hyperFrom)."""

    def __init__(self, cfg, vocab):
        def num(k):
            if k not in cfg:
                raise RequestError("config has no %s" % k)
            return cfg[k]
        self.n_layers = int(round(num("nLayers")))
        self.d = int(round(num("dModel")))
        self.heads = int(round(num("nHeads")))
        self.ctx = int(round(num("contextLength")))
        self.ff_mult = int(round(num("dFFMult")))
        self.act = str(num("activation"))
        self.norm = str(num("normalization"))
        self.lr = float(num("learningRate"))
        self.min_lr_ratio = float(num("minLRRatio"))
        self.wd = float(num("weightDecay"))
        self.clip = float(num("gradientClipNorm"))
        self.warmup = int(round(num("warmupSteps")))
        self.batch = int(round(num("batchSize")))
        self.vocab = int(vocab)
        if self.act not in ("relu", "gelu", "swiglu"):
            raise RequestError("activation %r" % self.act)
        if self.norm not in ("layernorm", "rmsnorm"):
            raise RequestError("normalization %r" % self.norm)
        if self.d % self.heads:
            raise RequestError("dModel %d not divisible by nHeads %d" % (self.d, self.heads))
        if not 2 <= self.vocab <= 256:
            raise RequestError("vocabSize %d out of range 2..256" % self.vocab)

    def ff_hidden(self):
        if self.act == "swiglu":
            return (2 * self.ff_mult * self.d // 3 + 3) // 4 * 4
        return self.ff_mult * self.d

    def ff_in(self):
        return 2 * self.ff_hidden() if self.act == "swiglu" else self.ff_hidden()

    def layout(self):
        """The flat parameter layout of ml.newModel: [(name, rows, cols, decay)]."""
        d, f = self.d, self.ff_in()
        bias = self.norm == "layernorm"
        out = [("wte", self.vocab, d, True), ("wpe", self.ctx, d, True)]
        for l in range(self.n_layers):
            p = "h%d." % l
            out.append((p + "ln1.g", 1, d, False))
            if bias:
                out.append((p + "ln1.b", 1, d, False))
            out += [(p + "attn.wqkv", d, 3 * d, True), (p + "attn.bqkv", 1, 3 * d, False),
                    (p + "attn.wo", d, d, True), (p + "attn.bo", 1, d, False)]
            out.append((p + "ln2.g", 1, d, False))
            if bias:
                out.append((p + "ln2.b", 1, d, False))
            out += [(p + "mlp.w1", d, f, True), (p + "mlp.b1", 1, f, False),
                    (p + "mlp.w2", self.ff_hidden(), d, True), (p + "mlp.b2", 1, d, False)]
        out.append(("lnf.g", 1, d, False))
        if bias:
            out.append(("lnf.b", 1, d, False))
        out += [("out.w", d, self.vocab, True), ("out.b", 1, self.vocab, False)]
        return out

    def layout_json(self):
        res, off = [], 0
        for name, r, c, _ in self.layout():
            res.append({"name": name, "offset": off, "rows": r, "cols": c})
            off += r * c
        return res

    def numel(self):
        return sum(r * c for _, r, c, _ in self.layout())

    def lr_at(self, s, steps):
        """ml.lrAt: linear warmup, then cosine to minLRRatio of the peak."""
        if s < self.warmup:
            return self.lr * float(s + 1) / float(self.warmup)
        span = steps - self.warmup
        if span <= 1:
            return self.lr
        prog = float(s - self.warmup) / float(span - 1)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * prog)))


def check_layout(h, hdr, path):
    want = h.layout_json()
    have = hdr.get("layout")
    if have and have != want:
        for a, b in zip(have, want):
            if a != b:
                raise RequestError("%s: layout tensor %s does not match the config (expected %s)" % (path, json.dumps(a), json.dumps(b)))
        raise RequestError("%s: layout has %d tensors, config has %d" % (path, len(have), len(want)))


class Model:
    """Flat parameter/gradient/moment vectors with per-tensor views."""

    def __init__(self, h, device, params, m=None, v=None):
        self.h = h
        n = h.numel()
        if params.size != n:
            raise RequestError("params has %d values, config needs %d" % (params.size, n))
        self.flat = torch.from_numpy(np.array(params, dtype=np.float32)).to(device)
        self.gflat = torch.zeros(n, dtype=torch.float32, device=device)
        self.m = torch.from_numpy(np.array(m, dtype=np.float32)).to(device) if m is not None else None
        self.v = torch.from_numpy(np.array(v, dtype=np.float32)).to(device) if v is not None else None
        for name, x in (("m", m), ("v", v)):
            if x is not None and x.size != n:
                raise RequestError("%s has %d values, config needs %d" % (name, x.size, n))
        self.p = {}
        mask = torch.zeros(n, dtype=torch.float32, device=device)
        off = 0
        for name, r, c, decay in h.layout():
            k = r * c
            t = self.flat[off:off + k].view(r, c)
            t.requires_grad_(True)
            t.grad = self.gflat[off:off + k].view(r, c)
            self.p[name] = t
            if decay:
                mask[off:off + k] = 1
            off += k
        self.decay_mask = mask
        self.masks = {}

    def causal(self, T, device):
        if T not in self.masks:
            self.masks[T] = torch.ones(T, T, dtype=torch.bool, device=device).triu(1)
        return self.masks[T]

    def norm(self, x, g, b):
        d = self.h.d
        if self.h.norm == "layernorm":
            return F.layer_norm(x, (d,), g.view(d), b.view(d), NORM_EPS)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * g.view(d)

    def logits(self, tokens):
        """tokens: B x T int64 -> logits (B*T) x V."""
        h, P = self.h, self.p
        B, T = tokens.shape
        d, H = h.d, h.heads
        hd = d // H
        x = (F.embedding(tokens, P["wte"]) + P["wpe"][:T]).view(B * T, d)
        mask = self.causal(T, tokens.device)
        scale = 1.0 / math.sqrt(hd)
        f = h.ff_hidden()
        for l in range(h.n_layers):
            pre = "h%d." % l
            a = self.norm(x, P[pre + "ln1.g"], P.get(pre + "ln1.b"))
            qkv = torch.addmm(P[pre + "attn.bqkv"].view(3 * d), a, P[pre + "attn.wqkv"])
            q, k, v = qkv.view(B, T, 3, H, hd).permute(2, 0, 3, 1, 4).unbind(0)  # each B,H,T,hd
            s = torch.matmul(q, k.transpose(-2, -1)) * scale
            s = s.masked_fill(mask, float("-inf"))
            o = torch.matmul(torch.softmax(s, dim=-1), v)  # B,H,T,hd
            o = o.transpose(1, 2).reshape(B * T, d)
            x = torch.addmm(x + P[pre + "attn.bo"].view(d), o, P[pre + "attn.wo"])
            a = self.norm(x, P[pre + "ln2.g"], P.get(pre + "ln2.b"))
            u = torch.addmm(P[pre + "mlp.b1"].view(-1), a, P[pre + "mlp.w1"])
            if h.act == "relu":
                u = F.relu(u)
            elif h.act == "gelu":
                u = F.gelu(u, approximate="tanh")
            else:
                u = F.silu(u[:, :f]) * u[:, f:]
            x = torch.addmm(x + P[pre + "mlp.b2"].view(d), u, P[pre + "mlp.w2"])
        x = self.norm(x, P["lnf.g"], P.get("lnf.b"))
        return torch.addmm(P["out.b"].view(h.vocab), x, P["out.w"])


# ---------------------------------------------------------------- environment

def blas_info():
    """What BLAS torch uses: the build's BLAS_INFO (torch.__config__.show())
    and the libblas actually mapped into this process."""
    show = torch.__config__.show()
    info = {}
    for key in ("BLAS_INFO", "LAPACK_INFO"):
        i = show.find(key + "=")
        if i >= 0:
            info[key.split("_")[0].lower() + "Info"] = show[i + len(key) + 1:].split(",")[0].strip()
    info["mkl"] = "MKL not found" not in show and ("Intel(R) Math Kernel Library" in show or "oneAPI Math Kernel Library" in show)
    lib = ""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    base = os.path.basename(parts[5])
                    if base.startswith(("libblas.so", "libopenblas", "libmkl_rt", "libblis", "libsatlas", "libtatlas")):
                        lib = os.path.realpath(parts[5])
                        if base.startswith("libblas.so"):
                            break
    except OSError:
        pass
    info["library"] = lib
    name = info.get("blasInfo", "unknown")
    if info["mkl"] or "mkl" in lib:
        name = "mkl"
    elif "openblas-openmp" in lib:
        name = "openblas-openmp"
    elif "openblas-pthread" in lib:
        name = "openblas-pthread"
    elif "openblas-serial" in lib:
        name = "openblas-serial"
    elif "openblas" in lib:
        name = "openblas"
    elif "blis" in lib:
        name = "blis"
    elif "atlas" in lib:
        name = "atlas"
    elif lib.endswith("/blas/libblas.so.3") or "/blas/" in lib:
        name = "reference"
    info["backend"] = name
    return info


_BLAS = None


def env_info(device=None):
    global _BLAS
    if _BLAS is None:
        _BLAS = blas_info()
    out = {
        "protocol": PROTOCOL,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "cuda": bool(torch.cuda.is_available()),
        "blas": _BLAS,
    }
    if torch.cuda.is_available():
        out["cudaDevice"] = torch.cuda.get_device_name(0)
        out["cudaVersion"] = torch.version.cuda
    if device is not None:
        out["device"] = str(device)
    return out


def pick_device(name):
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RequestError("device %s requested but torch.cuda.is_available() is false" % name)
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise RequestError("device %r (want auto, cpu or cuda[:i])" % name)


def set_threads(n):
    if n and n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def default_threads():
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    env = os.environ.get("HYPERSPACE_TORCH_THREADS")
    if env:
        n = int(env)
    return max(1, n)


_SHARDS = {}


def load_tokens(path, device):
    """A uint8 token file as a device tensor (cached by path, size, mtime)."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, str(device))
    t = _SHARDS.get(key)
    if t is None:
        with open(path, "rb") as f:
            data = f.read()
        t = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device) if data else torch.zeros(0, dtype=torch.uint8, device=device)
        if len(_SHARDS) >= 8:
            _SHARDS.pop(next(iter(_SHARDS)))
        _SHARDS[key] = t
    return t


def need(req, key):
    if key not in req:
        raise RequestError("request has no %r" % key)
    return req[key]


# ---------------------------------------------------------------- operations

def op_train(req, emit):
    h = Hyper(need(req, "config"), need(req, "vocabSize"))
    device = pick_device(req.get("device"))
    set_threads(int(req.get("threads") or 0))
    in_path, out_path = need(req, "input"), need(req, "output")
    hdr, vecs = read_tensor_file(in_path)
    check_layout(h, hdr, in_path)
    for s in ("params", "m", "v"):
        if s not in vecs:
            raise RequestError("%s: no section %r" % (in_path, s))
    step0 = int((hdr.get("meta") or {}).get("step", 0))
    offsets = need(req, "offsets")
    n = len(offsets)
    total = int(need(req, "totalSteps"))
    if total < step0 + n:
        raise RequestError("%d steps from step %d exceed the schedule of %d steps" % (n, step0, total))
    shard = load_tokens(need(req, "shard"), device)
    T, B = h.ctx, h.batch
    if shard.numel() < T + 2:
        raise RequestError("shard (%d chars) shorter than contextLength+2" % shard.numel())
    offs = torch.tensor(offsets, dtype=torch.int64) if n else torch.zeros(0, B, dtype=torch.int64)
    if offs.dim() != 2 or offs.shape[1] != B:
        raise RequestError("offsets: want %d lists of batchSize=%d offsets, got shape %s" % (n, B, list(offs.shape)))
    if n and (int(offs.min()) < 0 or int(offs.max()) > shard.numel() - T - 1):
        raise RequestError("offsets out of range 0..%d" % (shard.numel() - T - 1))
    offs = offs.to(device)
    ar = torch.arange(T + 1, device=device)

    model = Model(h, device, vecs["params"], vecs["m"], vecs["v"])
    flat, g, m, v = model.flat, model.gflat, model.m, model.v
    wd_mask = model.decay_mask * float(h.wd)
    grad_views = {name: t.grad for name, t in model.p.items()}
    lrs = [h.lr_at(step0 + i, total) for i in range(n)]
    budget = float(req.get("budgetSeconds") or 0)
    progress = bool(req.get("progress"))
    losses = []
    done = 0
    truncated = False
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    last = start
    for i in range(n):
        win = shard[offs[i].unsqueeze(1) + ar].long()  # B x (T+1)
        tokens, targets = win[:, :T], win[:, 1:]
        g.zero_()
        loss = F.cross_entropy(model.logits(tokens), targets.reshape(-1))
        loss.backward()
        if i == 0:
            # The gradient must have been accumulated into the flat buffer.
            for name, t in model.p.items():
                if t.grad is None or t.grad.data_ptr() != grad_views[name].data_ptr():
                    raise RuntimeError("gradient of %s was not accumulated in place" % name)
        with torch.no_grad():
            if h.clip > 0:
                gn = torch.linalg.vector_norm(g, dtype=torch.float64)
                g.mul_(torch.clamp(h.clip / gn, max=1.0).to(torch.float32))
            t = step0 + i + 1
            c1 = 1 - BETA1 ** t
            c2 = 1 - BETA2 ** t
            m.mul_(BETA1).add_(g, alpha=1 - BETA1)
            v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
            upd = (m / c1).div_((v / c2).sqrt_().add_(ADAM_EPS))
            upd.addcmul_(wd_mask, flat)
            flat.add_(upd, alpha=-lrs[i])
        losses.append(loss.detach())
        done = i + 1
        now = time.perf_counter()
        if progress and (now - last >= 0.25 or done == n):
            last = now
            emit({"progress": {"done": done, "loss": float(loss)}})
        if budget > 0 and now - start > budget and done < n:
            truncated = True
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    loss_vals = [float(x) for x in torch.stack(losses).cpu()] if losses else []
    for k, (name, arr) in enumerate((("params", flat), ("m", m), ("v", v))):
        if not bool(torch.isfinite(arr).all()):
            bad = next((j for j, x in enumerate(loss_vals) if not math.isfinite(x)), None)
            at = " (first non-finite loss at step %d)" % (step0 + bad + 1) if bad is not None else ""
            raise RequestError("training diverged: non-finite %s after step %d%s" % (name, step0 + done, at))
    write_tensor_file(out_path, hdr.get("kind") or "ml-state", h.layout_json(), {"step": step0 + done},
                      [("params", flat), ("m", m), ("v", v)])
    res = env_info(device)
    res.update({
        "steps": done,
        "step": step0 + done,
        "losses": loss_vals,
        "lrs": lrs[:done],
        "tokens": done * B * T,
        "seconds": seconds,
        "truncated": truncated,
    })
    return res


def eval_windows(n_split, T):
    """ml.evalLoss's windows: (offset, length) pairs."""
    seg = min(EVAL_SEG_LEN, n_split // EVAL_SEGMENTS)
    if seg < 2:
        raise RequestError("split too short to evaluate (%d chars)" % n_split)
    wins = []
    for k in range(EVAL_SEGMENTS):
        s0 = k * (n_split - seg) // (EVAL_SEGMENTS - 1)
        for st in range(0, seg - 1, T):
            wins.append((s0 + st, min(T, seg - 1 - st)))
    return wins


def op_eval(req, emit):
    h = Hyper(need(req, "config"), need(req, "vocabSize"))
    device = pick_device(req.get("device"))
    set_threads(int(req.get("threads") or 0))
    path = need(req, "params")
    hdr, vecs = read_tensor_file(path)
    check_layout(h, hdr, path)
    if "params" not in vecs:
        raise RequestError("%s: no section 'params'" % path)
    split = load_tokens(need(req, "split"), device).cpu()
    T = h.ctx
    wins = eval_windows(split.numel(), T)
    model = Model(h, device, vecs["params"])
    for t in model.p.values():
        t.requires_grad_(False)
    data = split.numpy()
    tokens = np.zeros((len(wins), T), dtype=np.int64)
    targets = np.full((len(wins), T), -1, dtype=np.int64)
    for j, (off, n) in enumerate(wins):
        tokens[j, :n] = data[off:off + n]
        targets[j, :n] = data[off + 1:off + n + 1]
    tokens = torch.from_numpy(tokens).to(device)
    targets = torch.from_numpy(targets).to(device)
    bs = max(h.batch, 64)
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    start = time.perf_counter()
    with torch.no_grad():
        for j in range(0, len(wins), bs):
            lg = model.logits(tokens[j:j + bs]).double()
            tg = targets[j:j + bs].reshape(-1)
            total += F.cross_entropy(lg, tg, ignore_index=-1, reduction="sum")
            count += int((tg >= 0).sum())
    loss = float(total) / count
    res = env_info(device)
    res.update({"loss": loss, "count": count, "windows": len(wins), "seconds": time.perf_counter() - start})
    return res


def op_echo(req, emit):
    device = pick_device(req.get("device"))
    in_path, out_path = need(req, "input"), need(req, "output")
    hdr, vecs = read_tensor_file(in_path)
    order = [s["name"] for s in hdr.get("sections") or []]
    ts = [(name, torch.from_numpy(np.array(vecs[name])).to(device)) for name in order]
    write_tensor_file(out_path, hdr.get("kind") or "", hdr.get("layout"), hdr.get("meta"), ts)
    res = env_info(device)
    res["sections"] = {name: int(t.numel()) for name, t in ts}
    return res


def op_info(req, emit):
    return env_info(pick_device(req.get("device")))


def op_sleep(req, emit):
    time.sleep(float(req.get("seconds", 1)))
    return {}


def op_crash(req, emit):
    sys.stderr.write("hs_torch: crash requested\n")
    sys.stderr.flush()
    os._exit(int(req.get("code", 3)))


OPS = {"train": op_train, "eval": op_eval, "echo": op_echo, "info": op_info, "sleep": op_sleep, "crash": op_crash}


def handle(req, emit):
    """Serves one request; returns the response dict (never raises)."""
    rid = req.get("id") if isinstance(req, dict) else None
    try:
        if not isinstance(req, dict):
            raise RequestError("request is not a JSON object")
        op = req.get("op")
        if op not in OPS:
            raise RequestError("unknown op %r (want one of %s)" % (op, ", ".join(sorted(OPS))))

        def emit_id(msg):
            msg["id"] = rid
            emit(msg)
        res = OPS[op](req, emit_id)
        res["ok"] = True
    except Exception as e:  # noqa: BLE001 - every error goes back to Go
        res = {"ok": False, "error": "%s: %s" % (type(e).__name__, e), "traceback": traceback.format_exc()}
    res["id"] = rid
    return res


def setup():
    set_threads(default_threads())
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
    except TypeError:  # torch < 1.11
        torch.use_deterministic_algorithms(True)
    if hasattr(torch.backends, "cudnn"):
        torch.backends.cudnn.benchmark = False
    if hasattr(torch.backends, "cuda") and hasattr(torch.backends.cuda, "matmul"):
        torch.backends.cuda.matmul.allow_tf32 = False
    if hasattr(torch.backends, "cudnn"):
        torch.backends.cudnn.allow_tf32 = False


def serve():
    # The protocol owns the real stdout; anything else printed (by Python
    # or C code) goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(msg):
        proto.write(json.dumps(msg, separators=(",", ":")) + "\n")
        proto.flush()
    hello = env_info()
    hello["hello"] = True
    hello["pid"] = os.getpid()
    emit(hello)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except ValueError as e:
            emit({"ok": False, "id": None, "error": "bad request: %s" % e, "traceback": ""})
            continue
        emit(handle(req, emit))


def main(argv):
    setup()
    mode = argv[1] if len(argv) > 1 else "serve"
    if mode == "serve":
        serve()
        return 0
    if mode == "info":
        print(json.dumps(env_info(pick_device("auto")), indent=2))
        return 0
    if mode == "run":
        src = argv[2] if len(argv) > 2 else "-"
        text = sys.stdin.read() if src == "-" else open(src).read()
        try:
            req = json.loads(text)
        except ValueError as e:
            print(json.dumps({"ok": False, "error": "bad request: %s" % e}))
            return 1
        res = handle(req, lambda msg: sys.stderr.write(json.dumps(msg) + "\n"))
        print(json.dumps(res))
        return 0 if res.get("ok") else 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
