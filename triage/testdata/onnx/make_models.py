#!/usr/bin/python3
"""Writes the small ONNX models that triage's reader tests decode.

Run with Debian's python3 (torch 1.13) from this directory:

    /usr/bin/python3 make_models.py

For each model it writes NAME.onnx (exported by torch.onnx with fixed
seeds) and NAME.json, a sidecar listing what the file holds: opsets, the
node op types in order, initializer names and shapes, input and output
names, element types and shapes. The sidecar is read back from the
exported bytes by the small protobuf walker below (Debian has no python3
onnx module), written independently of the Go reader it checks.
"""

import json
import math
import os
import struct

import torch
import torch.nn as nn


class Seg3D(nn.Module):
    """A tiny 3D U-Net-like net."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv3d(1, 4, 3, padding=1)
        self.norm = nn.InstanceNorm3d(4, affine=True)
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool3d(2)
        self.mid = nn.Conv3d(4, 4, 3, padding=1)
        self.up = nn.ConvTranspose3d(4, 4, 2, stride=2)
        self.head = nn.Conv3d(8, 1, 1)

    def forward(self, x):
        skip = self.act(self.norm(self.enc(x)))
        y = self.act(self.mid(self.pool(skip)))
        y = self.up(y)
        y = torch.cat([skip, y], dim=1)
        return torch.sigmoid(self.head(y))


class Classifier(nn.Module):
    """A tiny 3D classifier."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = nn.functional.adaptive_avg_pool3d(y, 1)
        return self.fc(torch.flatten(y, 1))


# --- a minimal protobuf walker (wire format only) ---------------------------

def varint(b, i):
    v = 0
    shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return v, i


def fields(b):
    """Yields (field number, wire type, value) of one message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v


def signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def int64s(wt, v):
    if wt == 0:
        return [signed(v)]
    out, i = [], 0
    while i < len(v):
        x, i = varint(v, i)
        out.append(signed(x))
    return out


def value_info(b):
    out = {"name": "", "elem_type": 0, "shape": []}
    for num, _, v in fields(b):
        if num == 1:
            out["name"] = v.decode()
        elif num == 2:
            for tn, _, tv in fields(v):
                if tn != 1:
                    continue
                for en, _, ev in fields(tv):
                    if en == 1:
                        out["elem_type"] = ev
                    elif en == 2:
                        for _, _, dv in fields(ev):
                            d = {}
                            for dn, _, x in fields(dv):
                                if dn == 1:
                                    d["value"] = signed(x)
                                elif dn == 2:
                                    d["param"] = x.decode()
                            out["shape"].append(d)
    return out


def describe(data):
    desc = {"opsets": {}, "nodes": [], "initializers": [],
            "inputs": [], "outputs": []}
    for num, wt, v in fields(data):
        if num == 1:
            desc["ir_version"] = v
        elif num == 2:
            desc["producer_name"] = v.decode()
        elif num == 8:
            dom, ver = "", 0
            for on, _, ov in fields(v):
                if on == 1:
                    dom = ov.decode()
                elif on == 2:
                    ver = ov
            desc["opsets"][dom] = ver
        elif num == 7:
            inits = []
            ins = []
            for gn, gwt, gv in fields(v):
                if gn == 1:
                    op = ""
                    for nn_, _, nv in fields(gv):
                        if nn_ == 4:
                            op = nv.decode()
                    desc["nodes"].append(op)
                elif gn == 5:
                    t = {"name": "", "dims": [], "data_type": 0}
                    for tn, twt, tv in fields(gv):
                        if tn == 1:
                            t["dims"] += int64s(twt, tv)
                        elif tn == 2:
                            t["data_type"] = tv
                        elif tn == 8:
                            t["name"] = tv.decode()
                        elif tn == 9 and len(tv) % 4 == 0:
                            # float32 raw_data: the sum and the first value
                            vals = struct.unpack("<%df" % (len(tv) // 4), tv)
                            t["sum"] = round(math.fsum(vals), 6)
                            t["first"] = vals[0] if vals else 0.0
                    inits.append(t)
                elif gn == 11:
                    ins.append(value_info(gv))
                elif gn == 12:
                    desc["outputs"].append(value_info(gv))
            names = {t["name"] for t in inits}
            desc["initializers"] = inits
            desc["inputs"] = [x for x in ins if x["name"] not in names]
    return desc


def export(name, model, shape, opset, dynamic_batch):
    torch.manual_seed(0)
    model.eval()
    x = torch.randn(*shape)
    path = name + ".onnx"
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(model, x, path, opset_version=opset,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes=axes,
                      training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=True)
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) < 100_000, (path, len(data))
    desc = describe(data)
    with open(name + ".json", "w") as f:
        json.dump(desc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(path, len(data), "bytes", desc["nodes"])


def main():
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    torch.manual_seed(1)
    seg = Seg3D()
    torch.manual_seed(2)
    cls = Classifier()
    with torch.no_grad():
        # non-trivial running statistics so BatchNorm is not an identity
        cls.bn.running_mean.uniform_(-0.5, 0.5)
        cls.bn.running_var.uniform_(0.5, 2.0)
    export("seg3d_op13", seg, (1, 1, 8, 8, 8), 13, True)
    export("seg3d_op17", seg, (1, 1, 8, 8, 8), 17, False)
    export("classifier_op17", cls, (1, 1, 6, 6, 6), 17, False)


if __name__ == "__main__":
    main()
