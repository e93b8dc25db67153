"""Goldens of the denoise group: Gaussian, Bilateral and NLM of small
volumes, computed with PyTorch ops in float64 (index gathers for the
borders, conv3d, explicit neighbour stacks), saved as float32.

Run: /usr/bin/python3 kernels/testdata/golden_denoise.py
"""
import math

import torch

from golden_common import save, seeded

torch.set_default_dtype(torch.float64)


def reflect_idx(n, lo, hi):
    """Indices of an axis of n voxels padded by lo and hi as scipy's
    "reflect" (d c b a | a b c d), periodic when far outside."""
    i = torch.arange(-lo, n + hi)
    m = torch.remainder(i, 2 * n)
    return torch.where(m >= n, 2 * n - 1 - m, m)


def mirror_idx(n, lo, hi):
    """As numpy.pad "reflect" (c b | a b c)."""
    i = torch.arange(-lo, n + hi)
    if n == 1:
        return torch.zeros_like(i)
    m = torch.remainder(i, 2 * (n - 1))
    return torch.where(m >= n, 2 * (n - 1) - m, m)


def pad3(x, r, idx):
    for a in range(3):
        x = x.index_select(a, idx(x.shape[a], r[a], r[a]))
    return x


def gauss_kernel(sigma, radius):
    xs = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * xs * xs / (sigma * sigma))
    return k / k.sum()


def gaussian(v, sigma, truncate):
    x = v.clone()
    for a in (2, 1, 0):
        if sigma[a] == 0:
            continue
        r = int(truncate * sigma[a] + 0.5)
        if r == 0:
            continue
        pad = [0, 0, 0]
        pad[a] = r
        xp = pad3(x, pad, reflect_idx)
        shape = [1, 1, 1]
        shape[a] = 2 * r + 1
        k = gauss_kernel(sigma[a], r).reshape(1, 1, *shape)
        x = torch.nn.functional.conv3d(xp[None, None], k)[0, 0]
    return x


def bilateral(v, sigma, sigma_range, radius):
    rad = [radius[a] if radius[a] > 0 else math.ceil(3 * sigma[a]) for a in range(3)]
    xp = pad3(v, rad, reflect_idx)
    D, H, W = v.shape
    num = torch.zeros_like(v)
    den = torch.zeros_like(v)
    for kd in range(-rad[0], rad[0] + 1):
        for kh in range(-rad[1], rad[1] + 1):
            for kw in range(-rad[2], rad[2] + 1):
                ws = 1.0
                for k, s in zip((kd, kh, kw), sigma):
                    if k != 0:
                        ws *= math.exp(-0.5 * k * k / (s * s)) if s > 0 else 0.0
                if ws == 0:
                    continue
                nb = xp[rad[0] + kd:rad[0] + kd + D, rad[1] + kh:rad[1] + kh + H,
                        rad[2] + kw:rad[2] + kw + W]
                w = ws * torch.exp(-(nb - v) ** 2 / (2 * sigma_range ** 2))
                num += w * nb
                den += w
    return num / den


def nlm(v, patch, search, h, sigma):
    """Naive NLM: all patches unfolded, every in-volume search neighbour.
    Patch offsets [1-P, P] per axis (scikit-image's fast mode; just 0 when
    P is 0); the weight is exp(-max(sum(d^2 - 2 sigma^2), 0) / (side^3 h^2))."""
    P, S = patch, search
    D, H, W = v.shape
    xp = pad3(v, (P, P, P), mirror_idx)
    side = 2 * P + 1
    span = max(2 * P, 1)
    first = side - span  # unfold index of offset 1-P (or 0 when P is 0)
    patches = xp.unfold(0, side, 1).unfold(1, side, 1).unfold(2, side, 1)
    patches = patches[:, :, :, first:, first:, first:].reshape(D, H, W, -1)
    out = torch.empty_like(v)
    for z in range(D):
        for y in range(H):
            for x in range(W):
                z0, z1 = max(0, z - S), min(D, z + S + 1)
                y0, y1 = max(0, y - S), min(H, y + S + 1)
                x0, x1 = max(0, x - S), min(W, x + S + 1)
                cand = patches[z0:z1, y0:y1, x0:x1].reshape(-1, span ** 3)
                d = ((cand - patches[z, y, x]) ** 2 - 2 * sigma * sigma).sum(dim=1)
                w = torch.exp(-torch.clamp(d, min=0) / (side ** 3 * h * h))
                vals = v[z0:z1, y0:y1, x0:x1].reshape(-1)
                out[z, y, x] = (w * vals).sum() / w.sum()
    return out


