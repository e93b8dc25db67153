#!/usr/bin/env bash
# Model-inference benchmark (issue 6): triage's executor on kernels.CPU()
# against onnxruntime CPU (onnxruntime-node) and PyTorch CPU, all on 2
# threads, in one run, on the same ONNX models and the same input tensor.
# The models are two demonstration-sized networks that
# triage/bench/make_bench_models.py builds and exports each run (a 3D
# U-Net and a small 3D ResNet classifier on the example card's
# 1x1x32x128x128 grid). Writes a Markdown table.
#
#   .ci/bench-triage-models.sh [out.md]
#
# The three run in turn, ROUNDS times (default 2), and each model keeps its
# best round (the machine is shared and noisy); a second table gives the
# fastest single run of each. Also checks that
# radtriage's outputs match onnxruntime's and PyTorch's (max abs diff; the
# script fails if radtriage and onnxruntime differ by more than TOL,
# default 1e-3).
#
# Environment: REPS (timed runs per model and round, median, default 5),
# ROUNDS, TOL, PYTHON (default /usr/bin/python3, which needs torch).
# kernels/bench/deps.sh installs the references (PyTorch, onnxruntime-node)
# when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-triage-models.md}"
reps="${REPS:-5}"
rounds="${ROUNDS:-2}"
tol="${TOL:-1e-3}"
python="${PYTHON:-/usr/bin/python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

kernels/bench/deps.sh

echo "exporting the ONNX models..." >&2
"$python" triage/bench/make_bench_models.py "$work/m" >/dev/null 2>&1
go build -o "$work/modelbench" ./triage/bench/modelbench
for r in $(seq "$rounds"); do
	echo "round $r: radtriage..." >&2
	GOMAXPROCS=2 "$work/modelbench" -reps "$reps" -profile "$work/m" | tee "$work/go.$r.jsonl" >&2
	echo "round $r: pytorch..." >&2
	"$python" triage/bench/make_bench_models.py "$work/t" --time --reps "$reps" --threads 2 2>/dev/null | tee "$work/torch.$r.jsonl" >&2
	echo "round $r: onnxruntime..." >&2
	node triage/bench/bench_models.mjs "$work/m" "$reps" | tee "$work/ort.$r.jsonl" >&2
done

"$python" - "$work" "$out" "$rounds" "$tol" <<'PY'
import json, sys
import numpy as np
work, out, rounds, tol = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
models = json.load(open(f"{work}/m/models.json"))
def jl(prefix):
    best, fastest, prof = {}, {}, {}
    for r in range(1, rounds + 1):
        for d in map(json.loads, open(f"{work}/{prefix}.{r}.jsonl")):
            if "ms" in d:
                best[d["name"]] = min(best.get(d["name"], float("inf")), d["ms"])
                fastest[d["name"]] = min(fastest.get(d["name"], float("inf")), d["min_ms"])
            if "profile" in d:
                p = d["profile"]
                if d["name"] not in prof or sum(p.values()) < sum(prof[d["name"]].values()):
                    prof[d["name"]] = p
    return best, fastest, prof
(go, gomin, prof), (pt, ptmin, _), (ort, ortmin, _) = jl("go"), jl("torch"), jl("ort")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rows = ["# Model inference: radtriage vs onnxruntime and PyTorch (CPU, 2 threads)", "",
        f"CPU: {cpu}; input 1x1x32x128x128 (the example card's grid); ms per inference, the best of "
        f"{rounds} interleaved rounds, each the median of its runs after a warm-up. Ratios are time / time: "
        "below 1 means radtriage is faster; the target is radtriage/ORT <= 1.5.", "",
        "| model | radtriage ms | onnxruntime ms | PyTorch ms | radtriage/ORT | radtriage/PyTorch |",
        "|---|---:|---:|---:|---:|---:|"]
for m in models:
    n = m["name"]
    g, o, p = go.get(n, float("nan")), ort.get(n, float("nan")), pt.get(n, float("nan"))
    rows.append(f"| {n} | {g:.1f} | {o:.1f} | {p:.1f} | {g/o:.2f} | {g/p:.2f} |")
rows += ["", "The fastest single run of all rounds (less sensitive to other load on a shared machine):", "",
         "| model | radtriage ms | onnxruntime ms | PyTorch ms | radtriage/ORT | radtriage/PyTorch |",
         "|---|---:|---:|---:|---:|---:|"]
for m in models:
    n = m["name"]
    g, o, p = gomin.get(n, float("nan")), ortmin.get(n, float("nan")), ptmin.get(n, float("nan"))
    rows.append(f"| {n} | {g:.1f} | {o:.1f} | {p:.1f} | {g/o:.2f} | {g/p:.2f} |")
rows += ["", "Outputs on the same input (max abs diff):", "",
         "| model | output | radtriage vs ORT | radtriage vs PyTorch | ORT vs PyTorch |", "|---|---|---:|---:|---:|"]
bad = []
for m in models:
    n = m["name"]
    y = {k: np.fromfile(f"{work}/m/{n}.{k}.f32", dtype="<f4") for k in ("radtriage", "ort", "torch")}
    d = lambda a, b: float(np.abs(y[a] - y[b]).max()) if y[a].shape == y[b].shape else float("inf")
    rows.append(f"| {n} | {'x'.join(map(str, m['output']))} | {d('radtriage', 'ort'):.2e} | "
                f"{d('radtriage', 'torch'):.2e} | {d('ort', 'torch'):.2e} |")
    if not d("radtriage", "ort") <= tol:
        bad.append(f"{n}: radtriage and onnxruntime outputs differ by {d('radtriage', 'ort')}, more than {tol}")
for m in models:
    n = m["name"]
    if n not in prof:
        continue
    p = prof[n]
    tot = sum(p.values())
    rows += ["", f"radtriage per operator type, {n} (one profiled run, the backend synced after each step; "
             f"sum {tot:.1f} ms):", "", "| operator | ms | share |", "|---|---:|---:|"]
    for op, ms in sorted(p.items(), key=lambda kv: -kv[1]):
        rows.append(f"| {op} | {ms:.1f} | {100 * ms / tot:.0f}% |")
open(out, "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
PY
