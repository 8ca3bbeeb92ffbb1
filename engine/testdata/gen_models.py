"""Exports small PyTorch models that exercise ops beyond the oracle's
(recurrent layers, normalisation, shape arithmetic) to ONNX, with inputs and
PyTorch's outputs, for engine tests. Run with Debian's python3-torch:

    /usr/bin/python3 engine/testdata/gen_models.py

The tests read only the files this writes; they do not need PyTorch.
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
HERE = os.path.dirname(os.path.abspath(__file__))


class Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.gru = nn.GRU(6, 5, batch_first=True)
        self.norm = nn.LayerNorm(5)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        h, _ = self.lstm(x)
        h, _ = self.gru(h)
        h = F.gelu(self.norm(h))
        h = self.fc(h.mean(dim=1))
        h = F.elu(F.leaky_relu(h, 0.1)) + F.softplus(h)
        return F.log_softmax(torch.clamp(h, -1.5, 1.5), dim=1)


class Shapes(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 4))

    def forward(self, x):  # x: [N, 3, 8, 6]
        a = x[:, :, 1:-1, ::2]                    # Slice with negative end and step
        a = torch.where(a > 0, a, 0.1 * a)        # Where, Greater, Mul
        b, c = torch.split(a, [1, 2], dim=1)      # Split
        d = torch.cat([c, b * b], dim=1)          # Concat, Mul
        e = d.reshape(d.shape[0], 3, -1)         # Shape arithmetic, Reshape
        m = e.max(dim=2, keepdim=True).values     # ReduceMax
        e = e - m + torch.sqrt(e.abs() + 1.0)     # Sub, Sqrt, Abs, Add
        f = e.transpose(1, 2)[:, :6, :]           # Transpose, Slice
        g = torch.matmul(f.transpose(1, 2), self.w)  # MatMul with batch dims
        return torch.tanh(g).sum(dim=2) / 2.0 + torch.exp(-g.pow(2)).mean(dim=2)


class Spatial(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.up = nn.ConvTranspose2d(3, 2, 2, stride=2)

    def forward(self, x):  # x: [N, 2, 6, 6]
        a = F.pad(x, (1, 2, 1, 0), mode="reflect")
        a = F.pad(self.conv(a), (1, 1, 1, 1), value=0.5)
        a = F.interpolate(a, scale_factor=2, mode="nearest")
        a = F.interpolate(a, size=(9, 7), mode="bilinear", align_corners=False)
        a = self.up(F.adaptive_max_pool2d(a, 1) * a)
        return F.instance_norm(a).flatten(1)[:, :10]


def export(name, model, x, opset):
    model.eval()
    with torch.no_grad():
        y = model(x)
    path = os.path.join(HERE, name + ".onnx")
    torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=opset)
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump({"input": {"shape": list(x.shape), "data": x.flatten().tolist()},
                   "output": {"shape": list(y.shape), "data": y.flatten().tolist()},
                   "opset": opset}, f)


export("seq_op17", Seq(), torch.randn(2, 5, 4), 17)
export("seq_op13", Seq(), torch.randn(2, 5, 4), 13)
export("shapes_op13", Shapes(), torch.randn(2, 3, 8, 6), 13)
export("spatial_op13", Spatial(), torch.randn(2, 2, 6, 6), 13)
