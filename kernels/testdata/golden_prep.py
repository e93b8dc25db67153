"""Goldens of the prep group (Rescale, Resample, Flip, CropPad, Activate,
Binary) for the kernels conformance suite (conformance_prep_test.go).

    /usr/bin/python3 kernels/testdata/golden_prep.py

Writes kernels/testdata/golden/prep/*.json with fixed seeds.
"""
import itertools

import torch
import torch.nn.functional as F

from golden_common import save, seeded

GROUP = "prep"
# Resample's edge tolerance (kernels.ResampleEdge): a linear sample point
# within this many voxels outside [0, size-1] counts as inside.
EDGE = 1e-4


def rescale_cases():
    g = seeded(1)
    x = torch.randint(-1100, 3000, (997,), generator=g).to(torch.int16)
    cases = [
        ("rescale_i16_window_clip", x, "int16", 1.0, -1024.0, 40.0, 400.0, True),
        ("rescale_i16_window_noclip", x, "int16", 0.5, -10.0, -600.0, 1500.0, False),
    ]
    y = torch.rand(1001, generator=g, dtype=torch.float64).mul(4000).sub(1500).to(torch.float32)
    cases += [
        ("rescale_f32_window_clip", y, "float32", 1.0, 0.0, 300.0, 1800.0, True),
        ("rescale_f32_nowindow", y, "float32", 2.0, -1.0, 0.0, 0.0, False),
    ]
    for name, src, dtype, slope, icept, centre, width, clip in cases:
        v = src.to(torch.float64) * slope + icept
        if width != 0:
            v = (v - (centre - width / 2)) / width
            if clip:
                v = v.clamp(0, 1)
        save(GROUP, name, "Rescale",
             {"dtype": dtype, "slope": slope, "intercept": icept,
              "center": centre, "width": width, "clip": clip},
             {"src": src.to(torch.float32), "out": v})


def coords(n, scale, offset):
    return offset + scale * torch.arange(n, dtype=torch.float64)


def resample_grid_sample(src, dst_size, scale, offset, mode, fill):
    """Sample src (D,H,W, float64) at offset+scale*p with grid_sample
    (align_corners=True, border padding), then give fill to the points the
    kernels count as outside."""
    size = src.shape
    cz, cy, cx = (coords(dst_size[a], scale[a], offset[a]) for a in range(3))
    z, y, x = torch.meshgrid(cz, cy, cx, indexing="ij")
    norm = [2 * c / (size[a] - 1) - 1 for a, c in enumerate((z, y, x))]
    grid = torch.stack([norm[2], norm[1], norm[0]], dim=-1)[None]
    out = F.grid_sample(src[None, None], grid, mode="bilinear" if mode == "linear" else "nearest",
                        padding_mode="border", align_corners=True)[0, 0]
    inside = torch.ones(dst_size, dtype=torch.bool)
    for a, c in enumerate((z, y, x)):
        if mode == "linear":
            inside &= (c >= -EDGE) & (c <= size[a] - 1 + EDGE)
        else:
            r = torch.floor(c + 0.5)
            inside &= (r >= 0) & (r <= size[a] - 1)
    return torch.where(inside, out, torch.full_like(out, fill))


def resample_cases():
    g = seeded(2)
    src_size = (5, 6, 7)
    src = torch.rand(src_size, generator=g, dtype=torch.float64).mul(200).sub(100)
    src32 = src.to(torch.float32)
    src = src32.to(torch.float64)  # the values the kernels see
    cases = [
        ("resample_linear_border", (6, 5, 8), [0.9, 1.3, 0.8], [-0.7, -0.45, 0.6], "linear", -7.0),
        ("resample_linear_negative", (7, 6, 9), [-0.75, 1.1, -0.6], [4.6, -0.3, 5.2], "linear", 3.5),
        ("resample_nearest_border", (6, 7, 9), [0.83, 0.91, 0.77], [-0.9, -0.3, 0.45], "nearest", -9.0),
    ]
    for name, dst_size, scale, offset, mode, fill in cases:
        out = resample_grid_sample(src, dst_size, scale, offset, mode, fill)
        save(GROUP, name, "Resample",
             {"srcSize": list(src_size), "dstSize": list(dst_size), "scale": scale,
              "offset": offset, "mode": mode, "fill": fill},
             {"src": src32, "out": out})
    # A zoom with align_corners=True: dst p samples p*(in-1)/(out-1).
    dst_size = (9, 4, 11)
    out = F.interpolate(src[None, None], size=dst_size, mode="trilinear", align_corners=True)[0, 0]
    scale = [(src_size[a] - 1) / (dst_size[a] - 1) for a in range(3)]
    save(GROUP, "resample_linear_zoom", "Resample",
         {"srcSize": list(src_size), "dstSize": list(dst_size), "scale": scale,
          "offset": [0.0, 0.0, 0.0], "mode": "linear", "fill": 0.0},
         {"src": src32, "out": out})


