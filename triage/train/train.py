#!/usr/bin/python3
"""Trains radtriage's default triage ensemble (demonstration models) and
writes it, as ONNX files and model cards, into triage/models.

Run with Debian's python3 (python3-torch, CPU), from the repository root,
after `make build` (it is what `make models` runs):

    /usr/bin/python3 triage/train/train.py [--out triage/models] [--work .cache/train]

The training data are synthetic head CTs made by radtriage itself:

  1. `radtriage phantom --lesion random` writes the studies as DICOM series
     with their ground-truth masks (training seeds 100000.., validation
     seeds 200000..; `make eval` uses seeds from 900000, never seen here);
  2. `radtriage preprocess DIR/dicom --card CARD` computes each network
     input exactly as triage does when serving (denoise, resample, window),
     and `radtriage preprocess mask.nii.gz --labels` the target on the same
     grid.

So training and serving see identical inputs. Three models:

  seg_unet_tc   3D U-Net, BatchNorm + LeakyReLU, ConvTranspose up
  seg_unet_rs   3D U-Net, BatchNorm + ReLU, trilinear Resize up, other seed
  cls_cnn       3D CNN classifier, one sigmoid output per finding

The U-Nets give 3 channels (background, ICH, SDH; softmax), trained on
32x64x64 crops (two in three centred near a lesion voxel when the study
has one) with cross-entropy plus a soft Dice on the lesion classes
present. Both use BatchNorm, whose statistics at inference are the
running ones, so a net trained on crops sees the same normalisation on a
whole input (InstanceNorm would normalise a crop and a whole head
differently). The classifier sees the whole input and
is trained with binary cross-entropy on "has ICH", "has SDH". Everything
is seeded; a rerun on the same machine gives the same weights up to
PyTorch's CPU non-determinism in float sums.

Each model is written as NAME.onnx (what radtriage runs) and NAME.pt (its
PyTorch state_dict, for the benchmark's PyTorch reference run); its card
(NAME.json) records the input spec, the finding codes,
tiers and thresholds, the training data, and validation metrics.
"""

import argparse
import datetime
import hashlib
import json
import math
import os
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT = {
    "spacing_mm": [5, 1.8, 1.8],
    "size": [32, 128, 128],
    "window": {"center": 40, "width": 120},
    "denoise": {"method": "gaussian", "sigma_mm": 1},
    "channels": 1,
}
FINDINGS = [
    # code, name, tier, segmentation channel / classifier output
    ("ICH", "Intraparenchymal haemorrhage", "critical"),
    ("SDH", "Subdural haematoma", "critical"),
]
TRAIN_SEED, VAL_SEED = 100000, 200000
VERSION = "0.1.0"


# ---------------------------------------------------------------- data


def read_nifti(path):
    """The (D, H, W) float32 array of a NIfTI-1 file that radtriage
    preprocess wrote (FLOAT32, voxel order kept: i is W, k is D)."""
    with open(path, "rb") as f:
        b = f.read()
    if struct.unpack("<i", b[0:4])[0] != 348:
        raise ValueError(f"{path}: not a little-endian NIfTI-1 file")
    dim = struct.unpack("<8h", b[40:56])
    datatype = struct.unpack("<h", b[70:72])[0]
    off = int(struct.unpack("<f", b[108:112])[0])
    if datatype != 16:
        raise ValueError(f"{path}: datatype {datatype}, want FLOAT32 (16)")
    n = dim[1] * dim[2] * dim[3]
    return np.frombuffer(b, dtype="<f4", count=n, offset=off).reshape(dim[3], dim[2], dim[1]).copy()


