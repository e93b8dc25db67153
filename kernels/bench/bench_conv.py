"""PyTorch CPU reference of the conv benchmark (.ci/bench-kernels-conv.sh).

Times each layer of layers.json with torch.nn.functional.conv3d /
conv_transpose3d (and each of its "norms": InstanceNorm3d + LeakyReLU) on 2 threads (median of --reps runs after a warm-up) and
prints one JSON object per line: {"name": ..., "ms": ...}. With
--export DIR it also writes each layer as a single-node ONNX model
DIR/<name>.onnx for bench_conv.mjs (onnxruntime).

Run with Debian's interpreter: /usr/bin/python3 kernels/bench/bench_conv.py
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


class Layer(torch.nn.Module):
    def __init__(self, l):
        super().__init__()
        mod = torch.nn.ConvTranspose3d if l.get("transpose") else torch.nn.Conv3d
        self.conv = mod(l["cin"], l["cout"], l["k"], stride=l["stride"], padding=l["pad"], bias=True)

    def forward(self, x):
        return self.conv(x)


class Norm(torch.nn.Module):
    """InstanceNorm (affine) + LeakyReLU, the U-Net block's normalisation."""

    def __init__(self, l):
        super().__init__()
        self.norm = torch.nn.InstanceNorm3d(l["cin"], affine=True)
        self.act = torch.nn.LeakyReLU(0.01)

    def forward(self, x):
        return self.act(self.norm(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export", help="folder to write the ONNX models into")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(os.path.join(HERE, "layers.json")) as f:
        doc = json.load(f)
    for l in doc["layers"] + doc.get("norms", []):
        m = (Layer(l) if "cout" in l else Norm(l)).eval()
        x = torch.rand(1, l["cin"], l["in"], l["in"], l["in"])
        with torch.no_grad():
            if args.export:
                os.makedirs(args.export, exist_ok=True)
                torch.onnx.export(m, x, os.path.join(args.export, l["name"] + ".onnx"),
                                  input_names=["x"], output_names=["y"], opset_version=13)
            m(x)  # warm-up
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                m(x)
                times.append(time.perf_counter() - t0)
        print(json.dumps({"name": l["name"], "ms": statistics.median(times) * 1e3}), flush=True)


if __name__ == "__main__":
    main()
