"""Makes two exports of one small random multi-level YOLO-style head (seed 0)
on 64x96 inputs (height x width): levels.onnx, its raw levels as three
outputs p3 [N, 14, 8, 12], p4 [N, 14, 4, 6], p5 [N, 14, 2, 3] (strides 8,
16, 32; two anchors per level; 4 box numbers, an objectness and 2 classes
per anchor), as a YOLOv5 model exported without its Detect layer's
decoding; levels_5d.onnx, the same levels laid out as YOLOv5's Detect
layer returns them in training mode, [N, 2, H, W, 7]; and levels_rows.onnx, the same network with YOLOv5's decoding
and concatenation in the graph ([N, 252, 7]: cx, cy, w, h, objectness,
class probabilities; level by level, then anchor, row, column). The tests
check that loupe, joining the three levels itself, decodes the predictions
PyTorch decodes and gives the same box-target gradients.

    /usr/bin/python3 detect/testdata/levels.py    (torch; a second)
"""
import os

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
H, W, NC, NA = 64, 96, 2, 2
STRIDES = [8, 16, 32]
ANCHORS = [[(10, 13), (16, 30)], [(30, 61), (62, 45)], [(59, 119), (116, 90)]]
K = 5 + NC


class Levels(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 8, stride=8)
        self.down1 = nn.Conv2d(6, 6, 2, stride=2)
        self.down2 = nn.Conv2d(6, 6, 2, stride=2)
        self.heads = nn.ModuleList(nn.Conv2d(6, NA * K, 1) for _ in STRIDES)

    def forward(self, x):
        a = torch.relu(self.stem(x))
        b = torch.relu(self.down1(a))
        c = torch.relu(self.down2(b))
        return tuple(h(f) for h, f in zip(self.heads, (a, b, c)))


def decode(outs):
    """YOLOv5's Detect decoding of raw levels into [N, P, 5+NC] rows."""
    rows = []
    for out, s, anchors in zip(outs, STRIDES, ANCHORS):
        n, _, ny, nx = out.shape
        y = torch.sigmoid(out.view(n, NA, K, ny, nx).permute(0, 1, 3, 4, 2))
        gy, gx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        grid = torch.stack([gx, gy], -1).float()
        anc = torch.tensor(anchors, dtype=torch.float32).view(1, NA, 1, 1, 2)
        xy = (y[..., :2] * 2 - 0.5 + grid) * s
        wh = (y[..., 2:4] * 2) ** 2 * anc
        rows.append(torch.cat([xy, wh, y[..., 4:]], -1).reshape(n, -1, K))
    return torch.cat(rows, 1)


class Levels5D(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return tuple(o.view(o.shape[0], NA, K, o.shape[2], o.shape[3]).permute(0, 1, 3, 4, 2).contiguous()
                     for o in self.net(x))


class Rows(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return decode(self.net(x))


def main():
    torch.manual_seed(0)
    net = Levels().eval()
    x = torch.zeros(1, 3, H, W)
    names = ["p3", "p4", "p5"]
    torch.onnx.export(net, (x,), os.path.join(HERE, "levels.onnx"), input_names=["input"], output_names=names,
                      dynamic_axes={"input": {0: "batch"}, **{k: {0: "batch"} for k in names}}, opset_version=13)
    torch.onnx.export(Levels5D(net), (x,), os.path.join(HERE, "levels_5d.onnx"), input_names=["input"],
                      output_names=names, dynamic_axes={"input": {0: "batch"}, **{k: {0: "batch"} for k in names}},
                      opset_version=13)
    torch.onnx.export(Rows(net), (x,), os.path.join(HERE, "levels_rows.onnx"), input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      opset_version=13)


if __name__ == "__main__":
    main()