def flip_cases():
    g = seeded(3)
    x = torch.randn((2, 3, 3, 4, 5), generator=g)
    for axes in itertools.product([False, True], repeat=3):
        dims = [2 + a for a in range(3) if axes[a]]
        out = torch.flip(x, dims) if dims else x.clone()
        name = "flip_" + "".join("1" if a else "0" for a in axes)
        save(GROUP, name, "Flip", {"n": 2, "c": 3, "size": [3, 4, 5], "axes": list(axes)},
             {"src": x, "out": out})


def croppad_cases():
    g = seeded(4)
    src_size = (5, 6, 7)
    x = torch.randn((2, 3) + src_size, generator=g)
    cases = [
        ("croppad_mixed", (4, 9, 5), (-2, 1, 3), -3.0),
        ("croppad_pad", (8, 7, 10), (-1, -1, -2), 0.5),
        ("croppad_crop", (3, 4, 5), (1, 2, 0), 9.0),
    ]
    for name, dst_size, off, fill in cases:
        pads = []
        for a in (2, 1, 0):  # F.pad takes the last axis first
            before = -off[a]
            pads += [before, dst_size[a] - src_size[a] - before]
        out = F.pad(x, pads, mode="constant", value=fill)
        assert tuple(out.shape[2:]) == dst_size
        save(GROUP, name, "CropPad",
             {"n": 2, "c": 3, "srcSize": list(src_size), "dstSize": list(dst_size),
              "offset": list(off), "fill": fill},
             {"src": x, "out": out})


def activate_cases():
    g = seeded(5)
    x = torch.randn(1003, generator=g) * 4
    save(GROUP, "activate", "Activate", {"alpha": 0.2},
         {"src": x, "relu": F.relu(x), "leaky": F.leaky_relu(x, 0.2),
          "sigmoid": torch.sigmoid(x.double())})


def binary_cases():
    g = seeded(6)
    patterns = [
        ("same", [2, 3, 3, 4, 5], [2, 3, 3, 4, 5]),
        ("scalar_b", [2, 3, 3, 4, 5], [1]),
        ("scalar_a", [1], [2, 3, 3, 4, 5]),
        ("channel", [2, 3, 3, 4, 5], [3, 1, 1, 1]),
        ("batch", [2, 3, 3, 4, 5], [2, 1, 3, 4, 5]),
        ("mutual", [2, 1, 4, 1], [3, 1, 5]),
        ("rank6", [2, 1, 2, 3, 1, 4], [1, 3, 1, 3, 5, 1]),
    ]
    for name, ashape, bshape in patterns:
        a = torch.randn(ashape, generator=g)
        # b away from zero, for the division.
        mag = torch.rand(bshape, generator=g) * 1.5 + 0.5
        sign = torch.randint(0, 2, bshape, generator=g) * 2 - 1
        b = mag * sign
        out = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}
        save(GROUP, "binary_" + name, "Binary",
             {"aShape": ashape, "bShape": bshape, "outShape": list(out["add"].shape)},
             dict(a=a, b=b, **out))


if __name__ == "__main__":
    torch.set_num_threads(1)
    rescale_cases()
    resample_cases()
    flip_cases()
    croppad_cases()
    activate_cases()
    binary_cases()
