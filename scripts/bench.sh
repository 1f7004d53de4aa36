#!/usr/bin/env bash
# Runs hitomi's benchmark and the PyTorch reference one after the other on this machine and prints
# the ratios hitomi / PyTorch (above 1: hitomi is faster; for latency and memory, below 1 is better).
# Usage: scripts/bench.sh [TORCH_VENV_DIR] [SHARED_BENCH_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-torch}
shared=${2:-../shared/bench}
out=runs/bench
mkdir -p "$out"
bash "$shared/setup-torch.sh" "$venv" >/dev/null
cargo build --release --quiet
./target/release/hitomi bench --json "$out/hitomi.json"
"$venv/bin/python" "$shared/torch_reference.py" --threads 2 --json "$out/torch.json"
python3 - "$out/hitomi.json" "$out/torch.json" <<'PY'
import json, sys
h, t = (json.load(open(p)) for p in sys.argv[1:3])
print(f"{'model':8} {'figure':12} {'hitomi':>10} {'pytorch':>10} {'ratio':>7}")
for m in ("model_a", "model_b"):
    for k, better in (("train_img_s", "higher"), ("infer_img_s", "higher"), ("latency_ms", "lower")):
        print(f"{m:8} {k:12} {h[m][k]:10.2f} {t[m][k]:10.2f} {h[m][k] / t[m][k]:7.2f}  ({better} is better)")
    if h[m].get("train_peak_rss_mb"):
        print(f"{m:8} {'train_rss_mb':12} {h[m]['train_peak_rss_mb']:10.0f}")
PY
