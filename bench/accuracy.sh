#!/usr/bin/env bash
# Fashion-MNIST test accuracy: FCMAE pretraining + fine-tuning against fine-tuning from scratch
# for the same number of training steps, at the main job's budget (scripts/example.sh's `mini` on
# this 2-core CPU) and at a longer one with a finer model; and training throughput (img/s) of both
# steps of the short budget's model. Not part of CI (about 15 minutes for the short budget, about
# 70 for the long one with PARALLEL=1 on two idle cores). Results: bench/results/accuracy-<date>.json and the
# lines printed at the end.
#   PRE=... FT=...            steps of the short budget (default: what the main job ran here)
#   LONG_PRE=... LONG_FT=...  steps of the long budget (default 5 and 25 epochs of 468 steps)
#   LONG_MODEL="..."          the long budget's model flags (default: stem stride 2, three stages
#                             24,48,96 with 1,2,2 blocks: a 16x16 first stage on 32x32 images)
#   LONG_FT_FLAGS="..."       extra fine-tuning flags of the long budget (default --flip 0.5)
#   ONLY=short|long           run one budget
#   THREADS=n                 threads per training process (default 1)
#   RESULTS=path.json         where the results go
#   PARALLEL=1                run the two fine-tunings of a budget side by side (THREADS=1 on two cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
nexgrad() { node dist/src/cli.js "$@"; }
OUT=${OUT:-runs/accuracy}
PRE=${PRE:-200}
FT=${FT:-800}
LONG_PRE=${LONG_PRE:-2340}
LONG_FT=${LONG_FT:-11700}
read -r -a long_model <<< "${LONG_MODEL:---model custom --dims 24,48,96 --depths 1,2,2 --stem-stride 2}"
read -r -a long_ft_flags <<< "${LONG_FT_FLAGS:---flip 0.5}"
threads=${THREADS:-1}
common=(--data fashion-mnist --batch-size 128 --threads "$threads" --checkpoint-every 500 --log-every 50 --quiet)
results=()

acc() { sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p'; }

run_budget() { # name pre_steps ft_steps "model flags" "extra fine-tuning flags"
  local name=$1 pre=$2 ft=$3 dir="$OUT/$1"
  local -a model extra
  read -r -a model <<< "$4"
  read -r -a extra <<< "${5:-}"
  rm -rf "$dir"
  mkdir -p "$dir"
  nexgrad pretrain "${model[@]}" "${common[@]}" --steps "$pre" --lr 2e-3 --warmup-epochs 0.05 --mask-ratio 0.6 --decoder-dim 128 --out "$dir/pretrain" >/dev/null
  local ft_common=("${model[@]}" "${common[@]}" --lr 2e-3 --warmup-epochs 0.1 --ema 0.999 --label-smoothing 0.1 --weight-decay 0.5 "${extra[@]}")
  nexgrad finetune "${ft_common[@]}" --steps "$ft" --init "$dir/pretrain/fcmae.safetensors" --out "$dir/finetune" > "$dir/finetune.log" &
  local pid=$!
  [ "${PARALLEL:-}" = 1 ] || wait "$pid"
  nexgrad finetune "${ft_common[@]}" --steps $((pre + ft)) --out "$dir/scratch" > "$dir/scratch.log"
  [ "${PARALLEL:-}" != 1 ] || wait "$pid" # a bare `wait` would not report the job's failure
  local a_pre a_scratch
  a_pre=$(acc < "$dir/finetune.log")
  a_scratch=$(acc < "$dir/scratch.log")
  echo "$name: pretrain $pre + finetune $ft steps: $a_pre%; from scratch $((pre + ft)) steps: $a_scratch%"
  results+=("\"$name\": {\"model\": \"${model[*]}\", \"ftFlags\": \"${extra[*]}\", \"preSteps\": $pre, \"ftSteps\": $ft, \"pretrainFinetune\": $a_pre, \"scratch\": $a_scratch}")
}

ft_ips=$(nexgrad bench --model mini --mode finetune --channels 1 --classes 10 --image-size 32 --batch-size 128 --steps 10 --threads "$threads" | sed -n 's/.*: \([0-9.]*\) img\/s.*/\1/p')
pt_ips=$(nexgrad bench --model mini --mode pretrain --channels 1 --classes 10 --image-size 32 --batch-size 128 --steps 10 --threads "$threads" | sed -n 's/.*: \([0-9.]*\) img\/s.*/\1/p')
echo "throughput ($threads thread(s)): fine-tuning step $ft_ips img/s, FCMAE step $pt_ips img/s"
[ "${ONLY:-}" = long ] || run_budget short "$PRE" "$FT" "--model mini"
[ "${ONLY:-}" = short ] || run_budget long "$LONG_PRE" "$LONG_FT" "${long_model[*]}" "${long_ft_flags[*]}"
file=${RESULTS:-bench/results/accuracy-$(date +%Y-%m-%d).json}
mkdir -p "$(dirname "$file")"
(IFS=,; echo "{\"threads\": $threads, \"finetuneImgPerSec\": $ft_ips, \"pretrainImgPerSec\": $pt_ips, ${results[*]}}") > "$file"
echo "results: $file"
