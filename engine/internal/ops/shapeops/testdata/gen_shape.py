#!/usr/bin/env python3
"""Generate shape_golden.json: numpy reference results for the shapeops tests.

Each case names an ONNX op, its opset, attributes and inputs (None for an
omitted optional input) and the outputs numpy computes for it.

Run (with numpy; on this machine /usr/bin/python3): python3 gen_shape.py > shape_golden.json
"""
import json
import numpy as np

rng = np.random.default_rng(7)
I64MAX = np.iinfo(np.int64).max
I64MIN = np.iinfo(np.int64).min


def enc(a):
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype == np.bool_:
        dt, data = "bool", [bool(v) for v in a.reshape(-1)]
    elif a.dtype.kind in "iu":
        dt, data = "int64", [int(v) for v in a.reshape(-1)]
    else:
        dt, data = "float32", [float(v) for v in a.astype(np.float32).reshape(-1)]
    return {"dtype": dt, "shape": list(a.shape), "data": data}


def attr(v):
    if isinstance(v, str):
        return {"type": "str", "v": v}
    if isinstance(v, float):
        return {"type": "float", "v": v}
    if isinstance(v, int):
        return {"type": "int", "v": v}
    if isinstance(v, list):
        return {"type": "ints", "v": v}
    raise TypeError(v)


cases = []


def case(name, op, inputs, outputs, opset=13, **attrs):
    cases.append({"name": name, "op": op, "opset": opset,
                  "attrs": {k: attr(v) for k, v in attrs.items()},
                  "inputs": [enc(x) for x in inputs],
                  "outputs": [enc(y) for y in outputs]})


