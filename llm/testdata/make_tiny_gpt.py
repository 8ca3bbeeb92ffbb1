#!/usr/bin/env python3
"""Exports tiny_gpt.onnx, a two-block GPT-2-shaped transformer (token and
position embeddings, LayerNorm, causal multi-head attention with an
attention mask, GELU MLP, logits [N, L, V]; inputs input_ids,
attention_mask, position_ids) and writes tiny_gpt_reference.json with plain
PyTorch (no Captum, no loupe): next-token log-probabilities, and integrated
gradients (Gauss-Legendre, 8 steps) on the token embedding per target
token. Run with /usr/bin/python3 (torch 1.13).
"""
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F, math
torch.manual_seed(0)
V, D, H, L = 40, 16, 2, 32
class Block(nn.Module):
    def __init__(s):
        super().__init__()
        s.ln1 = nn.LayerNorm(D); s.qkv = nn.Linear(D, 3*D); s.proj = nn.Linear(D, D)
        s.ln2 = nn.LayerNorm(D); s.fc = nn.Linear(D, 4*D); s.out = nn.Linear(4*D, D)
        s.register_buffer("bias", torch.tril(torch.ones(L, L)).view(1, 1, L, L))
    def forward(s, x, amask):
        B, T, _ = x.shape
        q, k, v = s.qkv(s.ln1(x)).split(D, dim=2)
        q = q.view(B, T, H, D//H).transpose(1, 2); k = k.view(B, T, H, D//H).transpose(1, 2); v = v.view(B, T, H, D//H).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D//H)
        causal = s.bias[:, :, :T, :T]
        att = att.masked_fill(causal == 0, -1e4)
        att = att + (1.0 - amask[:, None, None, :].to(att.dtype)) * -1e4
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + s.proj(y)
        return x + s.out(F.gelu(s.fc(s.ln2(x))))
class GPT(nn.Module):
    def __init__(s):
        super().__init__()
        s.wte = nn.Embedding(V, D); s.wpe = nn.Embedding(L, D); s.h = nn.ModuleList([Block(), Block()]); s.lnf = nn.LayerNorm(D); s.head = nn.Linear(D, V, bias=False)
    def forward(s, input_ids, attention_mask, position_ids):
        x = s.wte(input_ids) + s.wpe(position_ids)
        for b in s.h: x = b(x, attention_mask)
        return s.head(s.lnf(x))
m = GPT().eval()
ids = torch.tensor([[1, 5, 9, 3, 7]]); am = torch.ones_like(ids); pos = torch.arange(5)[None]
torch.onnx.export(m, (ids, am, pos), "tiny_gpt.onnx", input_names=["input_ids", "attention_mask", "position_ids"], output_names=["logits"], opset_version=13,
    dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, "position_ids": {0: "b", 1: "s"}, "logits": {0: "b", 1: "s"}})
import json
seq = [1, 5, 9, 3, 7, 2]
x = torch.tensor([seq])
with torch.no_grad():
    lp = F.log_softmax(m(x, torch.ones_like(x), torch.arange(len(seq))[None])[0, -1], -1)

prompt, target, itp, base = [1, 5, 9, 3, 7], [2, 11], [1, 2, 3, 4], 0
def from_wte(e, n):
    x = e + m.wpe(torch.arange(n)[None])
    for b in m.h: x = b(x, torch.ones(1, n, dtype=torch.long))
    return m.head(m.lnf(x))
nodes, weights = np.polynomial.legendre.leggauss(8)
lig = []
for j, t in enumerate(target):
    s = prompt + target[:j]
    xi = torch.tensor([s]); bi = xi.clone()
    for p in itp: bi[0, p] = base
    with torch.no_grad():
        ex, eb = m.wte(xi), m.wte(bi)
    total = torch.zeros_like(ex)
    for a, w in zip((nodes + 1) / 2, weights / 2):
        e = (eb + float(a) * (ex - eb)).requires_grad_(True)
        out = F.log_softmax(from_wte(e, len(s))[:, -1], -1)[0, t]
        (g,) = torch.autograd.grad(out, e)
        total += float(w) * g
    lig.append(((total * (ex - eb)).sum(-1))[0, itp].tolist())
json.dump({"seq": seq, "log_probs": lp.tolist(), "prompt": prompt, "target": target, "baseline": base,
           "skip_ids": [1], "integrated_gradients_n8": lig}, open("tiny_gpt_reference.json", "w"), indent=1)
