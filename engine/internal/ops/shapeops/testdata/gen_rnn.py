#!/usr/bin/env python3
"""Generate rnn_golden.json: LSTM and GRU reference outputs for the shapeops tests.

An independent numpy (float64) implementation of the ONNX LSTM and GRU
equations (gate orders LSTM i o f c, GRU z r h; default activations).
sequence_lens follows onnxruntime: a batch entry stops at its length, its
state is carried unchanged and its Y rows are zero.

Run (with numpy; on this machine /usr/bin/python3): python3 gen_rnn.py > rnn_golden.json
"""
import json
import numpy as np

rng = np.random.default_rng(20240601)


def f32(shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_dir(X, W, R, B, h, c, lens, reverse):
    S, N, _ = X.shape
    H = R.shape[1]
    Wi, Wo, Wf, Wc = np.split(W, 4)
    Ri, Ro, Rf, Rc = np.split(R, 4)
    wb, rb = np.split(B, 2)
    b = [wb[k * H:(k + 1) * H] + rb[k * H:(k + 1) * H] for k in range(4)]
    Y = np.zeros((S, N, H))
    order = range(S - 1, -1, -1) if reverse else range(S)
    for t in order:
        x = X[t]
        i = sig(x @ Wi.T + h @ Ri.T + b[0])
        o = sig(x @ Wo.T + h @ Ro.T + b[1])
        f = sig(x @ Wf.T + h @ Rf.T + b[2])
        g = np.tanh(x @ Wc.T + h @ Rc.T + b[3])
        cn = f * c + i * g
        hn = o * np.tanh(cn)
        act = (t < lens)[:, None]
        c = np.where(act, cn, c)
        h = np.where(act, hn, h)
        Y[t] = np.where(act, hn, 0)
    return Y, h, c


def gru_dir(X, W, R, B, h, lens, reverse, lbr):
    S, N, _ = X.shape
    H = R.shape[1]
    Wz, Wr, Wh = np.split(W, 3)
    Rz, Rr, Rh = np.split(R, 3)
    wb, rb = np.split(B, 2)
    wbz, wbr, wbh = np.split(wb, 3)
    rbz, rbr, rbh = np.split(rb, 3)
    Y = np.zeros((S, N, H))
    order = range(S - 1, -1, -1) if reverse else range(S)
    for t in order:
        x = X[t]
        z = sig(x @ Wz.T + h @ Rz.T + wbz + rbz)
        r = sig(x @ Wr.T + h @ Rr.T + wbr + rbr)
        if lbr:
            hh = np.tanh(x @ Wh.T + r * (h @ Rh.T + rbh) + wbh)
        else:
            hh = np.tanh(x @ Wh.T + (r * h) @ Rh.T + rbh + wbh)
        hn = (1 - z) * hh + z * h
        act = (t < lens)[:, None]
        h = np.where(act, hn, h)
        Y[t] = np.where(act, hn, 0)
    return Y, h


def enc(a):
    a = np.asarray(a)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def case(name, op, S, N, I, H, direction="forward", layout=0, bias=True,
         init=True, lens=None, lbr=0, hidden_attr=True):
    D = 2 if direction == "bidirectional" else 1
    G = 4 if op == "LSTM" else 3
    X = f32((S, N, I), 1.0)
    W = f32((D, G * H, I))
    R = f32((D, G * H, H))
    B = f32((D, 2 * G * H)) if bias else np.zeros((D, 2 * G * H), np.float32)
    h0 = f32((D, N, H)) if init else np.zeros((D, N, H), np.float32)
    c0 = f32((D, N, H)) if init else np.zeros((D, N, H), np.float32)
    L = np.array(lens if lens is not None else [S] * N)
    Ys, Yh, Yc = [], [], []
    for d in range(D):
        rev = direction == "reverse" or d == 1
        x64, w, r, b = X.astype(np.float64), W[d].astype(np.float64), R[d].astype(np.float64), B[d].astype(np.float64)
        if op == "LSTM":
            y, h, c = lstm_dir(x64, w, r, b, h0[d].astype(np.float64), c0[d].astype(np.float64), L, rev)
            Yc.append(c)
        else:
            y, h = gru_dir(x64, w, r, b, h0[d].astype(np.float64), L, rev, lbr)
        Ys.append(y)
        Yh.append(h)
    Y = np.stack(Ys, 1)  # [S D N H]
    Yh = np.stack(Yh)  # [D N H]
    ins = {"W": enc(W), "R": enc(R)}
    outs = {}
    if layout == 0:
        ins["X"] = enc(X)
        outs["Y"] = enc(Y)
        outs["Y_h"] = enc(Yh)
    else:
        ins["X"] = enc(X.transpose(1, 0, 2))
        outs["Y"] = enc(Y.transpose(2, 0, 1, 3))
        outs["Y_h"] = enc(Yh.transpose(1, 0, 2))
    if bias:
        ins["B"] = enc(B)
    if init:
        ins["initial_h"] = enc(h0 if layout == 0 else h0.transpose(1, 0, 2))
        if op == "LSTM":
            ins["initial_c"] = enc(c0 if layout == 0 else c0.transpose(1, 0, 2))
    if lens is not None:
        ins["sequence_lens"] = {"shape": [N], "data": [int(v) for v in lens]}
    if op == "LSTM":
        Yc = np.stack(Yc)
        outs["Y_c"] = enc(Yc if layout == 0 else Yc.transpose(1, 0, 2))
    attrs = {"direction": direction, "layout": layout}
    if hidden_attr:
        attrs["hidden_size"] = H
    if op == "GRU":
        attrs["linear_before_reset"] = lbr
    return {"name": name, "op": op, "attrs": attrs, "inputs": ins, "outputs": outs}


cases = [
    case("lstm_forward", "LSTM", 5, 3, 4, 6),
    case("lstm_nobias_noinit", "LSTM", 4, 2, 3, 5, bias=False, init=False, hidden_attr=False),
    case("lstm_reverse", "LSTM", 4, 2, 3, 5, direction="reverse"),
    case("lstm_bidirectional", "LSTM", 4, 3, 3, 4, direction="bidirectional"),
    case("lstm_layout1_bidir", "LSTM", 3, 2, 4, 3, direction="bidirectional", layout=1),
    case("lstm_seqlens", "LSTM", 5, 3, 2, 3, lens=[5, 2, 0], direction="bidirectional"),
    case("lstm_batch1_long", "LSTM", 12, 1, 7, 16),
    case("gru_lbr0", "GRU", 5, 3, 4, 6, lbr=0),
    case("gru_lbr1", "GRU", 5, 3, 4, 6, lbr=1),
    case("gru_reverse_lbr1", "GRU", 4, 2, 3, 5, direction="reverse", lbr=1),
    case("gru_bidir_lbr0", "GRU", 4, 2, 3, 4, direction="bidirectional", lbr=0),
    case("gru_layout1_lbr1", "GRU", 3, 2, 4, 3, direction="bidirectional", layout=1, lbr=1, init=True),
    case("gru_seqlens_lbr0", "GRU", 5, 3, 2, 3, lens=[3, 5, 1], direction="bidirectional"),
    case("gru_nobias", "GRU", 4, 2, 3, 5, bias=False, init=False, lbr=1),
]
print(json.dumps({"generator": "gen_rnn.py", "cases": cases}, separators=(",", ":")))
