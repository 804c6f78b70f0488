#!/usr/bin/env bash
# Fashion-MNIST test accuracy of `--model mini`: FCMAE pretraining + fine-tuning against
# fine-tuning from scratch for the same number of training steps, at the main job's budget
# (scripts/example.sh on this 2-core CPU) and at a longer one; and training throughput (img/s)
# of both steps. Not part of CI (about 15 minutes for the short budget, 2-3 hours for the long
# one). Results: bench/results/accuracy-<date>.json and the lines printed at the end.
#   PRE=... FT=...          steps of the short budget (default: what the main job ran here)
#   LONG_PRE=... LONG_FT=... steps of the long budget (default 2 and 12 epochs of 468 steps)
#   ONLY=short|long         run one budget
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
nexgrad() { node dist/src/cli.js "$@"; }
OUT=${OUT:-runs/accuracy}
PRE=${PRE:-200}
FT=${FT:-800}
LONG_PRE=${LONG_PRE:-936}
LONG_FT=${LONG_FT:-5616}
threads=${THREADS:-1}
common=(--model mini --data fashion-mnist --batch-size 128 --threads "$threads" --checkpoint-every 500 --log-every 50 --quiet)
results=()

acc() { sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p'; }

run_budget() { # name pre_steps ft_steps
  local name=$1 pre=$2 ft=$3 dir="$OUT/$1"
  rm -rf "$dir"
  nexgrad pretrain "${common[@]}" --steps "$pre" --lr 2e-3 --warmup-epochs 0.05 --out "$dir/pretrain" >/dev/null
  local a_pre
  a_pre=$(nexgrad finetune "${common[@]}" --steps "$ft" --lr 2e-3 --warmup-epochs 0.1 --ema 0.999 --weight-decay 0.5 --init "$dir/pretrain/fcmae.safetensors" --out "$dir/finetune" | acc)
  local a_scratch
  a_scratch=$(nexgrad finetune "${common[@]}" --steps $((pre + ft)) --lr 2e-3 --warmup-epochs 0.1 --ema 0.999 --weight-decay 0.5 --out "$dir/scratch" | acc)
  echo "$name: pretrain $pre + finetune $ft steps: $a_pre%; from scratch $((pre + ft)) steps: $a_scratch%"
  results+=("\"$name\": {\"preSteps\": $pre, \"ftSteps\": $ft, \"pretrainFinetune\": $a_pre, \"scratch\": $a_scratch}")
}

ft_ips=$(nexgrad bench --mode finetune --channels 1 --classes 10 --image-size 32 --batch-size 128 --steps 10 --threads "$threads" | sed -n 's/.*: \([0-9.]*\) img\/s.*/\1/p')
pt_ips=$(nexgrad bench --mode pretrain --channels 1 --classes 10 --image-size 32 --batch-size 128 --steps 10 --threads "$threads" | sed -n 's/.*: \([0-9.]*\) img\/s.*/\1/p')
echo "throughput ($threads thread(s)): fine-tuning step $ft_ips img/s, FCMAE step $pt_ips img/s"
[ "${ONLY:-}" = long ] || run_budget short "$PRE" "$FT"
[ "${ONLY:-}" = short ] || run_budget long "$LONG_PRE" "$LONG_FT"
mkdir -p bench/results
file="bench/results/accuracy-$(date +%Y-%m-%d).json"
(IFS=,; echo "{\"threads\": $threads, \"finetuneImgPerSec\": $ft_ips, \"pretrainImgPerSec\": $pt_ips, ${results[*]}}") > "$file"
echo "results: $file"
