#!/usr/bin/python3
"""DeepLift (rescale rule, Captum's MaxPool rule) on torchvision's resnet18 in
plain torch, as Captum's DeepLift computes it: the input and the zero baseline
in one batch of 2, ReLU and MaxPool backward passes replaced. Prints the median
time of R runs after a warm-up.  Usage: torch_deeplift.py [R]"""
import statistics, sys, time
import torch, torch.nn as nn, torch.nn.functional as F, torchvision
torch.set_num_threads(2)
EPS = 1e-10

class Rescale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.relu(x)
        ctx.save_for_backward(x, y)
        return y
    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        n = x.shape[0] // 2
        dx = (x[:n] - x[n:]).repeat(2, 1, 1, 1)
        dy = (y[:n] - y[n:]).repeat(2, 1, 1, 1)
        return torch.where(dx.abs() < EPS, g * (x > 0), g * dy / dx)

class MaxPoolRule(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
        ctx.save_for_backward(x, y, idx)
        return y
    @staticmethod
    def backward(ctx, g):
        x, y, idx = ctx.saved_tensors
        n = x.shape[0] // 2
        size = x.shape[2:]
        plain = F.max_unpool2d(g, idx, 3, 2, 1, output_size=size)
        m = torch.max(y[:n], y[n:])
        un = F.max_unpool2d(torch.cat([g[:n] * (m - y[n:]), g[n:] * (y[:n] - m)]), idx, 3, 2, 1, output_size=size)
        s = (un[:n] + un[n:]).repeat(2, 1, 1, 1)
        dx = (x[:n] - x[n:]).repeat(2, 1, 1, 1)
        return torch.where(dx.abs() < EPS, plain, s / dx)

class R(nn.Module):
    def forward(self, x): return Rescale.apply(x)
class P(nn.Module):
    def forward(self, x): return MaxPoolRule.apply(x)

def patch(m):
    for name, c in m.named_children():
        if isinstance(c, nn.ReLU): setattr(m, name, R())
        elif isinstance(c, nn.MaxPool2d): setattr(m, name, P())
        else: patch(c)

torch.manual_seed(0)
r18 = torchvision.models.resnet18().eval()
patch(r18)
x = torch.rand(10, 3, 224, 224)[:1]

def deeplift(x, target=0):
    inp = torch.cat([x, torch.zeros_like(x)]).requires_grad_()
    out = r18(inp)
    g = torch.autograd.grad(out[:, target].sum(), inp)[0]
    return (x - 0) * g[:1]

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
deeplift(x)
ts = []
for _ in range(runs):
    t0 = time.perf_counter(); deeplift(x); ts.append(time.perf_counter() - t0)
print("deeplift min %.4f med %.4f" % (min(ts), statistics.median(ts)))
