"""Trains loupe's built-in demo model: a small CNN that tells three shapes
(square, disc, triangle) on noisy backgrounds apart, and exports it to
shapes_cnn.onnx next to this file. The shapes are drawn as in demo.go
(same sizes, positions, colours and noise), so the pixels that matter are
known: the shape's.

The first layer sees one pixel at a time (1x1 convolution) and an L1
penalty on its activations asks it to stay silent where it can: on the
background. So the model reads the shapes' pixels, not the noise around
them, and "the shape's pixels" is the right answer for the model, not just
for the data. The last convolution runs at full resolution (pooling comes
after it), so that Grad-CAM's map is as sharp as the layer allows.

    /usr/bin/python3 internal/demo/train.py     (needs python3-torch; about 5 minutes)
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
S = 48                 # image side (demo.Size)
RMIN, RMAX = 8, 13     # shape radius range, inclusive
L1 = 1.0               # weight of the first layer's activation penalty
EPOCHS = 24


def draw(kind, rng):
    """Returns an image [3, S, S] in [0, 1] and the shape's mask [S, S]."""
    img = rng.uniform(0.0, 0.5, size=(3, S, S)).astype(np.float32)
    r = rng.integers(RMIN, RMAX + 1)
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
        self.conv1 = nn.Conv2d(3, 4, 1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.relu3 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.pool3 = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(256, 3)

    def forward(self, x):
        a1 = self.relu1(self.conv1(x))
        self.act1 = a1
        x = self.relu2(self.conv2(a1))
        x = self.pool3(self.pool2(self.relu3(self.conv3(x))))
        return self.fc(torch.flatten(x, 1))


def saliency_share(model, x, mask):
    """Mean share of |gradient| of the predicted class on the shapes."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    g, = torch.autograd.grad(out.gather(1, out.argmax(1)[:, None]).sum(), x)
    s = g.abs().sum(1)
    return ((s * mask).sum((1, 2)) / s.sum((1, 2)).clamp(min=1e-12)).mean().item()


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 6000
    xs, ys = [], []
    for i in range(n):
        img, _ = draw(i % 3, rng)
        xs.append(img)
        ys.append(i % 3)
    x = torch.tensor(np.stack(xs))
    y = torch.tensor(ys)
    test = [draw(i % 3, np.random.default_rng(1000 + i)) for i in range(300)]
    tx = torch.tensor(np.stack([t[0] for t in test]))
    tm = torch.tensor(np.stack([t[1] for t in test])).float()
    ty = torch.tensor([i % 3 for i in range(300)])
    model = ShapesCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, 100):
            idx = perm[i:i + 100]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx]) + L1 * model.act1.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(tx).argmax(1) == ty).float().mean().item()
        print(f"epoch {epoch}: loss {loss.item():.3f} held-out accuracy {acc:.3f} "
              f"saliency on the shapes {saliency_share(model, tx, tm):.2f}", flush=True)
    torch.onnx.export(model, (x[:1],), os.path.join(HERE, "shapes_cnn.onnx"), input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      opset_version=13)


if __name__ == "__main__":
    main()
