"""scikit-image side of the denoise benchmark (.ci/bench-kernels-denoise.sh).

Reads what kernels/bench/denoisebench wrote into WORK (clean.f32,
noisy.f32, ours_<method>.f32, meta.json), runs scikit-image / SciPy with
the same parameters on the noisy volume (fastest of --reps runs),
measures PSNR and SSIM of the noisy volume, our outputs and scikit-image's
against the clean volume, all with skimage.metrics (3D SSIM:
structural_similarity, 7-voxel uniform window, data_range = clean max - min;
PSNR with the same data_range), and writes a Markdown table.

The references:
  gaussian   scipy.ndimage.gaussian_filter(sigma, truncate=4, mode="reflect")
             (what skimage.filters.gaussian calls)
  bilateral  skimage.restoration.denoise_bilateral is 2D only: run slice by
             slice with sigma_spatial = the in-plane sigma, win_size = 2*3+1,
             sigma_color = the range sigma, mode "symmetric" (= scipy
             "reflect", our border rule), bins 10000 (its default LUT);
             the values are shifted to be >= 0 first (its colour table
             assumes non-negative values) and back after.
  nlm        denoise_nl_means(patch_size=2P+1, patch_distance=S, h, sigma),
             fast_mode=True (what users run; ours has its semantics, see
             kernels.NLMParams) and, unless --no-slow, fast_mode=False
             (Gaussian patch weights, a different filter; timed for
             reference).
scikit-image's and SciPy's filters are single-threaded; OMP_NUM_THREADS and
friends are set to 2 by the .ci script anyway.

Run with Debian's interpreter: /usr/bin/python3 kernels/bench/bench_denoise.py WORK OUT.md
"""
import argparse
import json
import os
import platform
import time

import numpy as np
import scipy.ndimage as ndi
import skimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import denoise_bilateral, denoise_nl_means


def load(work, name, shape):
    return np.fromfile(os.path.join(work, name), dtype="<f4").reshape(shape)


def timed(fn, reps):
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    return out, min(times)