def make_data(radtriage, card_path, work, name, seed, count):
    """Phantoms and their preprocessed inputs and targets; cached in
    work/name by a key of the card's input spec and the binary's version."""
    d = os.path.join(work, name)
    done = os.path.join(d, "done.json")
    version = subprocess.run([radtriage, "version"], capture_output=True, text=True, check=True).stdout.strip()
    key = {"input": INPUT, "seed": seed, "count": count, "radtriage": version}
    if os.path.exists(done):
        with open(done) as f:
            if json.load(f) == key:
                return d
    subprocess.run(["rm", "-rf", d], check=True)
    os.makedirs(d)
    t = time.time()
    subprocess.run([radtriage, "phantom", "-o", d, "--count", str(count), "--seed", str(seed), "--lesion", "random"],
                   check=True, stdout=subprocess.DEVNULL)
    for s in sorted(os.listdir(d)):
        p = os.path.join(d, s)
        if not os.path.isdir(p):
            continue
        subprocess.run([radtriage, "preprocess", os.path.join(p, "dicom"), "--card", card_path, "--backend", "cpu",
                        "-o", os.path.join(p, "x.nii")], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([radtriage, "preprocess", os.path.join(p, "mask.nii.gz"), "--labels", "--card", card_path,
                        "--backend", "cpu", "-o", os.path.join(p, "y.nii")], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", os.path.join(p, "dicom")], check=True)  # the inputs are what training reads
    with open(done, "w") as f:
        json.dump(key, f)
    print(f"{name}: {count} phantoms from seed {seed} made and preprocessed in {time.time() - t:.0f} s", flush=True)
    return d


def load_set(d):
    xs, ys, truths = [], [], []
    for s in sorted(os.listdir(d)):
        p = os.path.join(d, s)
        if not os.path.isdir(p):
            continue
        xs.append(read_nifti(os.path.join(p, "x.nii")))
        ys.append(read_nifti(os.path.join(p, "y.nii")).astype(np.uint8))  # int64 only per batch (crop)
        with open(os.path.join(p, "truth.json")) as f:
            truths.append(json.load(f))
    return np.stack(xs), np.stack(ys), truths


def has_labels(y):
    """Per study: [has ICH, has SDH] from the target on the network grid."""
    return np.stack([(y == 1).any(axis=(1, 2, 3)), (y == 2).any(axis=(1, 2, 3))], axis=1).astype(np.float32)


def augment(x, y, rng):
    """Left-right flip, a small intensity gain and offset, and noise.
    x: (B, 1, D, H, W) tensor; y: (B, D, H, W) or None."""
    if rng.random() < 0.5:
        x = torch.flip(x, dims=[4])
        if y is not None:
            y = torch.flip(y, dims=[3])
    gain = 1 + 0.08 * (rng.random() * 2 - 1)
    off = 0.04 * (rng.random() * 2 - 1)
    x = (x * gain + off + 0.01 * torch.randn_like(x)).clamp(0, 1)
    return x, y


# ---------------------------------------------------------------- models


def block(cin, cout, norm, act):
    def n(c):
        return nn.InstanceNorm3d(c, affine=True) if norm == "in" else nn.BatchNorm3d(c)

    def a():
        return nn.LeakyReLU(0.01) if act == "leaky" else nn.ReLU()

    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), n(cout), a(),
                         nn.Conv3d(cout, cout, 3, padding=1, bias=False), n(cout), a())


class UNet(nn.Module):
    """3-level 3D U-Net for 5 mm slices of 1.8 mm (or, --fine, 0.9 mm) pixels: the first down-step
    halves only H and W (the slices are already thick), the second all
    three axes. Emits logits for background, ICH, SDH."""

    def __init__(self, c, norm, act, up):
        super().__init__()
        self.e1, self.e2, self.bott = block(1, c[0], norm, act), block(c[0], c[1], norm, act), block(c[1], c[2], norm, act)
        self.p1, self.p2 = nn.MaxPool3d((1, 2, 2)), nn.MaxPool3d(2)
        if up == "transpose":
            self.u2 = nn.ConvTranspose3d(c[2], c[1], 2, stride=2)
            self.u1 = nn.ConvTranspose3d(c[1], c[0], (1, 2, 2), stride=(1, 2, 2))
        else:
            self.u2 = nn.Sequential(nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
                                    nn.Conv3d(c[2], c[1], 1))
            self.u1 = nn.Sequential(nn.Upsample(scale_factor=(1, 2, 2), mode="trilinear", align_corners=False),
                                    nn.Conv3d(c[1], c[0], 1))
        self.d2 = block(2 * c[1], c[1], norm, act)
        self.d1 = block(2 * c[0], c[0], norm, act)
        self.head = nn.Conv3d(c[0], 3, 1)

    def forward(self, x):
        s1 = self.e1(x)
        s2 = self.e2(self.p1(s1))
        b = self.bott(self.p2(s2))
        y = self.d2(torch.cat([s2, self.u2(b)], dim=1))
        y = self.d1(torch.cat([s1, self.u1(y)], dim=1))
        return self.head(y)


