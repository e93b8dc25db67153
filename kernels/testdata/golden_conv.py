"""Goldens of the conv group: Conv3d, ConvTranspose3d (ONNX semantics:
asymmetric pads, output padding) and Gemm, computed by PyTorch.

Run: /usr/bin/python3 kernels/testdata/golden_conv.py
"""
import torch
import torch.nn.functional as F

from golden_common import save, seeded

ACTS = {"none": (0, lambda y: y), "relu": (1, F.relu),
        "leaky": (2, lambda y: F.leaky_relu(y, 0.1)), "sigmoid": (3, torch.sigmoid)}


def rand(g, *shape):
    return torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1


def conv_case(name, seed, n, cin, cout, size, kernel, stride=(1, 1, 1), dilation=(1, 1, 1),
              pad_begin=(0, 0, 0), pad_end=(0, 0, 0), output_padding=(0, 0, 0),
              transpose=False, bias=True, act="none"):
    g = seeded(seed)
    x = rand(g, n, cin, *size).float()
    wshape = (cin, cout, *kernel) if transpose else (cout, cin, *kernel)
    w = (rand(g, *wshape) * 0.5).float()
    b = rand(g, cout).float() if bias else None
    xd, wd = x.double(), w.double()
    bd = b.double() if bias else None
    if transpose:
        # ONNX ConvTranspose: the full transposed convolution (with the
        # output padding at the end of each axis), cropped by the pads.
        y = F.conv_transpose3d(xd, wd, bd, stride=stride, dilation=dilation,
                               output_padding=output_padding)
        d, h, w_ = y.shape[2:]
        y = y[:, :, pad_begin[0]:d - pad_end[0], pad_begin[1]:h - pad_end[1],
              pad_begin[2]:w_ - pad_end[2]]
    else:
        xp = F.pad(xd, (pad_begin[2], pad_end[2], pad_begin[1], pad_end[1],
                        pad_begin[0], pad_end[0]))
        y = F.conv3d(xp, wd, bd, stride=stride, dilation=dilation)
    kind, fn = ACTS[act]
    y = fn(y)
    params = {"n": n, "cin": cin, "cout": cout, "in": list(size), "kernel": list(kernel),
              "stride": list(stride), "dilation": list(dilation),
              "pad_begin": list(pad_begin), "pad_end": list(pad_end),
              "output_padding": list(output_padding), "transpose": transpose,
              "bias": bias, "act": kind, "alpha": 0.1}
    tensors = {"x": x, "w": w, "y": y}
    if bias:
        tensors["b"] = b
    save("conv", name, "conv_transpose3d" if transpose else "conv3d", params, tensors)


def gemm_case(name, seed, m, n, k, trans_a, trans_b, alpha, beta, c_shape):
    g = seeded(seed)
    a = rand(g, *((k, m) if trans_a else (m, k))).float()
    b = rand(g, *((n, k) if trans_b else (k, n))).float()
    ad = a.double().t() if trans_a else a.double()
    bd = b.double().t() if trans_b else b.double()
    tensors = {"a": a, "b": b}
    c_len = 0
    if c_shape is None:
        y = alpha * ad @ bd
    else:
        c = rand(g, *c_shape).float()
        tensors["c"] = c
        c_len = c.numel()
        y = torch.addmm(c.double().expand(m, n), ad, bd, beta=beta, alpha=alpha)
    tensors["y"] = y
    save("conv", name, "gemm", {"m": m, "n": n, "k": k, "trans_a": trans_a, "trans_b": trans_b,
                                "alpha": alpha, "beta": beta, "c_len": c_len}, tensors)


conv_case("conv_k3_same", 1, 1, 3, 4, (7, 8, 9), (3, 3, 3), pad_begin=(1, 1, 1),
          pad_end=(1, 1, 1), act="relu")
conv_case("conv_k3_s2_asym", 2, 2, 2, 5, (9, 6, 7), (3, 2, 3), stride=(2, 2, 1),
          pad_begin=(1, 0, 2), pad_end=(0, 1, 1), act="leaky")
conv_case("conv_dilated", 3, 1, 3, 3, (8, 9, 10), (3, 3, 2), dilation=(2, 1, 3),
          pad_begin=(2, 0, 1), pad_end=(1, 2, 0), bias=False, act="sigmoid")
conv_case("conv_k1", 4, 2, 5, 6, (4, 5, 6), (1, 1, 1))
conv_case("conv_k5", 5, 1, 2, 3, (7, 7, 7), (5, 5, 5), pad_begin=(2, 2, 2), pad_end=(2, 2, 2))
conv_case("convt_k2_s2", 6, 1, 4, 3, (4, 5, 3), (2, 2, 2), stride=(2, 2, 2), transpose=True,
          act="relu")
conv_case("convt_k3_s2_pad_op", 7, 2, 3, 2, (3, 4, 5), (3, 3, 3), stride=(2, 2, 2),
          pad_begin=(1, 0, 1), pad_end=(1, 1, 0), output_padding=(1, 0, 1), transpose=True)
conv_case("convt_k3_s3_dil", 8, 1, 2, 3, (3, 3, 4), (3, 2, 3), stride=(3, 1, 2),
          dilation=(2, 1, 1), pad_begin=(0, 1, 1), pad_end=(2, 0, 1), output_padding=(1, 0, 1),
          transpose=True, bias=False, act="leaky")
gemm_case("gemm_plain", 9, 5, 30, 7, False, False, 1.0, 1.0, None)
gemm_case("gemm_tb_row", 10, 3, 10, 50, False, True, 0.5, 2.0, (10,))
gemm_case("gemm_ta_full", 11, 9, 26, 4, True, False, -1.5, 0.25, (9, 26))
gemm_case("gemm_tt_col", 12, 6, 4, 13, True, True, 1.0, -1.0, (6, 1))
