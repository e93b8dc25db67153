#!/usr/bin/python3
"""Exports the two demonstration networks of the model-inference benchmark
(.ci/bench-triage-models.sh) and optionally times them with PyTorch CPU.

Run with Debian's python3 (torch 1.13):

    /usr/bin/python3 make_bench_models.py DIR [--time] [--reps N] [--threads T]

Writes into DIR (not committed; the benchmark makes them each run):
  unet3d.onnx, resnet3d.onnx  torch.onnx.export, opset 13, eval mode, seed 0
  x.f32                       the shared 1x1x32x128x128 input, raw
                              little-endian float32 (a fixed random pattern)
  NAME.torch.f32              PyTorch's output for x.f32
  models.json                 the models with their input and output shapes
With --time, prints one JSON object per model: {"name": ..., "ms": ...,
"min_ms": ...}, the median and the fastest of --reps runs after one
warm-up, on --threads threads.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn as nn

SHAPE = (1, 1, 32, 128, 128)  # the example card's network grid (D, H, W)


def block(cin, cout):
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.01),
        nn.Conv3d(cout, cout, 3, padding=1), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.01))


class UNet3D(nn.Module):
    """3-level 3D U-Net, 16-32-64 channels: InstanceNorm + LeakyReLU,
    max-pool down, ConvTranspose up, Concat skips, 2-class softmax head."""

    def __init__(self, c=(16, 32, 64)):
        super().__init__()
        self.e1, self.e2, self.bott = block(1, c[0]), block(c[0], c[1]), block(c[1], c[2])
        self.pool = nn.MaxPool3d(2)
        self.u2 = nn.ConvTranspose3d(c[2], c[1], 2, stride=2)
        self.d2 = block(2 * c[1], c[1])
        self.u1 = nn.ConvTranspose3d(c[1], c[0], 2, stride=2)
        self.d1 = block(2 * c[0], c[0])
        self.head = nn.Conv3d(c[0], 2, 1)

    def forward(self, x):
        s1 = self.e1(x)
        s2 = self.e2(self.pool(s1))
        b = self.bott(self.pool(s2))
        y = self.d2(torch.cat([s2, self.u2(b)], dim=1))
        y = self.d1(torch.cat([s1, self.u1(y)], dim=1))
        return torch.softmax(self.head(y), dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.b1 = nn.BatchNorm3d(cout)
        self.c2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm3d(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        s = x if self.skip is None else self.skip(x)
        return torch.relu(y + s)


class ResNet3D(nn.Module):
    """Small 3D ResNet-like classifier: strided stem, three residual stages
    (16-32-64 channels, strides 1-2-2), BatchNorm + ReLU,
    GlobalAveragePool, Linear to 3 classes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(1, 16, 3, stride=(1, 2, 2), padding=1, bias=False),
                                  nn.BatchNorm3d(16), nn.ReLU())
        self.s1, self.s2, self.s3 = ResBlock(16, 16, 1), ResBlock(16, 32, 2), ResBlock(32, 64, 2)
        self.gap = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(64, 3)

    def forward(self, x):
        y = self.s3(self.s2(self.s1(self.stem(x))))
        return self.fc(torch.flatten(self.gap(y), 1))


def randomize_norms(m):
    """Non-trivial running statistics and affine parameters, so that the
    normalizations matter for the output comparison."""
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm3d, nn.InstanceNorm3d)) and mod.affine:
            c = mod.num_features
            mod.weight.data.copy_(torch.rand(c) + 0.5)
            mod.bias.data.copy_(torch.randn(c) * 0.2)
        if isinstance(mod, nn.BatchNorm3d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c) * 0.2)
            mod.running_var.copy_(torch.rand(c) + 0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.dir, exist_ok=True)

    torch.manual_seed(0)
    nets = {"unet3d": UNet3D(), "resnet3d": ResNet3D()}
    x = torch.rand(SHAPE) * 2 - 1
    x.numpy().astype("<f4").tofile(os.path.join(args.dir, "x.f32"))
    meta = []
    for name, net in nets.items():
        randomize_norms(net)
        net.eval()
        with torch.no_grad():
            y = net(x)
            torch.onnx.export(net, x, os.path.join(args.dir, name + ".onnx"), opset_version=13,
                              input_names=["x"], output_names=["y"], do_constant_folding=True)
            y.numpy().astype("<f4").tofile(os.path.join(args.dir, name + ".torch.f32"))
            meta.append({"name": name, "input": list(SHAPE), "output": list(y.shape)})
            if args.time:
                net(x)  # warm-up
                ts = []
                for _ in range(args.reps):
                    t0 = time.perf_counter()
                    net(x)
                    ts.append((time.perf_counter() - t0) * 1e3)
                print(json.dumps({"name": name, "ms": statistics.median(ts), "min_ms": min(ts)}), flush=True)
    with open(os.path.join(args.dir, "models.json"), "w") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    main()
