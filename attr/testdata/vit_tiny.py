"""Makes vit_tiny.onnx, a tiny ViT-like model for the CAM methods'
reshape_transform (attr.TokenGrid), and vit_tiny.json, the GradCAM and
EigenCAM maps computed here the way pytorch-grad-cam computes them with its
ViT reshape_transform (drop the class token, tokens to a 4x4 grid, channels
first):

    /usr/bin/python3 attr/testdata/vit_tiny.py      (torch; a second)
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


class ViTTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.mix = nn.Linear(8, 8)
        self.block = nn.ReLU()
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)  # [N, 16, 8]
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1)  # [N, 17, 8]
        t = self.block(self.mix(t) + t)
        return self.head(t.mean(1))


def reshape_transform(t):
    r = t[:, 1:, :].reshape(t.size(0), 4, 4, t.size(2))
    return r.transpose(2, 3).transpose(1, 2)


def scale(cam, size):
    """pytorch-grad-cam's scaling: relu, min-max, bilinear resize (half-pixel), min-max."""
    cam = torch.clamp(cam, min=0)
    cam = cam - cam.amin((1, 2), keepdim=True)
    cam = cam / (1e-7 + cam.amax((1, 2), keepdim=True))
    cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    cam = torch.clamp(cam, min=0)
    cam = cam - cam.amin((1, 2), keepdim=True)
    return cam / (1e-7 + cam.amax((1, 2), keepdim=True))


def main():
    torch.manual_seed(0)
    m = ViTTiny().eval()
    x = torch.randn(2, 3, 16, 16)
    targets = [2, 0]
    acts = {}
    m.block.register_forward_hook(lambda mod, i, o: acts.__setitem__("a", o))
    out = m(x)
    a = acts["a"]
    g, = torch.autograd.grad(out[torch.arange(2), targets].sum(), a)
    A, G = reshape_transform(a).detach().double(), reshape_transform(g).double()
    gradcam = (G.mean((2, 3), keepdim=True) * A).sum(1)
    # EigenCAM: first principal component of the [h*w, C] activations, sign as numpy's SVD gives it.
    eig = []
    for e in range(2):
        M = A[e].reshape(8, -1).T
        M = M - M.mean(0)
        _, _, vt = torch.linalg.svd(M, full_matrices=False)
        eig.append((M @ vt[0]).reshape(4, 4))
    eig = torch.stack(eig)
    torch.onnx.export(m, (x,), os.path.join(HERE, "vit_tiny.onnx"), input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=13)
    rec = {"input": x.flatten().tolist(), "targets": targets,
           "gradcam_layer": gradcam.flatten().tolist(), "gradcam": scale(gradcam, (16, 16)).flatten().tolist(),
           "eigencam_layer_abs": eig.abs().flatten().tolist()}
    with open(os.path.join(HERE, "vit_tiny.json"), "w") as f:
        json.dump(rec, f)


if __name__ == "__main__":
    main()