def randf(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def i64(*v):
    return np.array(v, dtype=np.int64)


# Slice: numpy slicing with ONNX clamping.
x = randf(4, 5, 6)
xi = np.arange(4 * 5 * 6, dtype=np.int64).reshape(4, 5, 6)


def onnx_slice(x, starts, ends, axes=None, steps=None):
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        d = x.shape[a]
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
            sl[a] = slice(s, e, st)
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
            sl[a] = slice(s, e if e >= 0 else None, st)
    return x[tuple(sl)]


slices = [
    ("basic", [1, 0], [3, 5], None, None),
    ("axes", [2], [5], [2], None),
    ("negative_axis", [1], [-1], [-1], None),
    ("int64max_end", [1], [I64MAX], [1], None),
    ("int64min_start", [I64MIN], [3], [0], None),
    ("steps", [0, 1], [6, 5], [2, 1], [2, 2]),
    ("negative_step", [-1], [I64MIN], [2], [-1]),
    ("negative_step2", [4, 3], [0, -100], [1, 2], [-2, -1]),
    ("empty", [3], [1], [0], None),
    ("all_axes", [0, 1, 2], [4, 5, 6], [0, 1, 2], [1, 2, 3]),
    ("big_start", [10], [20], [2], None),
]
for name, st, en, ax, sp in slices:
    ins = [x, i64(*st), i64(*en), None if ax is None else i64(*ax), None if sp is None else i64(*sp)]
    case("slice_" + name, "Slice", ins, [onnx_slice(x, st, en, ax, sp)])
case("slice_int64", "Slice", [xi, i64(1), i64(-1), i64(1), i64(2)], [onnx_slice(xi, [1], [-1], [1], [2])])
case("slice_opset9_attrs", "Slice", [x], [onnx_slice(x, [0, 1], [2, 1000], [0, 2])], opset=9,
     starts=[0, 1], ends=[2, 1000], axes=[0, 2])

# Transpose.
y = randf(2, 3, 4, 5)
for perm in ([0, 2, 3, 1], [3, 2, 1, 0], [1, 0, 2, 3], [0, 1, 3, 2]):
    case("transpose_" + "".join(map(str, perm)), "Transpose", [y], [y.transpose(perm)], perm=perm)
case("transpose_default", "Transpose", [y], [y.transpose()])
case("transpose_int64", "Transpose", [xi], [xi.transpose(2, 0, 1)], perm=[2, 0, 1])

# Gather.
emb = randf(10, 4)
idx = np.array([[1, 9, -1], [0, 3, 3]], dtype=np.int64)
case("gather_embedding", "Gather", [emb, idx], [emb[idx]])
case("gather_axis1", "Gather", [y, i64(2, 0, -1)], [np.take(y, [2, 0, 2], axis=1)], axis=1)
case("gather_scalar", "Gather", [y, np.array(1, dtype=np.int64)], [y[:, :, 1]], axis=-2)
case("gather_int64_shape", "Gather", [i64(2, 3, 4, 5), np.array(-1, dtype=np.int64)], [np.array(5, dtype=np.int64)])

# GatherElements.
d = randf(3, 4)
gi = np.array([[0, 2], [1, 0], [2, 2]], dtype=np.int64)
case("gather_elements_axis0", "GatherElements", [d, gi], [np.take_along_axis(d[:, :2], gi, 0)], axis=0)
gi1 = np.array([[3, -1, 0], [1, 1, 2]], dtype=np.int64)
case("gather_elements_axis1", "GatherElements", [d, gi1], [np.take_along_axis(d[:2], np.where(gi1 < 0, gi1 + 4, gi1), 1)], axis=1)

# Expand and Tile.
e = randf(3, 1)
case("expand", "Expand", [e, i64(2, 1, 4)], [np.broadcast_to(e, (2, 3, 4))])
e2 = randf(2, 3)
case("expand_ones", "Expand", [e2, i64(1, 1)], [e2])
case("expand_int64", "Expand", [i64(1, 2), i64(3, 2)], [np.broadcast_to(i64(1, 2), (3, 2))])
t = randf(2, 3)
case("tile", "Tile", [t, i64(2, 3)], [np.tile(t, (2, 3))])
case("tile_int64", "Tile", [xi[:2, :2, :2], i64(1, 2, 3)], [np.tile(xi[:2, :2, :2], (1, 2, 3))])

# Concat and Split.
a, b, c = randf(2, 3, 1), randf(2, 3, 4), randf(2, 3, 2)
case("concat_last", "Concat", [a, b, c], [np.concatenate([a, b, c], -1)], axis=-1)
p, q = randf(1, 3), randf(2, 3)
case("concat_axis0", "Concat", [p, q], [np.concatenate([p, q], 0)], axis=0)
case("concat_int64_shapes", "Concat", [i64(1), i64(), i64(-1, 7)], [i64(1, -1, 7)], axis=0)
s = randf(2, 7, 3)
case("split_input", "Split", [s, i64(2, 4, 1)], np.split(s, [2, 6], axis=1), axis=1)
case("split_attr", "Split", [s], np.split(s, [2, 6], axis=1), opset=11, axis=1, split=[2, 4, 1])
s2 = randf(6, 2)
case("split_equal", "Split", [s2], np.split(s2, 3, axis=0))
case("split_opset18_uneven", "Split", [s], np.split(s, [3, 6], axis=1), opset=18, axis=-2, num_outputs=3)

# DepthToSpace / SpaceToDepth.
z = randf(2, 8, 2, 3)
bs = 2
n_, c_, h_, w_ = z.shape
dcr = z.reshape(n_, bs, bs, c_ // 4, h_, w_).transpose(0, 3, 4, 1, 5, 2).reshape(n_, c_ // 4, h_ * bs, w_ * bs)
crd = z.reshape(n_, c_ // 4, bs, bs, h_, w_).transpose(0, 1, 4, 2, 5, 3).reshape(n_, c_ // 4, h_ * bs, w_ * bs)
case("depth_to_space_dcr", "DepthToSpace", [z], [dcr], blocksize=2)
case("depth_to_space_crd", "DepthToSpace", [z], [crd], blocksize=2, mode="CRD")
u = randf(1, 3, 4, 6)
s2d = u.reshape(1, 3, 2, 2, 3, 2).transpose(0, 3, 5, 1, 2, 4).reshape(1, 12, 2, 3)
case("space_to_depth", "SpaceToDepth", [u], [s2d], blocksize=2)

# Trilu.
m = randf(2, 4, 5)
case("trilu_upper", "Trilu", [m], [np.triu(m)], opset=14)
case("trilu_lower_k", "Trilu", [m, np.array(-1, dtype=np.int64)], [np.tril(m, -1)], opset=14, upper=0)
case("trilu_upper_k2", "Trilu", [m, np.array(2, dtype=np.int64)], [np.triu(m, 2)], opset=14)

# Range, NonZero.
case("range_float", "Range", [np.array(1.0, np.float32), np.array(2.0, np.float32), np.array(0.3, np.float32)],
     [np.arange(np.float32(1.0), np.float32(2.0), np.float32(0.3), dtype=np.float32)], opset=11)
case("range_int_neg", "Range", [np.array(10, np.int64), np.array(1, np.int64), np.array(-3, np.int64)], [np.arange(10, 1, -3)], opset=11)
nz = np.array([[1.0, 0, 2], [0, 0, 3]], np.float32)
case("nonzero", "NonZero", [nz], [np.array(np.nonzero(nz), dtype=np.int64)])
nb = np.array([[True, False], [False, True]])
case("nonzero_bool", "NonZero", [nb], [np.array(np.nonzero(nb), dtype=np.int64)])

# GatherND, ScatterND, ScatterElements: loops over the index tuples, as the
# ONNX reference implementations describe them.
def gather_nd(data, ind, batch_dims=0):
    ind = np.where(ind < 0, ind + np.array(data.shape[batch_dims:batch_dims + ind.shape[-1]]), ind)
    bshape = ind.shape[:batch_dims]
    out = []
    for b in np.ndindex(*bshape):
        db, ib = data[b], ind[b]
        for t in np.ndindex(*ib.shape[:-1]):
            out.append(db[tuple(ib[t])])
    lead = ind.shape[:-1]
    rest = data.shape[batch_dims + ind.shape[-1]:]
    return np.array(out, dtype=data.dtype).reshape(lead + rest)


REDUCE = {"none": lambda a, b: b, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def scatter_nd(data, ind, upd, reduction="none"):
    out = data.copy()
    f = REDUCE[reduction]
    k = ind.shape[-1]
    for t in np.ndindex(*ind.shape[:-1]):
        pos = tuple(int(v) + (data.shape[j] if v < 0 else 0) for j, v in enumerate(ind[t]))
        out[pos] = f(out[pos], upd[t])
    return out


def scatter_elements(data, ind, upd, axis=0, reduction="none"):
    out = data.copy()
    f = REDUCE[reduction]
    ax = axis % data.ndim
    for t in np.ndindex(*ind.shape):
        v = int(ind[t])
        if v < 0:
            v += data.shape[ax]
        pos = list(t)
        pos[ax] = v
        pos = tuple(pos)
        out[pos] = f(out[pos], upd[t])
    return out


g = randf(3, 4, 5)
gn = np.array([[0, 1], [2, -1], [1, 3]], dtype=np.int64)
case("gather_nd_slices", "GatherND", [g, gn], [gather_nd(g, gn)])
gn1 = np.array([[[0, 1, 2]], [[2, 3, 4]], [[1, 1, 1]], [[1, 1, 1]]], dtype=np.int64)
case("gather_nd_full", "GatherND", [g, gn1], [gather_nd(g, gn1)])
gnb = np.array([[[1], [0]], [[3], [3]], [[-2], [0]]], dtype=np.int64)
case("gather_nd_batch", "GatherND", [g, gnb], [gather_nd(g, gnb, 1)], batch_dims=1)
gi64 = np.arange(12, dtype=np.int64).reshape(3, 4)
case("gather_nd_int64", "GatherND", [gi64, np.array([[2], [0]], dtype=np.int64)], [gather_nd(gi64, np.array([[2], [0]], dtype=np.int64))])

sd = randf(4, 3, 2)
si = np.array([[3], [0]], dtype=np.int64)
su = randf(2, 3, 2)
case("scatter_nd_none", "ScatterND", [sd, si, su], [scatter_nd(sd, si, su)])
si2 = np.array([[1, 2], [-1, 0], [1, 2]], dtype=np.int64)
su2 = randf(3, 2)
case("scatter_nd_add_dup", "ScatterND", [sd, si2, su2], [scatter_nd(sd, si2, su2, "add")], opset=16, reduction="add")
su3 = (rng.uniform(0.5, 1.5, (3, 2)) * rng.choice([-1, 1], (3, 2))).astype(np.float32)
case("scatter_nd_mul_dup", "ScatterND", [sd, si2, su3], [scatter_nd(sd, si2, su3, "mul")], opset=16, reduction="mul")
case("scatter_nd_max_dup", "ScatterND", [sd, si2, su2], [scatter_nd(sd, si2, su2, "max")], opset=18, reduction="max")
case("scatter_nd_min_dup", "ScatterND", [sd, si2, su2], [scatter_nd(sd, si2, su2, "min")], opset=18, reduction="min")
sdi = np.arange(6, dtype=np.int64).reshape(2, 3)
sii = np.array([[1, 1], [0, 0]], dtype=np.int64)
sui = np.array([40, 50], dtype=np.int64)
case("scatter_nd_int64", "ScatterND", [sdi, sii, sui], [scatter_nd(sdi, sii, sui)])

ed = randf(3, 4)
ei = np.array([[1, 0, 2, 0], [2, 1, 0, 1]], dtype=np.int64)
eu = randf(2, 4)
case("scatter_elements_axis0", "ScatterElements", [ed, ei, eu], [scatter_elements(ed, ei, eu, 0)])
ei1 = np.array([[3, -4], [0, 1], [-1, 2]], dtype=np.int64)
eu1 = randf(3, 2)
case("scatter_elements_axis1", "ScatterElements", [ed, ei1, eu1], [scatter_elements(ed, ei1, eu1, 1)], axis=-1)
case("scatter_old_name", "Scatter", [ed, ei1, eu1], [scatter_elements(ed, ei1, eu1, 1)], opset=10, axis=1)
eid = np.array([[1, 1, 0], [1, 3, 1]], dtype=np.int64)
eud = randf(2, 3)
for red in ("add", "mul", "max", "min"):
    case("scatter_elements_" + red, "ScatterElements", [ed, eid, eud], [scatter_elements(ed, eid, eud, 1, red)],
         opset=18, axis=1, reduction=red)

print(json.dumps({"generator": "gen_shape.py", "cases": cases}, separators=(",", ":")))
