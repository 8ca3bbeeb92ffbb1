"""Trains loupe's built-in demo detector: a small YOLO-style single-stage
detector that finds squares, discs and triangles in 64x64 scenes of one to
three shapes on noisy backgrounds, and exports it to shapes_det.onnx next
to this file. The scenes are drawn as in detect_scene.go (same sizes,
positions, colours and noise distributions), so every box is known.

The model ends in raw grid outputs, as a YOLOv5 detection head before its
decoding: one output [N, 5+3, 8, 8] (stride 8, one anchor of 14x14
pixels), channels tx, ty, tw, th, objectness and one logit per class.
loupe decodes it in Go (detect.Config, written in detect_config.json):

    cx = (2*sigmoid(tx) - 0.5 + gx) * 8     w = (2*sigmoid(tw))^2 * 14
    cy = (2*sigmoid(ty) - 0.5 + gy) * 8     h = (2*sigmoid(th))^2 * 14
    score(class c) = sigmoid(obj) * sigmoid(logit c)

The cell that holds a shape's centre is responsible for it.

    /usr/bin/python3 internal/demo/detect_train.py   (needs torch; about 2 minutes of CPU, 6 on a loaded machine)

Seed 0 (numpy and torch); the held-out scenes use seeds 1000 and up.
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
S = 64                 # image side (demo.SceneSize)
RMIN, RMAX = 5, 9      # shape radius range, inclusive
STRIDE = 8
G = S // STRIDE        # grid side
ANCHOR = 14.0
NC = 3
EPOCHS = 14
N_TRAIN = 5000


def shape_mask(kind, cy, cx, r):
    yy, xx = np.mgrid[0:S, 0:S]
    if kind == 0:  # square
        return (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    if kind == 1:  # disc
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)  # triangle


def scene(rng):
    """Returns an image [3, S, S] in [0, 1] and the objects: (class, x1, y1, x2, y2)."""
    img = rng.uniform(0.0, 0.5, size=(3, S, S)).astype(np.float32)
    n = rng.integers(1, 4)
    objs = []
    tries = 0
    while len(objs) < n and tries < 50:
        tries += 1
        kind = int(rng.integers(0, NC))
        r = int(rng.integers(RMIN, RMAX + 1))
        cy, cx = rng.integers(r + 1, S - r - 1, size=2)
        box = (cx - r, cy - r, cx + r + 1, cy + r + 1)
        # keep boxes apart (2 pixels) and their centres in different cells
        if any(box[0] < o[3] + 2 and o[1] < box[2] + 2 and box[1] < o[4] + 2 and o[2] < box[3] + 2 for o in objs):
            continue
        if any((cx // STRIDE, cy // STRIDE) == ((o[1] + o[3]) // 2 // STRIDE, (o[2] + o[4]) // 2 // STRIDE) for o in objs):
            continue
        mask = shape_mask(kind, cy, cx, r)
        colour = rng.uniform(0.6, 1.0, size=3).astype(np.float32)
        for c in range(3):
            img[c][mask] = colour[c]
        objs.append((kind, int(box[0]), int(box[1]), int(box[2]), int(box[3])))
    return img, objs


class ShapesDet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv4 = nn.Conv2d(32, 32, 3, padding=1)
        self.head = nn.Conv2d(32, 5 + NC, 1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        x = F.relu(self.conv4(x))
        return self.head(x)


def targets(objs_list):
    """Per-cell targets: mask [N,G,G], box targets [N,4,G,G] in sigmoid space, class [N,G,G]."""
    n = len(objs_list)
    pos = torch.zeros(n, G, G)
    tb = torch.zeros(n, 4, G, G)
    tc = torch.zeros(n, NC, G, G)
    for i, objs in enumerate(objs_list):
        for k, x1, y1, x2, y2 in objs:
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            gx, gy = int(cx // STRIDE), int(cy // STRIDE)
            pos[i, gy, gx] = 1
            tb[i, 0, gy, gx] = (cx / STRIDE - gx + 0.5) / 2
            tb[i, 1, gy, gx] = (cy / STRIDE - gy + 0.5) / 2
            tb[i, 2, gy, gx] = (w / ANCHOR) ** 0.5 / 2
            tb[i, 3, gy, gx] = (h / ANCHOR) ** 0.5 / 2
            tc[i, k, gy, gx] = 1
    return pos, tb, tc


def decode(out):
    """Boxes [N,G*G,4] (x1,y1,x2,y2) and scores [N,G*G,NC] from raw outputs."""
    n = out.shape[0]
    s = torch.sigmoid(out)
    gy, gx = torch.meshgrid(torch.arange(G), torch.arange(G), indexing="ij")
    cx = (2 * s[:, 0] - 0.5 + gx) * STRIDE
    cy = (2 * s[:, 1] - 0.5 + gy) * STRIDE
    w = (2 * s[:, 2]) ** 2 * ANCHOR
    h = (2 * s[:, 3]) ** 2 * ANCHOR
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).reshape(n, -1, 4)
    scores = (s[:, 4:5] * s[:, 5:]).permute(0, 2, 3, 1).reshape(n, -1, NC)
    return boxes, scores


def iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def evaluate(model, tx, tobjs):
    """Recall and precision at IoU 0.5 with score threshold 0.5 (cells, no NMS needed: one cell per object)."""
    with torch.no_grad():
        boxes, scores = decode(model(tx))
    hit = found = total = 0
    for i, objs in enumerate(tobjs):
        total += len(objs)
        best, cls = scores[i].max(-1)
        dets = [(int(cls[p]), boxes[i, p].tolist()) for p in range(G * G) if best[p] > 0.5]
        found += len(dets)
        for k, *b in objs:
            if any(c == k and iou(d, b) >= 0.5 for c, d in dets):
                hit += 1
    return hit / total, hit / max(found, 1)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    data = [scene(rng) for _ in range(N_TRAIN)]
    x = torch.tensor(np.stack([d[0] for d in data]))
    pos, tb, tc = targets([d[1] for d in data])
    test = [scene(np.random.default_rng(1000 + i)) for i in range(300)]
    tx = torch.tensor(np.stack([t[0] for t in test]))
    model = ShapesDet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(N_TRAIN)
        for i in range(0, N_TRAIN, 50):
            idx = perm[i:i + 50]
            out = model(x[idx])
            p, b, c = pos[idx], tb[idx], tc[idx]
            obj = F.binary_cross_entropy_with_logits(out[:, 4], p)
            m = p[:, None]
            box = ((torch.sigmoid(out[:, :4]) - b) ** 2 * m).sum() / m.sum().clamp(min=1) * 4
            cls = (F.binary_cross_entropy_with_logits(out[:, 5:], c, reduction="none") * m).sum() / m.sum().clamp(min=1)
            loss = 5 * obj + 20 * box + cls
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        rec, prec = evaluate(model, tx, [t[1] for t in test])
        print(f"epoch {epoch}: loss {loss.item():.3f} held-out recall {rec:.3f} precision {prec:.3f} (IoU 0.5, score 0.5)",
              flush=True)
    torch.onnx.export(model, (x[:1],), os.path.join(HERE, "shapes_det.onnx"), input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      opset_version=13)


if __name__ == "__main__":
    main()