class EncoderCls(nn.Module):
    """3D CNN classifier on seg_unet_tc's encoder: the U-Net's three
    encoder levels (8-16-32, BatchNorm + LeakyReLU; their weights copied
    from the trained seg_unet_tc and kept frozen), a fourth level of its own
    (48 channels, BatchNorm + ReLU), a global max pool (a bleed anywhere is
    a bleed: an average over the whole head would dilute a small one) and
    one logit per finding. Trained from scratch on 240 studies, a
    classifier learned them by heart (validation AUC about 0.5); on the
    segmentation's features it learns what matters. The logits are
    computed at every place (a 1x1x1 convolution) and then max-pooled:
    the study's logit is its most suspicious place's, the same function
    on a training crop and on a whole head (pooling features first and
    weighing them after does not commute with taking a larger input). The
    pool's window is the whole map of the input at hand (a crop in
    training; the whole 32x128x128 input, an 8x16x16 map, when exported:
    ONNX MaxPool)."""

    def __init__(self, c=(8, 16, 32, 48)):
        super().__init__()
        self.e1, self.e2 = block(1, c[0], "bn", "leaky"), block(c[0], c[1], "bn", "leaky")
        self.bott, self.b4 = block(c[1], c[2], "bn", "leaky"), block(c[2], c[3], "bn", "relu")
        self.p1, self.p2 = nn.MaxPool3d((1, 2, 2)), nn.MaxPool3d(2)
        self.head = nn.Conv3d(c[3], len(FINDINGS), 1)
        self.frozen = [self.e1, self.e2, self.bott]

    def init_from(self, unet):
        """Copies and freezes the encoder of a trained UNet (same widths)."""
        for mine, theirs in ((self.e1, unet.e1), (self.e2, unet.e2), (self.bott, unet.bott)):
            mine.load_state_dict(theirs.state_dict())
            for p in mine.parameters():
                p.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        for m in self.frozen:
            m.eval()  # frozen: keep the U-Net's BatchNorm statistics
        return self

    def forward(self, x):
        y = self.head(self.b4(self.p2(self.bott(self.p2(self.e2(self.p1(self.e1(x))))))))
        return torch.flatten(F.max_pool3d(y, kernel_size=y.shape[2:]), 1)


# ---------------------------------------------------------------- training


