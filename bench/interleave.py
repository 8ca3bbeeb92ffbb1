#!/usr/bin/python3
"""Time loupe against PyTorch workload by workload, alternating, over several
rounds, and print each round's ratio (loupe / PyTorch) and their medians.

On a VM whose speed drifts by tens of percent from minute to minute, one
side-by-side run (../shared/bench/side_by_side.sh, which times all of PyTorch
first and all of loupe after) can compare a fast phase with a slow one; here
each ratio compares timings taken seconds apart.

Run from the repository's root, after building the test binaries:
  go test -c -o /tmp/engine.test ./engine && go test -c -o /tmp/attr.test ./attr
  bench/interleave.py [RUNS [ROUNDS]]
PyTorch's workloads come from ../shared/bench/torch_workloads.py (plain torch
doing what Captum does), DeepLift's from bench/torch_deeplift.py.
"""
import json, os, statistics, subprocess, sys

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "bench", "torch_workloads.py")
W = [  # PyTorch workload, test binary, package directory, benchmark
    ("resnet18_forward_b1", "engine", "^BenchmarkResNet18$/^forward$/^b1$"),
    ("resnet18_forward_b10", "engine", "^BenchmarkResNet18$/^forward$/^b10$"),
    ("resnet18_forward_backward_b1", "engine", "^BenchmarkResNet18$/^forward\\+grad$/^b1$"),
    ("resnet18_forward_backward_b10", "engine", "^BenchmarkResNet18$/^forward\\+grad$/^b10$"),
    ("saliency_resnet18", "attr", "^BenchmarkResNet18$/^saliency$"),
    ("ig_resnet18_n50_ibsNone", "attr", "^BenchmarkResNet18$/^ig_n50_ibsNone$"),
    ("ig_resnet18_n50_ibs10", "attr", "^BenchmarkResNet18$/^ig_n50_ibs10$"),
    ("deeplift_resnet18", "attr", "^BenchmarkResNet18$/^deeplift$"),
    ("layergradcam_resnet18_layer4", "attr", "^BenchmarkResNet18$/^layergradcam_layer4$"),
]


def torch_time(name):
    if name == "deeplift_resnet18":
        out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_deeplift.py"), str(RUNS)],
                             capture_output=True, text=True).stdout
        return float(out.split("med")[1].split()[0])
    out = subprocess.run(["/usr/bin/python3", SHARED, "--runs", str(RUNS), "--only", name],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        r = json.loads(line)
        if r["workload"] == name:
            return r["seconds_median"]
    raise SystemExit("no PyTorch timing for " + name)


def loupe_time(pkg, bench):
    out = subprocess.run(["/tmp/%s.test" % pkg, "-test.run", "XXX", "-test.bench", bench, "-test.benchtime", "%dx" % RUNS],
                         cwd=os.path.join(ROOT, pkg), capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Benchmark"):
            return float(line.split()[2]) / 1e9
    raise SystemExit("no loupe timing for " + bench)


ratios = {w[0]: [] for w in W}
for rnd in range(ROUNDS):
    for name, pkg, bench in W:
        t, g = torch_time(name), loupe_time(pkg, bench)
        ratios[name].append(g / t)
        print("round %d %-32s torch %.4f s  loupe %.4f s  ratio %.2f" % (rnd, name, t, g, g / t), flush=True)
print("\nmedian ratio (rounds)")
for name, rs in ratios.items():
    print("%-32s %.2f   (%s)" % (name, statistics.median(rs), " ".join("%.2f" % r for r in rs)))
