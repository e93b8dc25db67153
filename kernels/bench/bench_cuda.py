#!/usr/bin/env python3
"""PyTorch + cuDNN reference for the GPU benchmarks of kernels/bench_cuda_test.go.

Times the conv layers of layers.json (a small 3D U-Net at 96^3, batch 1,
bias, no activation) with torch.nn.functional.conv3d / conv_transpose3d on
the GPU, cudnn.benchmark=True (cuDNN picks its fastest algorithm per shape),
timed with CUDA events after warm-up, and reports GFLOP/s with the same flop
count as BenchmarkCUDAConvUNet (2 per multiply-add of the layer, padding not
excluded). Also times a device-to-device copy and a few element-wise
operations on 2^25 float32 for the bandwidth comparison.

TF32: PyTorch lets cuDNN use TF32 tensor cores for convolutions by default
(torch.backends.cudnn.allow_tf32 = True); the radtriage kernels are plain
FP32. Both are reported: --tf32 on (default) and off.

Run on the GPU machine (kernels/bench/GPU.md):
    python3 bench_cuda.py [--layers layers.json] [--reps 50]
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F


def time_ms(fn, reps):
    """Mean milliseconds of fn over reps calls, by CUDA events."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def conv_layers(path, reps, tf32):
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    with open(path) as f:
        layers = json.load(f)["layers"]
    gen = torch.Generator(device="cuda").manual_seed(1)
    rows = []
    for l in layers:
        cin, cout, n, k = l["cin"], l["cout"], l["in"], l["k"]
        s, p, tr = l["stride"], l["pad"], l.get("transpose", False)
        x = torch.randn(1, cin, n, n, n, device="cuda", generator=gen)
        if tr:
            w = torch.randn(cin, cout, k, k, k, device="cuda", generator=gen) * 0.1
        else:
            w = torch.randn(cout, cin, k, k, k, device="cuda", generator=gen) * 0.1
        b = torch.randn(cout, device="cuda", generator=gen) * 0.1
        if tr:
            fn = lambda: F.conv_transpose3d(x, w, b, stride=s, padding=p)
        else:
            fn = lambda: F.conv3d(x, w, b, stride=s, padding=p)
        with torch.no_grad():
            out = fn()
            ms = time_ms(fn, reps)
        out_vox = out.shape[2] * out.shape[3] * out.shape[4]
        wlen = cin * cout * k * k * k
        macs = wlen * (n * n * n if tr else out_vox)
        rows.append((l["name"], ms, 2 * macs / (ms * 1e-3) / 1e9))
    return rows


def bandwidth(reps):
    n = 1 << 25
    x = torch.rand(n, device="cuda") * 2 - 1
    y = torch.empty_like(x)
    z = torch.empty_like(x)
    cases = [
        ("Copy", 8 * n, lambda: y.copy_(x)),
        ("ActivateReLU", 8 * n, lambda: torch.clamp(x, min=0, out=y)),
        ("ActivateSigmoid", 8 * n, lambda: torch.sigmoid(x, out=y)),
        ("BinaryAdd", 12 * n, lambda: torch.add(x, y, out=z)),
        ("Softmax2", 8 * n, lambda: torch.softmax(x.view(1, 2, -1), dim=1)),
        ("InstanceNorm32", 8 * n, lambda: F.instance_norm(x.view(1, 32, -1))),
    ]
    rows = []
    with torch.no_grad():
        for name, nbytes, fn in cases:
            ms = time_ms(fn, reps)
            rows.append((name, ms, nbytes / (ms * 1e-3) / 1e9))
    return rows


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default=os.path.join(here, "layers.json"))
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    for tf32 in (True, False):
        print(f"\n## conv layers, cuDNN, TF32 {'on' if tf32 else 'off'}\n")
        print("| layer | ms | GFLOP/s |\n|---|---:|---:|")
        for name, ms, gf in conv_layers(args.layers, args.reps, tf32):
            print(f"| {name} | {ms:.3f} | {gf:.0f} |")
    print("\n## bandwidth, 2^25 float32 (GB/s: bytes read + written once)\n")
    print("| op | ms | GB/s |\n|---|---:|---:|")
    for name, ms, gbs in bandwidth(args.reps):
        print(f"| {name} | {ms:.3f} | {gbs:.0f} |")


if __name__ == "__main__":
    main()
