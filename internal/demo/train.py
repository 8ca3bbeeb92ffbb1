"""Trains loupe's built-in demo model: a small CNN that tells three shapes
(square, disc, triangle) on noisy backgrounds apart, and exports it to
shapes_cnn.onnx next to this file. The shapes are drawn as in shapes.go
(same sizes, positions, colours and noise), so the pixels that matter are
known: the shape's.

    /usr/bin/python3 internal/demo/train.py     (needs python3-torch)
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
S = 32


def draw(kind, rng):
    """Returns an image [3, S, S] in [0, 1] and the shape's mask [S, S]."""
    img = rng.uniform(0.0, 0.5, size=(3, S, S)).astype(np.float32)
    r = rng.integers(5, 9)
    cy, cx = rng.integers(r + 1, S - r - 1, size=2)
    yy, xx = np.mgrid[0:S, 0:S]
    if kind == 0:  # square
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    elif kind == 1:  # disc
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    else:  # triangle pointing up
        mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
    colour = rng.uniform(0.6, 1.0, size=3).astype(np.float32)
    for c in range(3):
        img[c][mask] = colour[c]
    return img, mask


class ShapesCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(256, 3)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 6000
    xs, ys = [], []
    for i in range(n):
        k = i % 3
        img, _ = draw(k, rng)
        xs.append(img)
        ys.append(k)
    x = torch.tensor(np.stack(xs))
    y = torch.tensor(ys)
    model = ShapesCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(8):
        perm = torch.randperm(n)
        for i in range(0, n, 100):
            idx = perm[i:i + 100]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (model(x[:600]).argmax(1) == y[:600]).float().mean().item()
        print(f"epoch {epoch}: loss {loss.item():.3f} accuracy {acc:.3f}")
    model.eval()
    test = [draw(i % 3, np.random.default_rng(1000 + i)) for i in range(300)]
    tx = torch.tensor(np.stack([t[0] for t in test]))
    with torch.no_grad():
        acc = (model(tx).argmax(1) == torch.tensor([i % 3 for i in range(300)])).float().mean().item()
    print(f"held-out accuracy {acc:.3f}")
    torch.onnx.export(model, (x[:1],), os.path.join(HERE, "shapes_cnn.onnx"), input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      opset_version=13)


if __name__ == "__main__":
    main()