def metrics(clean, x, dr):
    x = x.astype(np.float32)
    return (peak_signal_noise_ratio(clean, x, data_range=dr),
            structural_similarity(clean, x, data_range=dr))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("out")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-slow", action="store_true", help="skip denoise_nl_means(fast_mode=False)")
    ap.add_argument("--one-thread", help="folder of a second denoisebench run with GOMAXPROCS=1 (its times only)")
    a = ap.parse_args()
    meta = json.load(open(os.path.join(a.work, "meta.json")))
    shape = tuple(meta["shape"])
    clean = load(a.work, "clean.f32", shape)
    noisy = load(a.work, "noisy.f32", shape)
    dr = float(clean.max() - clean.min())
    m = {x["name"]: x for x in meta["methods"]}
    m1 = {}
    if a.one_thread:
        m1 = {x["name"]: x["ms"] for x in json.load(open(os.path.join(a.one_thread, "meta.json")))["methods"]}

    rows = []
    pn, sn = metrics(clean, noisy, dr)

    def add(label, ours_name, ref_label, ref_fn, reps):
        ours = load(a.work, "ours_" + ours_name + ".f32", shape)
        po, so = metrics(clean, ours, dr)
        ref, ms = timed(ref_fn, reps)
        pr, sr = metrics(clean, ref, dr)
        ad = np.abs(ours.astype(np.float64) - ref)
        diff = float(ad.max())
        # Away from the borders (4 voxels): where the nlm search windows
        # stay inside the volume.
        inner = float(ad[4:-4, 4:-4, 4:-4].mean()) if min(shape) > 8 else float("nan")
        rows.append((label, m[ours_name]["ms"], ref_label, ms, po, so, pr, sr, diff, inner, m1.get(ours_name, float("nan"))))
        print(json.dumps(dict(method=label, ours_ms=m[ours_name]["ms"], ref=ref_label, ref_ms=ms,
                              psnr_ours=po, ssim_ours=so, psnr_ref=pr, ssim_ref=sr, max_abs_diff=diff,
                              inner_mean_abs_diff=inner)), flush=True)

    g = m["gaussian"]["params"]
    add("gaussian", "gaussian", "scipy.ndimage.gaussian_filter",
        lambda: ndi.gaussian_filter(noisy, g["sigma"], truncate=g["truncate"], mode="reflect"), a.reps)

    b = m["bilateral"]["params"]
    shift = float(noisy.min())

    def bil():
        out = np.empty_like(noisy)
        for z in range(noisy.shape[0]):
            out[z] = denoise_bilateral(noisy[z] - shift, win_size=2 * b["radius"] + 1,
                                       sigma_color=b["sigma_range"], sigma_spatial=b["sigma_spatial"][1],
                                       bins=10000, mode="symmetric") + shift
        return out
    assert b["sigma_spatial"][0] == 0 and b["sigma_spatial"][1] == b["sigma_spatial"][2]
    add("bilateral", "bilateral", "denoise_bilateral, slice by slice", bil, a.reps)

    n = m["nlm"]["params"]
    kw = dict(patch_size=2 * n["patch_radius"] + 1, patch_distance=n["search_radius"], h=n["h"],
              sigma=n["sigma"], channel_axis=None)
    add(f"nlm, h {n['h']:g}", "nlm", "denoise_nl_means fast_mode=True",
        lambda: denoise_nl_means(noisy, fast_mode=True, **kw), a.reps)
    hs = []
    for name in ("nlm_h24", "nlm_h28"):
        n1 = m[name]["params"]
        hs.append(n1["h"])
        kw1 = dict(kw, h=n1["h"], sigma=n1["sigma"])
        add(f"nlm, h {n1['h']:g}", name, "denoise_nl_means fast_mode=True",
            lambda kw1=kw1: denoise_nl_means(noisy, fast_mode=True, **kw1), a.reps)
    if not a.no_slow:
        add(f"nlm, h {n['h']:g}", "nlm", "denoise_nl_means fast_mode=False",
            lambda: denoise_nl_means(noisy, fast_mode=False, **kw), 1)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    D, H, W = shape
    lines = [
        "# Denoise benchmark: radtriage CPU backend vs scikit-image", "",
        f"Volume: {os.path.basename(meta['ref'])} ({D} slices of {H}×{W}, voxels "
        f"{'×'.join(f'{s:.3g}' for s in meta['spacing_dhw'])} mm D×H×W), plus Gaussian noise of "
        f"{meta['noise']:g} HU (seed {meta['seed']}). CPU: {cpu}; radtriage {meta['backend']} "
        f"(fastest of {len(m['gaussian']['all_ms'])} runs), scikit-image {skimage.__version__} / SciPy on Python {platform.python_version()} "
        f"(single-threaded filters; fastest of {a.reps} runs, fast_mode=False: 1 run). Fastest runs, since "
        "the machine may be shared: a 2-thread program loses more to other load than a 1-thread one.", "",
        "PSNR and SSIM against the clean volume, both computed by skimage.metrics on the whole 3D volume "
        f"(data_range {dr:g} HU = clean max - min; SSIM 3D, 7-voxel uniform window). "
        f"Noisy input: PSNR {pn:.2f} dB, SSIM {sn:.4f}.", "",
        "Parameters: gaussian sigma (D,H,W) = "
        f"{tuple(g['sigma'])} voxels, truncate {g['truncate']}; bilateral sigma_spatial {tuple(b['sigma_spatial'])} "
        f"voxels, radius {b['radius']}, range sigma {b['sigma_range']} HU (ours 3D with no weight across slices, "
        f"scikit-image 2D per slice. Caveat: scikit-image 0.19's _compute_spatial_lut builds its spatial table on "
        "np.arange(-win_size // 2, win_size // 2 + 1), 8×8 points for win_size 7, read as 7×7: its spatial weights "
        "are misplaced (the centre pixel gets exp(-17/2)), so it is not the textbook filter; e.g. a pixel of 150 "
        "between columns of 0 and 300 comes out 53 instead of 149.8). "
        f"nlm: patch {2*n['patch_radius']+1}³, search radius {n['search_radius']} "
        f"({2*n['search_radius']+1}³ window), sigma {n['sigma']:g} HU, h {n['h']:g} HU (0.8 sigma, scikit-image's "
        f"advice for fast mode), {hs[0]:g} HU (1.2 sigma, radtriage denoise's default) and {hs[1]:g} HU "
        "(1.4 sigma), both libraries with the same parameters in each row. Ours has fast mode's semantics "
        "(kernels.NLMParams: patch offsets [1-P, P]³, the patch sum of (d²-2σ²) over (2P+1)³h²), except that "
        "its search window is clipped to the volume where scikit-image also averages mirrored border voxels, and "
        "its exp is exact with no cut-off at exp(-5): hence the max |ours-ref| at the borders of the nlm rows, "
        "while the mean |ours-ref| 4 voxels or more from the borders is a fraction of a HU. "
        "The slow mode (Gaussian patch weights) is a different filter, timed for reference.", "",
        "Speed-up is the reference's time over ours on 2 threads; the 1-thread columns run ours on one "
        "core (GOMAXPROCS=1) against the same single-threaded reference.", "",
        "| method | reference | ours ms | reference ms | speed-up | ours 1 thread ms | speed-up 1 thread | PSNR ours | PSNR ref | SSIM ours | SSIM ref | max |ours-ref| HU | inner mean |ours-ref| HU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (label, oms, ref, rms, po, so, pr, sr, diff, inner, o1) in rows:
        lines.append(f"| {label} | {ref} | {oms:.1f} | {rms:.1f} | {rms/oms:.1f}× | {o1:.1f} | {rms/o1:.1f}× | {po:.2f} | {pr:.2f} | "
                     f"{so:.5f} | {sr:.5f} | {diff:.3g} | {inner:.3g} |")
    open(a.out, "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