def crop(x, y, size, rng, lesion_bias, brain_centres=False, hard_negatives=False):
    """A random (size[0], size[1], size[2]) crop of each study; with
    probability lesion_bias centred near a lesion voxel when it has one,
    the lesion class drawn uniformly among those present (a large subdural
    would otherwise crowd out a small bleed, and the reverse)."""
    B, _, D, H, W = x.shape
    xs, ys = [], []
    for b in range(B):
        c = None
        if rng.random() < lesion_bias:
            present = [k for k in (1, 2) if (y[b] == k).any()]
            if present:
                idx = torch.nonzero(y[b] == present[rng.integers(len(present))])
                c = idx[rng.integers(len(idx))].tolist()
        if c is None and hard_negatives and rng.random() < 0.5:
            # Blood-dense voxels that are no lesion (40-76 HU: the dural
            # venous sinuses, the falx, the skull's partial-volume edge):
            # what a subdural must not be confused with.
            idx = torch.nonzero((x[b, 0] > 0.5) & (x[b, 0] < 0.8) & (y[b] == 0))
            if len(idx):
                c = idx[rng.integers(len(idx))].tolist()
        if c is None and brain_centres:
            # Inside the brain (window values of brain, 0.3-0.55), where
            # lesions are: so that a crop's place says nothing of its label.
            idx = torch.nonzero((x[b, 0] > 0.3) & (x[b, 0] < 0.55))
            if len(idx):
                c = idx[rng.integers(len(idx))].tolist()
        if c is None:
            c = [rng.integers(D), rng.integers(H // 4, 3 * H // 4), rng.integers(W // 4, 3 * W // 4)]
        o = [int(min(max(c[a] - size[a] // 2 + rng.integers(-size[a] // 4, size[a] // 4 + 1), 0), s - size[a]))
             for a, s in enumerate((D, H, W))]
        xs.append(x[b:b + 1, :, o[0]:o[0] + size[0], o[1]:o[1] + size[1], o[2]:o[2] + size[2]])
        ys.append(y[b:b + 1, o[0]:o[0] + size[0], o[1]:o[1] + size[1], o[2]:o[2] + size[2]])
    return torch.cat(xs), torch.cat(ys).long()


def seg_loss(logits, y):
    """Cross-entropy plus a soft Dice over the batch for each lesion class
    present in it (a class absent from the batch would only push every
    probability towards zero, which the cross-entropy already does)."""
    ce = F.cross_entropy(logits, y, weight=torch.tensor([1.0, 2.0, 2.0]))
    p = torch.softmax(logits, dim=1)
    dice, n = 0, 0
    for k in (1, 2):
        t = (y == k).float()
        if t.sum() == 0:
            continue
        inter = (p[:, k] * t).sum()
        dice = dice + 1 - (2 * inter + 1) / (p[:, k].sum() + t.sum() + 1)
        n += 1
    return ce + (dice / n if n else 0)


def cosine(step, steps, lr):
    warm = max(steps // 20, 1)
    if step < warm:
        return lr * (step + 1) / warm
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(steps - warm, 1)))


def fit(net, steps, lr, loss_of):
    """AdamW with warm-up and cosine decay over the trainable parameters;
    loss_of(step) draws a batch and returns its loss."""
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    net.train()
    t, run = time.time(), 0.0
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine(step, steps, lr)
        loss = loss_of(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        run = 0.98 * run + 0.02 * loss.item() if step else loss.item()
        if step % 50 == 0 or step == steps - 1:
            print(f"  step {step}/{steps} loss {run:.4f} ({time.time() - t:.0f} s)", flush=True)


def train_seg(net, X, Y, steps, seed, batch=3, crop_size=(32, 64, 64), lr=3e-3, hard_negatives=False):
    rng = np.random.default_rng(seed)

    def loss_of(step):
        i = rng.choice(len(X), batch, replace=False)
        x, y = crop(torch.from_numpy(X[i][:, None]), torch.from_numpy(Y[i]), crop_size, rng, 0.67, hard_negatives=hard_negatives)
        x, y = augment(x, y, rng)
        return seg_loss(net(x), y)

    fit(net, steps, lr, loss_of)


def train_cls(net, X, Y, steps, seed, batch=4, crop_size=(32, 64, 64), lr=2e-3, hard_negatives=False):
    """The classifier learns on crops (half of them centred near a lesion,
    the others on a random brain voxel, so that where a crop lies does not
    give its label away): a crop's label for a finding is whether it holds
    at least 8 voxels of that lesion. Being fully convolutional up to its
    global max pool, the net reads a whole input as every crop of it at
    once. On the shipped 1.8 mm grid it has not learned (validation AUC
    0.4-0.5); with --fine (0.9 mm) it learns ICH (0.95-0.997) and, on
    phantoms with dural sinuses, SDH partly (0.67-0.87). Trained on whole
    studies instead, it learned the 240 training heads by heart."""
    rng = np.random.default_rng(seed)

    def loss_of(step):
        i = rng.choice(len(X), batch, replace=False)
        x, y = crop(torch.from_numpy(X[i][:, None]), torch.from_numpy(Y[i]), crop_size, rng, 0.5, brain_centres=True, hard_negatives=hard_negatives)
        x, y = augment(x, y, rng)
        lab = torch.stack([((y == k).sum(dim=(1, 2, 3)) >= 8).float() for k in (1, 2)], dim=1)
        return F.binary_cross_entropy_with_logits(net(x), lab)

    fit(net, steps, lr, loss_of)


# ---------------------------------------------------------------- validation


def auc(scores, labels):
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@torch.no_grad()
def val_seg(net, X, Y):
    """Dice per lesion class over studies that have it, on the network
    grid at threshold 0.5 (with the left-right flip averaged in, as the
    ensemble does)."""
    net.eval()
    dices = {1: [], 2: []}
    for b in range(len(X)):
        x = torch.from_numpy(X[b:b + 1, None])
        p = torch.softmax(net(x), 1) + torch.flip(torch.softmax(net(torch.flip(x, dims=[4])), 1), dims=[4])
        p = (p / 2)[0].numpy()
        for k in (1, 2):
            t = Y[b] == k
            if t.sum() * math.prod(INPUT["spacing_mm"]) / 1000 < 1:  # lesions over 1 mL, as make eval reports
                continue
            m = p[k] >= 0.5
            dices[k].append(2 * (m & t).sum() / (m.sum() + t.sum()))
    return {f"val_median_dice_{FINDINGS[k - 1][0].lower()}": float(np.median(v)) for k, v in dices.items() if v}


@torch.no_grad()
def val_cls(net, X, L):
    net.eval()
    s = torch.cat([torch.sigmoid(net(torch.from_numpy(X[b:b + 1, None]))) for b in range(len(X))]).numpy()
    return {f"val_auc_{code.lower()}": float(auc(s[:, k], L[:, k])) for k, (code, _, _) in enumerate(FINDINGS)}


# ---------------------------------------------------------------- export


def export(net, path, seed):
    net.eval()
    x = torch.zeros(1, 1, *INPUT["size"])
    torch.onnx.export(net, x, path, opset_version=13, input_names=["image"], output_names=["logits"],
                      do_constant_folding=True)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_card(out, name, kind, metrics, data, sha, arch, thresholds, min_ml):
    card = {
        "name": name.replace("_", "-"),
        "version": VERSION,
        "file": name + ".onnx",
        "kind": kind,
        "findings": [{
            "code": code, "name": label, "tier": tier, "channel": (k + 1 if kind == "segmentation" else k),
            "threshold": thresholds[k], "min_volume_ml": (min_ml[k] if kind == "segmentation" else 0),
        } for k, (code, label, tier) in enumerate(FINDINGS)],
        "input": INPUT,
        "output": {"activation": "softmax" if kind == "segmentation" else "sigmoid"},
        "training": {
            "data": data,
            "date": datetime.date.today().isoformat(),
            "script": "triage/train/train.py",
            "architecture": arch,
            "onnx_sha256": sha,
        },
        "metrics": metrics,
        "demonstration": True,
    }
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")


# The ensemble: file stem -> (constructor, seed, architecture). The
# benchmark (triage/bench/bench_triage.py) builds the PyTorch reference
# from this table.
MODELS = {
    "seg_unet_tc": (lambda: UNet((8, 16, 32), "bn", "leaky", "transpose"), 1,
                    "3D U-Net 8-16-32, BatchNorm + LeakyReLU, ConvTranspose upsampling"),
    "seg_unet_rs": (lambda: UNet((8, 16, 32), "bn", "relu", "resize"), 2,
                    "3D U-Net 8-16-32, BatchNorm + ReLU, trilinear Resize upsampling"),
    "cls_cnn": (lambda: EncoderCls(), 3, "3D CNN: seg_unet_tc's encoder 8-16-32 (frozen) + a 48-channel level, global max pool"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--radtriage", default="bin/radtriage")
    ap.add_argument("--out", default="triage/models")
    ap.add_argument("--work", default=".cache/train")
    ap.add_argument("--train", type=int, default=240, help="training phantoms")
    ap.add_argument("--val", type=int, default=40, help="validation phantoms")
    ap.add_argument("--seg-steps", type=int, default=1500)
    ap.add_argument("--cls-steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", choices=["seg_unet_tc", "seg_unet_rs", "cls_cnn"], action="append")
    ap.add_argument("--fine", action="store_true",
                    help="experimental: a 32x256x256 grid of 5x0.9x0.9 mm voxels instead of the shipped 32x128x128 of 1.8 mm")
    ap.add_argument("--hard-negatives", action="store_true",
                    help="experimental: half the crops without a lesion centred on blood-dense voxels that are no lesion")
    a = ap.parse_args()
    if a.fine:
        INPUT["spacing_mm"], INPUT["size"] = [5, 0.9, 0.9], [32, 256, 256]
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)

    # The card whose input spec preprocessing applies (the models' cards
    # share it, so one preprocessed copy serves all three).
    spec_card = os.path.join(a.work, "input_card.json")
    write_card(a.work, "input_card", "segmentation", {}, "", "", "", [0.5, 0.5], [0, 0])
    tr = make_data(a.radtriage, spec_card, a.work, "train", TRAIN_SEED, a.train)
    va = make_data(a.radtriage, spec_card, a.work, "val", VAL_SEED, a.val)
    Xt, Yt, _ = load_set(tr)
    Xv, Yv, _ = load_set(va)
    Lt, Lv = has_labels(Yt), has_labels(Yv)
    print(f"train {len(Xt)} studies ({int(Lt.any(1).sum())} with lesions), val {len(Xv)}", flush=True)
    data = (f"synthetic head CTs from radtriage phantom --lesion random: {a.train} training studies (seeds "
            f"{TRAIN_SEED}-{TRAIN_SEED + a.train - 1}), {a.val} validation studies (seeds {VAL_SEED}-{VAL_SEED + a.val - 1}), "
            f"preprocessed by radtriage preprocess")

    for name, (make, seed, arch) in MODELS.items():
        if a.only and name not in a.only:
            continue
        torch.manual_seed(seed)
        net = make()
        t = time.time()
        print(f"{name}: {sum(p.numel() for p in net.parameters())} parameters", flush=True)
        if name.startswith("seg"):
            train_seg(net, Xt, Yt, a.seg_steps, seed, hard_negatives=a.hard_negatives)
            metrics = val_seg(net, Xv, Yv)
            # Smallest lesions kept: ICH 0.1 mL, a fifth of the smallest bleed
            # the phantoms make (0.5 mL); SDH 2 mL, under half the smallest
            # subdural of the training set (4.9 mL): the segmentation's false
            # alarms are slivers of about 1 mL along the inner skull.
            kind, thr, min_ml = "segmentation", [0.5, 0.5], [0.1, 2.0]
        else:
            unet = MODELS["seg_unet_tc"][0]()
            unet.load_state_dict(torch.load(os.path.join(a.out, "seg_unet_tc.pt")))
            net.init_from(unet)
            train_cls(net, Xt, Yt, a.cls_steps, seed, hard_negatives=a.hard_negatives)
            metrics = val_cls(net, Xv, Lv)
            kind, thr, min_ml = "classification", [0.5, 0.5], [0, 0]
        metrics["train_minutes"] = round((time.time() - t) / 60, 1)
        print(f"{name}: {metrics}", flush=True)
        torch.save(net.state_dict(), os.path.join(a.out, name + ".pt"))
        sha = export(net, os.path.join(a.out, name + ".onnx"), seed)
        write_card(a.out, name, kind, metrics, data, sha, arch, thr, min_ml)


if __name__ == "__main__":
    sys.exit(main())
