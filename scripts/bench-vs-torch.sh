#!/usr/bin/env bash
# cg against eager PyTorch on the same network and data, back to back, one fresh process each:
# CosineGate-20 and ResNet-20 (option A) on 1-channel MNIST digits (../shared/data/mnist-10k),
# batch 128, one epoch of 2,560 digits, consistency loss off. cg's figures are its result's
# train_img_per_s and infer_img_per_s (dense inference over the test digits); PyTorch's come from
# scripts/torch_bench.py, run by the venv of scripts/libtorch.sh (the libtorch cg links).
#
#   scripts/bench-vs-torch.sh [CG_BINARY] [BACKEND]     (default: target/release/cg, auto)
# Env: CG_BENCH_DATA (digits folder), CG_BENCH_MODELS (default "cosinegate resnet"),
#      CG_BENCH_THREADS (threads for both; default: all cores).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cg="${1:-$here/../target/release/cg}"
backend="${2:-auto}"
data="${CG_BENCH_DATA:-$here/../../shared/data/mnist-10k}"
models="${CG_BENCH_MODELS:-cosinegate resnet}"
threads="${CG_BENCH_THREADS:-$(nproc)}"
eval "$("$here/libtorch.sh")"
python="$CG_TORCH_PYTHON"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

printf '%-14s %-8s %10s %10s %7s   %10s %10s %7s   %s\n' model backend "cg train" "torch" ratio \
  "cg infer" "torch" ratio "load (1 min)"
for model in $models; do
  cat > "$tmp/$model.yaml" <<YAML
dataset: {kind: idx, path: "$data"}
model: {kind: $model, depth: 20, width: 16}
loss: {cons_weight: 0}
train: {epochs: 1, batch_size: 128, limit_train: 2560, limit_test: 2004}
YAML
  load="$(cut -d' ' -f1 /proc/loadavg)"
  "$cg" train -c "$tmp/$model.yaml" -o "$tmp/$model.json" --backend "$backend" --threads "$threads" -q
  torch_line="$("$python" "$here/torch_bench.py" --data "$data" --models "$model" --threads "$threads")"
  load="$load/$(cut -d' ' -f1 /proc/loadavg)"
  "$python" - "$tmp/$model.json" "$torch_line" "$model" "$load" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); t = json.loads(sys.argv[2])
ct, ci = r["train_img_per_s"], r["infer_img_per_s"]
tt, ti = t["train_img_per_s"], t["infer_img_per_s"]
print(f'{sys.argv[3] + "20":<14} {r["provenance"].get("backend", "?"):<8} {ct:>10.1f} {tt:>10.1f} {ct / tt:>6.2f}x'
      f'   {ci:>10.1f} {ti:>10.1f} {ci / ti:>6.2f}x   {sys.argv[4]}')
PY
done
