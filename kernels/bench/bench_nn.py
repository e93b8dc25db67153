"""PyTorch CPU reference of the nn benchmarks (kernels/bench_nn_test.go).

Times the same operations on the same shapes as the Go benchmarks, with
torch on --threads threads (default 2; median of --reps runs after a
warm-up), and prints one JSON object per line: {"name": ..., "ms": ...},
names as the Go benchmarks'.

Run with Debian's interpreter: /usr/bin/python3 kernels/bench/bench_nn.py
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def cases():
    def inorm(c, side):
        x = torch.randn(1, c, side, side, side)
        w, b = torch.ones(c), torch.zeros(c)
        return x, lambda: F.leaky_relu(F.instance_norm(x, weight=w, bias=b, eps=1e-5), 0.01)

    def bnorm():
        x = torch.randn(1, 16, 96, 96, 96)
        m, v, w, b = torch.zeros(16), torch.ones(16), torch.ones(16), torch.zeros(16)
        return x, lambda: F.relu(F.batch_norm(x, m, v, w, b, training=False, eps=1e-5))

    def maxpool():
        x = torch.randn(1, 16, 96, 96, 96)
        return x, lambda: F.max_pool3d(x, 2, stride=2)

    def softmax():
        x = torch.randn(1, 2, 96, 96, 96)
        return x, lambda: torch.softmax(x, dim=1)

    def argmax():
        x = torch.randn(1, 2, 96, 96, 96)
        return x, lambda: torch.argmax(x, dim=1).to(torch.uint8)

    def resize(mode):
        x = torch.randn(1, 32, 48, 48, 48)
        if mode == "trilinear":
            return x, lambda: F.interpolate(x, scale_factor=2, mode=mode, align_corners=False)
        return x, lambda: F.interpolate(x, scale_factor=2, mode=mode)

    def concat():
        a, b = torch.randn(1, 16, 96, 96, 96), torch.randn(1, 16, 96, 96, 96)
        return a, lambda: torch.cat([a, b], dim=1)

    return [
        ("InstanceNormLeaky16x96", lambda: inorm(16, 96)),
        ("InstanceNormLeaky32x48", lambda: inorm(32, 48)),
        ("BatchNormReLU16x96", bnorm),
        ("MaxPool2x16x96", maxpool),
        ("Softmax2x96", softmax),
        ("Argmax2x96", argmax),
        ("ResizeLinearX2_32x48", lambda: resize("trilinear")),
        ("ResizeNearestX2_32x48", lambda: resize("nearest")),
        ("Concat16x96", concat),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", help="run only the cases whose name contains this")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, make in cases():
            if args.only and args.only not in name:
                continue
            _, run = make()
            run()  # warm-up
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            print(json.dumps({"name": name, "ms": round(statistics.median(times) * 1e3, 3)}), flush=True)


if __name__ == "__main__":
    main()
