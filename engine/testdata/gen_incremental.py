"""Exports incremental_ops.onnx, the model of engine/incremental_test.go: a
small CNN with the ops incremental inference crops (dilated, grouped,
strided and non-square convolutions, BatchNorm, MaxPool in ceil mode,
AveragePool with and without padding, Clip, Sigmoid, LeakyRelu, Add, Sub,
Mul, Concat) before a global mean. Run from the repository root with
/usr/bin/python3 engine/testdata/gen_incremental.py."""
import torch, torch.nn as nn
torch.manual_seed(0)
class M(nn.Module):
    def __init__(s):
        super().__init__()
        s.c1 = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        s.bn = nn.BatchNorm2d(8)
        s.mp = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        s.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        s.ap1 = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        s.down = nn.Conv2d(8, 16, 1, stride=2)
        s.c2 = nn.Conv2d(8, 16, (3, 5), stride=2, padding=(1, 2))
        s.c2b = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        s.ap2 = nn.AvgPool2d(2, stride=2)
        s.c3 = nn.Conv2d(20, 20, 3, padding=1, bias=False)
        s.fc = nn.Linear(20, 5)
    def forward(s, x):
        y = torch.relu(s.bn(s.c1(x)))
        y = s.mp(y)
        y = torch.clamp(s.dw(y), 0, 6) + y
        y = s.ap1(y)
        z = torch.cat([s.c2(y) + s.down(y), s.c2b(y)], 1)
        z = z * torch.sigmoid(z)
        z = nn.functional.leaky_relu(s.ap2(z), 0.1)
        z = s.c3(z) - 0.5 * z
        return s.fc(z.mean(dim=(2, 3)))
m = M()
with torch.no_grad():
    m.bn.running_mean.uniform_(-0.5, 0.5); m.bn.running_var.uniform_(0.5, 2); m.bn.weight.uniform_(0.5, 1.5)
m.eval()
torch.onnx.export(m, torch.randn(1, 3, 40, 40), "engine/testdata/incremental_ops.onnx", input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=13)
