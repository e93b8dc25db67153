"""Shared writer of the conformance goldens (kernels/testdata/golden).

Each golden_<group>.py script imports this and calls save() once per case;
the Go suite (conformance_test.go, readGoldens) reads the JSON files.
Run with Debian's interpreter, which has python3-torch:
    /usr/bin/python3 kernels/testdata/golden_<group>.py
"""
import json
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def tensor(x):
    """A tensor as the JSON the suite reads: shape and float32 values."""
    x = torch.as_tensor(x).detach().to(torch.float32).contiguous()
    # float32 values printed with repr of their float64 value: exact.
    return {"shape": list(x.shape), "data": [float(v) for v in x.reshape(-1).tolist()]}


def save(group, name, op, params, tensors):
    """Write testdata/golden/<group>/<name>.json."""
    d = os.path.join(HERE, "golden", group)
    os.makedirs(d, exist_ok=True)
    doc = {"op": op, "params": params,
           "tensors": {k: tensor(v) for k, v in tensors.items()}}
    with open(os.path.join(d, name + ".json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def seeded(seed):
    """A torch Generator with a fixed seed, so `make goldens` reproduces the files."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g
