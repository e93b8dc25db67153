#!/usr/bin/python3
"""Writes the PyTorch parity goldens that triage's executor tests check.

Run with Debian's python3 (torch 1.13) from this directory:

    /usr/bin/python3 make_parity.py

For each tiny 3D net below it writes NAME.onnx (torch.onnx.export, opset
13, eval mode, fixed seeds), NAME.in.f32 (the 1x1x16x16x16 input) and
NAME.out.f32 (PyTorch's output), both raw little-endian float32, and
parity.json listing the nets with their input and output shapes.
"""

import json

import numpy as np
import torch
import torch.nn as nn


def randomize_bn(m):
    """Gives BatchNorm layers non-trivial running statistics and affine."""
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm3d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c) * 0.2)
            mod.running_var.copy_(torch.rand(c) + 0.5)
            mod.weight.data.copy_(torch.rand(c) + 0.5)
            mod.bias.data.copy_(torch.randn(c) * 0.2)
        if isinstance(mod, nn.InstanceNorm3d) and mod.affine:
            c = mod.num_features
            mod.weight.data.copy_(torch.rand(c) + 0.5)
            mod.bias.data.copy_(torch.randn(c) * 0.2)


class UNetTransposeIN(nn.Module):
    """U-Net-like: InstanceNorm, LeakyReLU, ConvTranspose upsampling,
    convolutions with bias, softmax over two classes."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.InstanceNorm3d(4, affine=True), nn.LeakyReLU(0.1))
        self.pool = nn.MaxPool3d(2)
        self.mid = nn.Sequential(nn.Conv3d(4, 8, 3, padding=1), nn.InstanceNorm3d(8, affine=True), nn.LeakyReLU(0.1))
        self.up = nn.ConvTranspose3d(8, 4, 2, stride=2)
        self.dec = nn.Sequential(nn.Conv3d(8, 4, 3, padding=1), nn.LeakyReLU(0.01))
        self.head = nn.Conv3d(4, 2, 1)

    def forward(self, x):
        s = self.enc(x)
        y = self.up(self.mid(self.pool(s)))
        y = self.dec(torch.cat([s, y], dim=1))
        return torch.softmax(self.head(y), dim=1)


class UNetResizeBN(nn.Module):
    """U-Net-like: BatchNorm, ReLU, convolutions without bias, trilinear
    and nearest Resize upsampling, average pooling, sigmoid output."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1, bias=False), nn.BatchNorm3d(4), nn.ReLU())
        self.pool = nn.AvgPool3d(2)
        self.mid = nn.Sequential(nn.Conv3d(4, 4, 3, padding=1, bias=False), nn.BatchNorm3d(4), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.bn = nn.BatchNorm3d(12)
        self.head = nn.Conv3d(12, 1, 1, bias=False)

    def forward(self, x):
        s = self.enc(x)
        m = self.mid(self.pool(s))
        y = torch.cat([s, self.up(m), self.up2(m)], dim=1)
        return torch.sigmoid(self.head(self.bn(y)))


class ResNetClassifier(nn.Module):
    """3D ResNet-like classifier: strided stem, one residual block,
    GlobalAveragePool, Flatten through x.view(N, -1), Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm3d(8), nn.ReLU())
        self.c1 = nn.Conv3d(8, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm3d(8)
        self.c2 = nn.Conv3d(8, 8, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm3d(8)
        self.down = nn.MaxPool3d(3, stride=2, padding=1)
        self.gap = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        y = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(x + self.b2(self.c2(y)))
        x = self.gap(self.down(x))
        return self.fc(x.view(x.size(0), -1))


def main():
    nets = [("unet_transpose_in", UNetTransposeIN), ("unet_resize_bn", UNetResizeBN), ("resnet_cls", ResNetClassifier)]
    manifest = []
    for i, (name, cls) in enumerate(nets):
        torch.manual_seed(100 + i)
        net = cls()
        randomize_bn(net)
        net.eval()
        x = torch.randn(1, 1, 16, 16, 16)
        with torch.no_grad():
            y = net(x)
        # The classifier keeps a symbolic batch axis, so that its export
        # computes x.view(x.size(0), -1) with Shape, Gather, Unsqueeze and
        # Concat, which the executor folds.
        dyn = {"x": {0: "batch"}, "y": {0: "batch"}} if name == "resnet_cls" else None
        torch.onnx.export(net, x, name + ".onnx", opset_version=13, input_names=["x"], output_names=["y"],
                          do_constant_folding=True, dynamic_axes=dyn)
        x.numpy().astype("<f4").tofile(name + ".in.f32")
        y.numpy().astype("<f4").tofile(name + ".out.f32")
        manifest.append({"name": name, "input": list(x.shape), "output": list(y.shape)})
    with open("parity.json", "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
