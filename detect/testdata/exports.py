"""Makes three exports of one small random YOLO-style detector (seed 0):
grid.onnx, its raw head [N, 8, 8, 8] (stride 8, one 14x14 anchor, YOLOv5
decoding); yolov5_style.onnx, the same with the decoding in the graph laid
out as YOLOv5 exports are ([N, P, 5+C]: cx, cy, w, h, objectness, class
probabilities); yolov8_style.onnx, laid out as YOLOv8 exports are
([N, 4+C, P]: cx, cy, w, h, objectness x class probability). The tests
check that loupe reads all three alike (detections and box-target
gradients).

    /usr/bin/python3 detect/testdata/exports.py    (torch; a second)
"""
import os

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
S, STRIDE, ANCHOR, NC = 64, 8, 14.0, 3
G = S // STRIDE


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 8, stride=8)
        self.head = nn.Conv2d(8, 5 + NC, 1)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)))


class Decoded(nn.Module):
    def __init__(self, net, columns):
        super().__init__()
        self.net, self.columns = net, columns

    def forward(self, x):
        out = self.net(x)
        n = out.shape[0]
        s = torch.sigmoid(out)
        gy, gx = torch.meshgrid(torch.arange(G), torch.arange(G), indexing="ij")
        cx = (2 * s[:, 0] - 0.5 + gx) * STRIDE
        cy = (2 * s[:, 1] - 0.5 + gy) * STRIDE
        w = (2 * s[:, 2]) ** 2 * ANCHOR
        h = (2 * s[:, 3]) ** 2 * ANCHOR
        box = torch.stack([cx, cy, w, h], 1)
        if self.columns:
            return torch.cat([box, s[:, 4:5] * s[:, 5:]], 1).reshape(n, 4 + NC, -1)
        return torch.cat([box, s[:, 4:]], 1).reshape(n, 5 + NC, -1).transpose(1, 2)


def main():
    torch.manual_seed(0)
    net = Head().eval()
    x = torch.zeros(1, 3, S, S)
    for name, model in [("grid.onnx", net), ("yolov5_style.onnx", Decoded(net, False)),
                        ("yolov8_style.onnx", Decoded(net, True))]:
        torch.onnx.export(model, (x,), os.path.join(HERE, name), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=13)


if __name__ == "__main__":
    main()
