#!/usr/bin/env bash
# Conv benchmark: the CPU backend's Conv3d/ConvTranspose3d on the layers of
# a small 3D U-Net at 96^3 (kernels/bench/layers.json) against PyTorch CPU
# and onnxruntime CPU (onnxruntime-node), all on 2 threads, in one run.
# Writes a Markdown table.
#
#   .ci/bench-kernels-conv.sh [out.md]
#
# The three run in turn, ROUNDS times (default 2), and each layer keeps
# its best round: the machine is shared and noisy, and the best of
# interleaved rounds is the fairest figure for all three.
#
# Environment: BENCHTIME (go -benchtime, default 5x), REPS (PyTorch and
# onnxruntime runs per layer, median, default 5), ROUNDS, PYTHON (default
# /usr/bin/python3, which needs torch and onnx export). kernels/bench/deps.sh
# installs the references (PyTorch, onnxruntime-node) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-kernels-conv.md}"
benchtime="${BENCHTIME:-5x}"
reps="${REPS:-5}"
rounds="${ROUNDS:-2}"
python="${PYTHON:-/usr/bin/python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

kernels/bench/deps.sh

echo "exporting the ONNX models..." >&2
"$python" kernels/bench/bench_conv.py --reps 1 --export "$work/onnx" >/dev/null 2>&1
go test -c -o "$work/kernels.test" ./kernels/
for r in $(seq "$rounds"); do
	echo "round $r: go benchmark..." >&2
	(cd kernels && GOMAXPROCS=2 "$work/kernels.test" -test.run '^$' -test.bench 'BenchmarkConvUNet|BenchmarkUNetNorm' -test.benchtime "$benchtime") | tee "$work/go.$r.txt" >&2
	echo "round $r: pytorch..." >&2
	"$python" kernels/bench/bench_conv.py --reps "$reps" --threads 2 2>/dev/null | tee "$work/torch.$r.jsonl" >&2
	echo "round $r: onnxruntime..." >&2
	node kernels/bench/bench_conv.mjs "$work/onnx" "$reps" | tee "$work/ort.$r.jsonl" >&2
done

"$python" - "$work" "$out" "$rounds" <<'PY'
import json, re, sys
work, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
layers = json.load(open("kernels/bench/layers.json"))["layers"]
go = {}
for r in range(1, rounds + 1):
    for line in open(f"{work}/go.{r}.txt"):
        m = re.match(r"BenchmarkConvUNet/(\S+?)-\d+\s+\d+\s+\S+ ns/op\s+(\S+) GFLOP/s\s+(\S+) ms/layer", line)
        if m and (m.group(1) not in go or float(m.group(3)) < go[m.group(1)][0]):
            go[m.group(1)] = (float(m.group(3)), float(m.group(2)))
def jl(prefix):
    best = {}
    for r in range(1, rounds + 1):
        for d in map(json.loads, open(f"{work}/{prefix}.{r}.jsonl")):
            best[d["name"]] = min(best.get(d["name"], float("inf")), d["ms"])
    return best
pt, ort = jl("torch"), jl("ort")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rows = ["# Conv benchmark: radtriage CPU backend vs onnxruntime and PyTorch (CPU, 2 threads)", "",
        f"CPU: {cpu}, batch 1, bias, no activation; ms per layer, the best of {rounds} interleaved rounds "
        "(radtriage: Go benchmark mean of a round; PyTorch and onnxruntime: median of a round). "
        "Ratios are time / time: below 1 means radtriage is faster.", "",
        "| layer | radtriage ms | GFLOP/s | onnxruntime ms | PyTorch ms | radtriage/ORT | radtriage/PyTorch |",
        "|---|---:|---:|---:|---:|---:|---:|"]
tot = [0.0, 0.0, 0.0]
for l in layers:
    n = l["name"]
    g, gf = go.get(n, (float("nan"), float("nan")))
    o, p = ort.get(n, float("nan")), pt.get(n, float("nan"))
    tot[0] += g; tot[1] += o; tot[2] += p
    rows.append(f"| {n} | {g:.1f} | {gf:.1f} | {o:.1f} | {p:.1f} | {g/o:.2f} | {g/p:.2f} |")
rows.append(f"| **total** | **{tot[0]:.1f}** | | **{tot[1]:.1f}** | **{tot[2]:.1f}** | **{tot[0]/tot[1]:.2f}** | **{tot[0]/tot[2]:.2f}** |")
norms = json.load(open("kernels/bench/layers.json")).get("norms", [])
gn = {}
for r in range(1, rounds + 1):
    for line in open(f"{work}/go.{r}.txt"):
        m = re.match(r"BenchmarkUNetNorm/(\S+?)-\d+\s+\d+\s+\S+ ns/op\s+\S+ MB/s\s+(\S+) ms/layer", line)
        if m:
            gn[m.group(1)] = min(gn.get(m.group(1), float("inf")), float(m.group(2)))
if norms:
    rows += ["", "InstanceNormalization (affine) + LeakyReLU(0.01) on the same U-Net's activations "
             "(radtriage fuses the activation; onnxruntime and PyTorch run the two operators):", "",
             "| layer | radtriage ms | onnxruntime ms | PyTorch ms | radtriage/ORT | radtriage/PyTorch |",
             "|---|---:|---:|---:|---:|---:|"]
    for l in norms:
        n = l["name"]
        g, o, p = gn.get(n, float("nan")), ort.get(n, float("nan")), pt.get(n, float("nan"))
        rows.append(f"| {n} | {g:.2f} | {o:.2f} | {p:.2f} | {g/o:.2f} | {g/p:.2f} |")
open(out, "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
