# Generates testdata/torch_golden.json: PyTorch reference values for nnops.
import json, torch
import torch.nn.functional as F

torch.manual_seed(0)
cases = []

def T(t):
    return {"shape": list(t.shape), "data": [float(f"{v:.8g}") for v in t.detach().reshape(-1).tolist()]}

def add(name, op, attrs, inputs, fn, opset=13, extra=None, grad=True):
    """inputs: list of tensors (float) or ("int", list) ; fn maps the float inputs to the output."""
    xs = [x.clone().requires_grad_(True) for x in inputs]
    y = fn(*xs)
    case = {"name": name, "op": op, "opset": opset, "attrs": attrs,
            "inputs": [T(x) for x in inputs], "extra": extra or [], "output": T(y)}
    if grad:
        gy = torch.randn_like(y)
        gs = torch.autograd.grad(y, xs, gy)
        case["gout"] = T(gy)
        case["grads"] = [T(g) for g in gs]
    cases.append(case)

def ints(*v): return {"type": "ints", "v": list(v)}
def i(v): return {"type": "int", "v": v}
def s(v): return {"type": "string", "v": v}
def f(v): return {"type": "float", "v": v}

def tied(*shape):
    return torch.randint(0, 4, shape).float()

# MaxPool: ties everywhere (integer values), padding, ceil_mode, dilation.
x = tied(2, 2, 7, 8)
add("maxpool 3x3 s2 p1 ties", "MaxPool", {"kernel_shape": ints(3, 3), "strides": ints(2, 2), "pads": ints(1, 1, 1, 1)}, [x],
    lambda x: F.max_pool2d(x, 3, 2, 1))
x = tied(1, 2, 8, 9)
add("maxpool 3x3 s2 ceil ties", "MaxPool", {"kernel_shape": ints(3, 3), "strides": ints(2, 2), "ceil_mode": i(1)}, [x],
    lambda x: F.max_pool2d(x, 3, 2, 0, ceil_mode=True))
x = tied(1, 2, 9, 10)
add("maxpool 2x3 dil ceil pads", "MaxPool", {"kernel_shape": ints(2, 3), "strides": ints(2, 3), "pads": ints(1, 1, 1, 1), "dilations": ints(2, 1), "ceil_mode": i(1)}, [x],
    lambda x: F.max_pool2d(x, (2, 3), (2, 3), (1, 1), dilation=(2, 1), ceil_mode=True))
x = torch.randn(1, 3, 6, 6)
add("maxpool 2x2 random", "MaxPool", {"kernel_shape": ints(2, 2), "strides": ints(2, 2)}, [x], lambda x: F.max_pool2d(x, 2, 2))
x = tied(2, 3, 11)
add("maxpool1d ceil pads ties", "MaxPool", {"kernel_shape": ints(3), "strides": ints(2), "pads": ints(1, 1), "ceil_mode": i(1)}, [x],
    lambda x: F.max_pool1d(x, 3, 2, 1, ceil_mode=True))
x = -torch.rand(1, 1, 4, 4) - 1
add("maxpool negatives pads", "MaxPool", {"kernel_shape": ints(3, 3), "strides": ints(1, 1), "pads": ints(1, 1, 1, 1)}, [x],
    lambda x: F.max_pool2d(x, 3, 1, 1))

# AveragePool: count_include_pad, ceil_mode, 1-D.
for cip in (0, 1):
    for ceil in (0, 1):
        x = torch.randn(2, 2, 7, 8)
        add(f"avgpool 3x3 s2 p1 cip{cip} ceil{ceil}", "AveragePool",
            {"kernel_shape": ints(3, 3), "strides": ints(2, 2), "pads": ints(1, 1, 1, 1), "count_include_pad": i(cip), "ceil_mode": i(ceil)}, [x],
            lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=bool(ceil), count_include_pad=bool(cip)))
        x = torch.randn(1, 2, 10)
        add(f"avgpool1d k4 s3 p2 cip{cip} ceil{ceil}", "AveragePool",
            {"kernel_shape": ints(4), "strides": ints(3), "pads": ints(2, 2), "count_include_pad": i(cip), "ceil_mode": i(ceil)}, [x],
            lambda x: F.avg_pool1d(x, 4, 3, 2, ceil_mode=bool(ceil), count_include_pad=bool(cip)))
x = torch.randn(1, 2, 5, 6)
add("avgpool 2x3 ceil no pads", "AveragePool", {"kernel_shape": ints(2, 3), "strides": ints(2, 2), "ceil_mode": i(1)}, [x],
    lambda x: F.avg_pool2d(x, (2, 3), 2, 0, ceil_mode=True))
# AdaptiveAvgPool2d((2,2)) on 6x6 is exported as AveragePool kernel 3 stride 3.
x = torch.randn(1, 3, 6, 6)
add("adaptive avgpool", "AveragePool", {"kernel_shape": ints(3, 3), "strides": ints(3, 3)}, [x], lambda x: F.adaptive_avg_pool2d(x, (2, 2)))
x = torch.randn(2, 3, 5, 4)
add("global avgpool", "GlobalAveragePool", {}, [x], lambda x: F.adaptive_avg_pool2d(x, 1))
x = torch.randn(2, 3, 5, 4)
add("global maxpool", "GlobalMaxPool", {}, [x], lambda x: F.adaptive_max_pool2d(x, 1))