def volume(seed, shape, scale=100.0):
    """A smooth blob plus noise: structure for the filters to keep."""
    g = seeded(seed)
    D, H, W = shape
    zz, yy, xx = torch.meshgrid(torch.arange(D), torch.arange(H), torch.arange(W), indexing="ij")
    c = torch.tensor([D / 2, H / 2, W / 2])
    r2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
    base = torch.where(r2 < (min(shape) / 3) ** 2, scale, 0.0)
    noise = torch.randn(shape, generator=g, dtype=torch.float32).to(torch.float64)
    return (base + 0.2 * scale * noise).to(torch.float32).to(torch.float64)


def main():
    cases = [
        ("gauss_iso", (9, 11, 13), [1.0, 1.0, 1.0], 4.0),
        ("gauss_aniso", (7, 12, 10), [0.6, 1.7, 0.0], 4.0),
        ("gauss_wide", (5, 6, 7), [2.5, 3.0, 1.2], 3.0),  # radius beyond the volume
    ]
    for i, (name, shape, sigma, trunc) in enumerate(cases):
        v = volume(10 + i, shape)
        save("denoise", name, "gaussian", {"size": list(shape), "sigma": sigma, "truncate": trunc},
             {"x": v, "y": gaussian(v, sigma, trunc)})
    bcases = [
        ("bilateral_iso", (7, 9, 11), [1.0, 1.0, 1.0], 30.0, [0, 0, 0]),
        ("bilateral_aniso", (5, 10, 9), [0.0, 1.5, 1.0], 50.0, [0, 2, 0]),
    ]
    for i, (name, shape, sigma, sr, rad) in enumerate(bcases):
        v = volume(20 + i, shape)
        save("denoise", name, "bilateral",
             {"size": list(shape), "sigma_spatial": sigma, "sigma_range": sr, "radius": rad},
             {"x": v, "y": bilateral(v, sigma, sr, rad)})
    ncases = [
        ("nlm_p1s2", (7, 8, 9), 1, 2, 25.0, 10.0),
        ("nlm_p2s1", (6, 7, 5), 2, 1, 40.0, 0.0),
        ("nlm_p0s3", (5, 5, 6), 0, 3, 30.0, 5.0),
    ]
    for i, (name, shape, P, S, h, sg) in enumerate(ncases):
        v = volume(30 + i, shape)
        save("denoise", name, "nlm",
             {"size": list(shape), "patch_radius": P, "search_radius": S, "h": h, "sigma": sg},
             {"x": v, "y": nlm(v, P, S, h, sg)})


def check_skimage():
    """Our NLM definition is scikit-image 0.19's fast mode away from the
    borders (where its search window also takes mirrored voxels): the
    remaining difference is its approximate exp (up to about 3% off,
    0.971 at 0) and its cut-off of weights below exp(-5). The former
    definition (the mean over (2P+1)^3 patches) was 2.7 to 7.7 off on
    average here."""
    from skimage.restoration import denoise_nl_means
    for shape, P, S, h, sg in [((14, 14, 14), 1, 2, 60.0, 10.0), ((14, 15, 16), 2, 2, 50.0, 20.0)]:
        v = volume(40, shape)
        ours = nlm(v, P, S, h, sg).numpy()
        sk = denoise_nl_means(v.numpy(), patch_size=2 * P + 1, patch_distance=S, h=h, sigma=sg,
                              fast_mode=True, channel_axis=None)
        m = P + S
        d = abs(ours - sk)[m:-m, m:-m, m:-m]
        assert d.mean() < 0.3 and d.max() < 1.5, (shape, P, S, d.mean(), d.max())


if __name__ == "__main__":
    main()
    check_skimage()
