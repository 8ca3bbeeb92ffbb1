#!/usr/bin/env python3
"""Exports tiny_hf_lm.onnx, a Hugging Face-shaped causal language model
(input_ids and attention_mask [N, L] in, logits [N, L, V] out), and writes
reference.json: attributions computed here with plain PyTorch (no Captum,
no loupe) for llm's tests. Run with /usr/bin/python3 (torch 1.13).

Model: Embedding(16, 6) -> times the mask -> left-padded Conv1d(6, 8, 5)
-> Tanh -> Linear(8, 16) per position. Position t sees tokens t-4 to t.
"""
import json
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
V, D, H = 16, 6, 8


class TinyHFLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.conv = nn.Conv1d(D, H, 5)
        self.act = nn.Tanh()
        self.head = nn.Linear(H, V)

    def from_emb(self, e, attention_mask):
        e = e * attention_mask.unsqueeze(-1).to(e.dtype)
        h = self.act(self.conv(F.pad(e.transpose(1, 2), (4, 0))))
        return self.head(h.transpose(1, 2))

    def forward(self, input_ids, attention_mask):
        return self.from_emb(self.emb(input_ids), attention_mask)


m = TinyHFLM().eval()
ids = torch.tensor([[1, 5, 9, 3, 7]])
mask = torch.ones_like(ids)
torch.onnx.export(m, (ids, mask), "tiny_hf_lm.onnx", input_names=["input_ids", "attention_mask"],
                  output_names=["logits"], opset_version=13,
                  dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                "logits": {0: "batch", 1: "seq"}})

prompt = [1, 5, 9, 3, 7]          # token 1 is <s>, skipped
target = [4, 11, 2]
itp = [1, 2, 3, 4]                # positions of the features
base_id = 0


def logprob(seq, t):
    x = torch.tensor([seq])
    with torch.no_grad():
        lp = F.log_softmax(m(x, torch.ones_like(x))[:, -1].double(), dim=-1)
    return lp[0, t].item()


def scores(p):
    lps = [logprob(p + target[:j], target[j]) for j in range(len(target))]
    return [sum(lps)] + lps


# FeatureAblation over the token features, log_prob target.
full = scores(prompt)
fa = []
for k, pos in enumerate(itp):
    p = list(prompt)
    p[pos] = base_id
    s = scores(p)
    fa.append([full[r] - s[r] for r in range(len(full))])
fa = np.array(fa).T  # [1+T, F]

# ShapleyValues: exact over all coalitions (F = 4).
import itertools, math
nf = len(itp)
def coalition(on):
    p = list(prompt)
    for k, pos in enumerate(itp):
        if not on[k]:
            p[pos] = base_id
    return scores(p)
sv = np.zeros((1 + len(target), nf))
for k in range(nf):
    others = [i for i in range(nf) if i != k]
    for r in range(nf):
        for S in itertools.combinations(others, r):
            w = math.factorial(r) * math.factorial(nf - r - 1) / math.factorial(nf)
            on = [i in S for i in range(nf)]
            with_k = list(on); with_k[k] = True
            sv[:, k] += w * (np.array(coalition(with_k)) - np.array(coalition(on)))

# Gradient methods on the embedding output, per target token.
def grad_at(seq, t, e):
    e = e.clone().requires_grad_(True)
    x = torch.tensor([seq])
    lp = F.log_softmax(m.from_emb(e, torch.ones_like(x))[:, -1], dim=-1)[0, t]
    (g,) = torch.autograd.grad(lp, e)
    return g

gxa, lig = [], []
nodes, weights = np.polynomial.legendre.leggauss(8)
alphas, steps = (nodes + 1) / 2, weights / 2
for j, t in enumerate(target):
    seq = prompt + target[:j]
    x = torch.tensor([seq])
    b = x.clone()
    for pos in itp:
        b[0, pos] = base_id
    with torch.no_grad():
        ex, eb = m.emb(x), m.emb(b)
    g = grad_at(seq, t, ex)
    gxa.append((g * ex).sum(-1)[0, itp].tolist())
    total = torch.zeros_like(ex)
    for a, s in zip(alphas, steps):
        total += float(s) * grad_at(seq, t, eb + float(a) * (ex - eb))
    lig.append(((total * (ex - eb)).sum(-1))[0, itp].tolist())

ref = {"prompt": prompt, "target": target, "skip_ids": [1], "baseline": base_id,
       "feature_ablation": fa.tolist(), "shapley_values": sv.tolist(),
       "gradient_x_activation": gxa, "integrated_gradients_n8": lig,
       "greedy_4": None}
with torch.no_grad():
    seq = list(prompt)
    for _ in range(4):
        x = torch.tensor([seq])
        seq.append(int(m(x, torch.ones_like(x))[0, -1].argmax()))
ref["greedy_4"] = seq[len(prompt):]
with open("reference.json", "w") as f:
    json.dump(ref, f, indent=1)
