#!/usr/bin/python3
"""PyTorch CPU reference of the triage benchmark (.ci/bench-triage.sh).

Run with Debian's python3 (torch 1.13), from the repository root, after
triage/bench/triagebench has written WORK:

    /usr/bin/python3 triage/bench/bench_triage.py WORK [--reps N] [--threads T]

For each model of WORK/manifest.json it builds the network from
triage/train/train.py's classes (the architecture the model was trained
with, by the model's file stem), loads its state_dict (the manifest's
"pt": triage/models/STEM.pt, written by train.py beside STEM.onnx), and in
eval mode, without autograd, runs it on the manifest's input tensor (the
network input triage computed for the study). It prints one JSON object
per model:

    {"name": ..., "ms": [...], "max_abs_diff": ..., "max_abs_out": ...}

ms are --reps forward runs after one warm-up, on --threads threads;
max_abs_diff compares PyTorch's raw output with radtriage's single forward
run (the manifest's "output_file"), a parity check of the trained models;
max_abs_out is the largest |output| (PyTorch's), to put it in scale. The
output is also written to WORK/STEM.torch.f32. A missing .pt file is an
error naming it.

For development without trained models:

    /usr/bin/python3 triage/bench/bench_triage.py --standin CARDS OUT

writes randomly initialised networks (seeded) as OUT/STEM.pt and
OUT/STEM.onnx (exported as train.py exports) with the cards of CARDS
copied and their onnx_sha256 updated, a folder for triagebench -models.
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "..", "train", "train.py")


def load_train():
    spec = importlib.util.spec_from_file_location("radtriage_train", TRAIN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def builders(tr):
    """The networks by file stem, from train.py's MODELS table (stem ->
    (constructor, seed, architecture))."""
    return {stem: v[0] for stem, v in tr.MODELS.items()}


def read_f32(path, shape):
    x = np.fromfile(path, dtype="<f4")
    n = int(np.prod(shape))
    if x.size != n:
        raise SystemExit(f"bench_triage.py: {path}: {x.size} float32 values, want {n} (shape {shape})")
    return x.reshape(shape)


def bench(work, reps, threads):
    torch.set_num_threads(threads)
    tr = load_train()
    make = builders(tr)
    with open(os.path.join(work, "manifest.json")) as f:
        models = json.load(f)
    missing = [m["pt"] for m in models if not os.path.exists(m["pt"])]
    if missing:
        raise SystemExit("bench_triage.py: missing PyTorch state_dict " + ", ".join(missing) +
                         " (triage/train/train.py writes NAME.pt beside NAME.onnx; run `make models`)")
    for m in models:
        if m["stem"] not in make:
            raise SystemExit(f"bench_triage.py: model {m['name']}: no architecture for {m['stem']} "
                             f"(known: {', '.join(make)})")
        net = make[m["stem"]]()
        state = torch.load(m["pt"], map_location="cpu")
        net.load_state_dict(state)  # strict: every weight of the architecture, no other
        net.eval()
        x = torch.from_numpy(read_f32(m["input_file"], m["input_shape"]).copy())
        ref = read_f32(m["output_file"], m["output_shape"])
        with torch.no_grad():
            y = net(x).numpy()  # warm-up
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                net(x)
                ts.append((time.perf_counter() - t0) * 1e3)
        if list(y.shape) != list(m["output_shape"]):
            raise SystemExit(f"bench_triage.py: model {m['name']}: PyTorch output shape {list(y.shape)}, "
                             f"radtriage's {m['output_shape']}")
        y.astype("<f4").tofile(os.path.join(work, m["stem"] + ".torch.f32"))
        print(json.dumps({
            "name": m["name"], "ms": ts, "median_ms": statistics.median(ts),
            "max_abs_diff": float(np.abs(y - ref).max()), "max_abs_out": float(np.abs(y).max()),
        }), flush=True)


def standin(cards, out):
    """Randomly initialised stand-ins for the trained models (development)."""
    import hashlib
    tr = load_train()
    make = builders(tr)
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(cards)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(cards, name)) as f:
            card = json.load(f)
        stem = card["file"][:-len(".onnx")]
        if stem not in make:
            raise SystemExit(f"bench_triage.py: {name}: no architecture for {stem} (known: {', '.join(make)})")
        torch.manual_seed(len(stem))
        net = make[stem]()
        net.eval()
        if any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in net.modules()):
            # Non-trivial running statistics, so that the parity check sees them.
            g = torch.Generator().manual_seed(1)
            for mod in net.modules():
                if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                    mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
                    mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
        torch.save(net.state_dict(), os.path.join(out, stem + ".pt"))
        tr.export(net, os.path.join(out, stem + ".onnx"), 0)
        with open(os.path.join(out, stem + ".onnx"), "rb") as f:
            card["training"]["onnx_sha256"] = hashlib.sha256(f.read()).hexdigest()
        with open(os.path.join(out, name), "w") as f:
            json.dump(card, f, indent=2)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", nargs="+", help="WORK (or CARDS OUT with --standin)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--standin", action="store_true", help="write random-init stand-in models (development)")
    a = ap.parse_args()
    if a.standin:
        if len(a.work) != 2:
            ap.error("--standin takes CARDS OUT")
        standin(*a.work)
        return 0
    if len(a.work) != 1 or a.reps < 1 or a.threads < 1:
        ap.error("one WORK folder, --reps >= 1, --threads >= 1")
    bench(a.work[0], a.reps, a.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
