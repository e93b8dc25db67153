"""PyTorch references of the nn operations (kernels/testdata/golden/nn).

Run with Debian's interpreter, which has python3-torch:
    /usr/bin/python3 kernels/testdata/golden_nn.py

The Go side (conformance_nn_test.go, confNN) maps each case to a Backend
call. Parameters name ONNX attributes; tensors hold inputs and the
expected output y.
"""
import torch
import torch.nn.functional as F

from golden_common import save, seeded

GROUP = "nn"


def rand(g, *shape, scale=1.0, offset=0.0):
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(torch.float32) * scale + offset


def act(y, kind, alpha):
    if kind == "relu":
        return F.relu(y)
    if kind == "leaky_relu":
        return F.leaky_relu(y, alpha)
    if kind == "sigmoid":
        return torch.sigmoid(y)
    return y


def pools(g):
    # name, kind, input shape, kernel, stride, dilation, pad, ceil, count_include_pad
    cases = [
        ("max_k2s2", "max", (2, 3, 6, 8, 4), 2, 2, 1, 0, False, False),
        ("max_k3s2p1", "max", (2, 3, 7, 9, 8), 3, 2, 1, 1, False, False),
        ("max_k3s2p1_ceil", "max", (2, 3, 7, 9, 8), 3, 2, 1, 1, True, False),
        ("max_k2s2_ceil_odd", "max", (1, 2, 5, 7, 9), 2, 2, 1, 0, True, False),
        ("max_k3s1d2p1", "max", (1, 2, 7, 6, 9), 3, 1, 2, 1, False, False),
        ("max_mixed_ceil", "max", (2, 2, 7, 8, 9), (2, 3, 2), (1, 2, 2), (2, 1, 1), (0, 1, 1), True, False),
        ("max_k3s3_ceil", "max", (1, 3, 8, 7, 10), 3, 3, 1, 1, True, False),
        ("avg_k2s2", "avg", (2, 3, 6, 8, 4), 2, 2, 1, 0, False, False),
        ("avg_k3s2p1_excl", "avg", (2, 3, 7, 9, 8), 3, 2, 1, 1, False, False),
        ("avg_k3s2p1_incl", "avg", (2, 3, 7, 9, 8), 3, 2, 1, 1, False, True),
        ("avg_k3s2p1_ceil_excl", "avg", (1, 3, 7, 9, 6), 3, 2, 1, 1, True, False),
        ("avg_k3s2p1_ceil_incl", "avg", (1, 3, 7, 9, 6), 3, 2, 1, 1, True, True),
        ("avg_k2s2_ceil_odd_incl", "avg", (1, 2, 5, 7, 9), 2, 2, 1, 0, True, True),
        ("avg_mixed_ceil_incl", "avg", (2, 2, 7, 8, 9), (3, 2, 3), (2, 1, 3), 1, (1, 0, 1), True, True),
        ("avg_mixed_ceil_excl", "avg", (2, 2, 7, 8, 9), (3, 2, 3), (2, 1, 3), 1, (1, 0, 1), True, False),
    ]
    for name, kind, shape, k, s, d, p, ceil, cip in cases:
        x = rand(g, *shape)
        if kind == "max":
            y = F.max_pool3d(x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
        else:
            y = F.avg_pool3d(x, k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip)
        three = lambda v: list(v) if isinstance(v, tuple) else [v] * 3
        save(GROUP, "pool_" + name, "pool",
             {"kind": kind, "kernel": three(k), "stride": three(s), "dilation": three(d),
              "pad_begin": three(p), "pad_end": three(p), "ceil_mode": ceil,
              "count_include_pad": cip},
             {"x": x, "y": y})


def norms(g):
    x = rand(g, 2, 3, 5, 7, 6)
    save(GROUP, "global_avg_pool", "global_avg_pool", {},
         {"x": x, "y": F.adaptive_avg_pool3d(x, 1)})
    # name, act, alpha, input scale and offset (a large offset checks the
    # variance is not E[x^2]-E[x]^2 in float32)
    for name, kind, alpha, sc, off in [
        ("leaky", "leaky_relu", 0.01, 1.0, 0.0),
        ("none_offset", "none", 0.0, 3.0, 1000.0),
        ("relu", "relu", 0.0, 2.0, -1.0),
        ("sigmoid", "sigmoid", 0.0, 1.0, 0.5),
        ("leaky02", "leaky_relu", 0.2, 0.01, 5.0),
    ]:
        x = rand(g, 2, 3, 5, 7, 6, scale=sc, offset=off)
        w, b = rand(g, 3), rand(g, 3)
        y = act(F.instance_norm(x.double(), weight=w.double(), bias=b.double(), eps=1e-5), kind, alpha)
        save(GROUP, "instance_norm_" + name, "instance_norm",
             {"eps": 1e-5, "act": kind, "alpha": alpha},
             {"x": x, "scale": w, "bias": b, "y": y})
    for name, kind, alpha, eps in [("none", "none", 0.0, 1e-5), ("relu", "relu", 0.0, 1e-3),
                                   ("leaky", "leaky_relu", 0.1, 1e-5)]:
        x = rand(g, 2, 4, 3, 5, 7, scale=2.0, offset=0.5)
        w, b, m = rand(g, 4), rand(g, 4), rand(g, 4)
        v = torch.rand(4, generator=g) * 2 + 0.1
        y = act(F.batch_norm(x.double(), m.double(), v.double(), w.double(), b.double(),
                             training=False, eps=eps), kind, alpha)
        save(GROUP, "batch_norm_" + name, "batch_norm",
             {"eps": eps, "act": kind, "alpha": alpha},
             {"x": x, "scale": w, "bias": b, "mean": m, "var": v, "y": y})


def misc(g):
    # Large logits: a softmax that does not subtract the max overflows.
    x = rand(g, 2, 3, 4, 5, 6, scale=40.0)
    save(GROUP, "softmax", "softmax", {}, {"x": x, "y": torch.softmax(x.double(), dim=1)})
    x = rand(g, 1, 5, 3, 4, 5)
    save(GROUP, "softmax_c5", "softmax", {}, {"x": x, "y": torch.softmax(x.double(), dim=1)})
    xs = [rand(g, 2, c, 3, 4, 5) for c in (1, 3, 2)]
    save(GROUP, "concat", "concat", {}, {"x0": xs[0], "x1": xs[1], "x2": xs[2],
                                         "y": torch.cat(xs, dim=1)})
    x = rand(g, 2, 3, 5, 7, 6, scale=10.0)
    save(GROUP, "reduce", "reduce", {"threshold": 2.5},
         {"x": x, "sum": x.double().sum().reshape(1), "max": x.max().reshape(1),
          "count": (x > 2.5).sum().reshape(1).double()})
    # Rounded values make ties: argmax takes the first.
    x = torch.round(rand(g, 2, 4, 3, 5, 6, scale=1.5))
    save(GROUP, "argmax", "argmax", {}, {"x": x, "y": torch.argmax(x, dim=1).double()})


def resizes(g):
    # PyTorch's 'nearest' is ONNX asymmetric + floor, 'nearest-exact'
    # half_pixel + round_prefer_ceil, trilinear align_corners=False
    # half_pixel (pytorch_half_pixel where no output length is 1) and
    # align_corners=True align_corners.
    # name, input shape, size or None, scale_factor or None, torch mode, align_corners, coord, nearest
    cases = [
        ("nearest_x2", (1, 2, 3, 4, 5), None, (2.0, 2.0, 2.0), "nearest", None, "asymmetric", "floor"),
        ("nearest_size", (2, 2, 5, 4, 7), (3, 7, 4), None, "nearest", None, "asymmetric", "floor"),
        ("nearest_scale_mixed", (1, 2, 4, 6, 6), None, (1.5, 0.5, 0.75), "nearest", None, "asymmetric", "floor"),
        ("nearest_exact_size", (1, 2, 5, 4, 7), (8, 3, 11), None, "nearest-exact", None, "half_pixel", "round_prefer_ceil"),
        ("nearest_exact_down", (1, 2, 6, 8, 4), None, (0.5, 0.5, 0.5), "nearest-exact", None, "half_pixel", "round_prefer_ceil"),
        ("linear_x2", (2, 2, 3, 4, 5), None, (2.0, 2.0, 2.0), "trilinear", False, "half_pixel", ""),
        ("linear_size_up", (1, 3, 3, 5, 4), (7, 6, 9), None, "trilinear", False, "half_pixel", ""),
        ("linear_size_down", (1, 2, 7, 9, 8), (3, 4, 5), None, "trilinear", False, "half_pixel", ""),
        ("linear_scale_mixed", (1, 2, 4, 6, 8), None, (1.5, 0.5, 0.75), "trilinear", False, "half_pixel", ""),
        ("linear_out1", (1, 2, 4, 5, 6), (1, 3, 9), None, "trilinear", False, "half_pixel", ""),
        ("linear_align_up", (1, 2, 3, 5, 4), (7, 6, 9), None, "trilinear", True, "align_corners", ""),
        ("linear_align_down", (2, 2, 7, 9, 8), (3, 4, 1), None, "trilinear", True, "align_corners", ""),
        ("linear_align_x2", (1, 2, 3, 4, 5), None, (2.0, 2.0, 2.0), "trilinear", True, "align_corners", ""),
    ]
    for name, shape, size, sf, mode, ac, coord, nearest in cases:
        x = rand(g, *shape)
        if mode == "trilinear":
            y = F.interpolate(x.double(), size=size, scale_factor=sf, mode=mode, align_corners=ac)
        else:
            y = F.interpolate(x, size=size, scale_factor=sf, mode=mode)
        save(GROUP, "resize_" + name, "resize",
             {"mode": "linear" if mode == "trilinear" else "nearest", "coord": coord,
              "nearest": nearest, "out": list(y.shape[2:]),
              "scale": list(sf) if sf else [0.0, 0.0, 0.0]},
             {"x": x, "y": y})


def two_class(g):
    # Two channels: the CPU backend's softmax has a loop of its own.
    x = rand(g, 2, 2, 3, 4, 5, scale=20.0)
    save(GROUP, "softmax_c2", "softmax", {}, {"x": x, "y": torch.softmax(x.double(), dim=1)})


def main():
    g = seeded(5)
    pools(g)
    norms(g)
    misc(g)
    resizes(g)
    two_class(seeded(6))


if __name__ == "__main__":
    main()