# Resize / interpolate.
def resize(name, x, size, mode, attrs, align=None, opset=13):
    kw = {} if align is None else {"align_corners": align}
    add(name, "Resize", attrs, [x], lambda x: F.interpolate(x, size=size, mode=mode, **kw), opset=opset,
        extra=[None, None, {"int64": [x.shape[0], x.shape[1]] + list(size)}])
def resize_scale(name, x, scale, mode, attrs, align=None, opset=13):
    kw = {} if align is None else {"align_corners": align}
    sc = scale if isinstance(scale, tuple) else (scale,) * (x.dim() - 2)
    add(name, "Resize", attrs, [x], lambda x: F.interpolate(x, scale_factor=scale, mode=mode, **kw), opset=opset,
        extra=[None, {"float": [1.0, 1.0] + [float(v) for v in sc]}])

nn_attrs = {"mode": s("nearest"), "coordinate_transformation_mode": s("asymmetric"), "nearest_mode": s("floor")}
resize("nearest up 3x5->7x8", torch.randn(1, 2, 3, 5), (7, 8), "nearest", nn_attrs)
resize("nearest down 7x8->3x5", torch.randn(1, 2, 7, 8), (3, 5), "nearest", nn_attrs)
resize_scale("nearest scale 2", torch.randn(2, 2, 3, 4), 2.0, "nearest", nn_attrs)
for align in (False, True):
    ctm = "align_corners" if align else "pytorch_half_pixel"
    at = {"mode": s("linear"), "coordinate_transformation_mode": s(ctm)}
    resize(f"bilinear up align{align}", torch.randn(1, 2, 3, 5), (7, 8), "bilinear", at, align)
    resize(f"bilinear down align{align}", torch.randn(1, 2, 7, 8), (3, 5), "bilinear", at, align)
    resize(f"linear 1d align{align}", torch.randn(1, 2, 5), (9,), "linear", at, align)
    resize_scale(f"bilinear scale 2 align{align}", torch.randn(1, 2, 3, 4), 2.0, "bilinear", at, align)
at = {"mode": s("linear"), "coordinate_transformation_mode": s("half_pixel")}
resize_scale("bilinear half_pixel scale 2 opset11", torch.randn(1, 2, 3, 4), 2.0, "bilinear", at, False, opset=11)

# ConvTranspose.
x, w, b = torch.randn(2, 4, 3, 4), torch.randn(4, 3, 3, 2), torch.randn(6)
add("convtranspose s2 p1 op1 dil groups", "ConvTranspose",
    {"strides": ints(2, 2), "pads": ints(1, 0, 1, 0), "output_padding": ints(1, 1), "dilations": ints(1, 2), "group": i(2)}, [x, w, b],
    lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=(1, 0), output_padding=1, groups=2, dilation=(1, 2)))
x, w = torch.randn(1, 2, 5), torch.randn(2, 3, 4)
add("convtranspose1d s3 p2", "ConvTranspose", {"strides": ints(3), "pads": ints(2, 2)}, [x, w],
    lambda x, w: F.conv_transpose1d(x, w, stride=3, padding=2))

# Conv.
x, w, b = torch.randn(2, 4, 9, 8), torch.randn(6, 2, 3, 3), torch.randn(6)
add("conv groups stride dil pads", "Conv", {"strides": ints(2, 1), "pads": ints(2, 1, 2, 1), "dilations": ints(2, 1), "group": i(2)}, [x, w, b],
    lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(2, 1), dilation=(2, 1), groups=2))
x, w = torch.randn(1, 6, 7, 7), torch.randn(6, 1, 3, 3)
add("conv depthwise", "Conv", {"pads": ints(1, 1, 1, 1), "group": i(6), "strides": ints(2, 2)}, [x, w],
    lambda x, w: F.conv2d(x, w, None, stride=2, padding=1, groups=6))

# Pad.
x = torch.randn(1, 2, 4, 5)
for mode, tm in (("constant", "constant"), ("reflect", "reflect"), ("edge", "replicate")):
    add(f"pad {mode}", "Pad", {"mode": s(mode)}, [x], lambda x: F.pad(x, (2, 1, 3, 0), mode=tm),
        extra=[{"int64": [0, 0, 3, 2, 0, 0, 0, 1]}])

# BatchNorm (eval).
x, sc, bi, m, v = torch.randn(2, 3, 4, 5), torch.randn(3), torch.randn(3), torch.randn(3), torch.rand(3) + 0.5
add("batchnorm eval", "BatchNormalization", {"epsilon": f(1e-5)}, [x, sc, bi], lambda x, sc, bi: F.batch_norm(x, m, v, sc, bi, False, 0.1, 1e-5),
    extra=[{"float": m.tolist(), "shape": [3]}, {"float": v.tolist(), "shape": [3]}])

# LRN (odd size: PyTorch's window matches ONNX's).
x = torch.randn(2, 7, 3, 2)
add("lrn size 5", "LRN", {"size": i(5), "alpha": f(0.01), "beta": f(0.75), "bias": f(2.0)}, [x],
    lambda x: F.local_response_norm(x, 5, alpha=0.01, beta=0.75, k=2.0))
x = torch.randn(1, 4, 5)
add("lrn size 3 defaults", "LRN", {"size": i(3)}, [x], lambda x: F.local_response_norm(x, 3))

json.dump(cases, open("/work/main/engine/internal/ops/nnops/testdata/torch_golden.json", "w"))
print(len(cases), "cases")
