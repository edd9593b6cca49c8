#!/usr/bin/env bash
# The design notes' recipes at a CPU budget, measured on this machine: each run is `srlab recipe
# NAME` then `/usr/bin/time -v dvc exp run` in a scratch clone of this repository, one at a time,
# with a budget on top (-S: fewer epochs, a smaller epoch; said in docs/RESULTS.md). The mirror's
# SunHays80 photos stand in for VOC2011 / DIV2K / the 91 images, which cannot be downloaded here,
# and the backbones are random. Each run's metrics, curves and timing go to
# docs/results/recipes/RUN/ in this repository, or docs/results/full/RUN/ for a note's full budget
# (small files, to commit: params.yaml, metrics, curves, run.json with the command, wall time and
# peak RSS); its models and patches stay in the scratch clone's DVC cache.
# `python bench/recipes_table.py [FOLDER]` prints the tables.
#
#   SRLAB_DATA_MIRROR=../shared/data bash bench/recipes_cpu.sh WORK [RUN ...]
#
# RUN: a recipe's name (its main run), NAME-OTHER for one of its other runs (assignment-control),
# or one of the variants below (assignment-residual, srcnn-cli-full-bf16). Default: every recipe's
# main run. Each run imports srlab from the scratch clone, so its numbers are the cloned commit's.
set -euo pipefail
work=${1:?usage: bash bench/recipes_cpu.sh WORK [RUN ...]}
shift
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(assignment srcnn-cli rescnn srgan johnson)
photos="${SRLAB_DATA_MIRROR:?point SRLAB_DATA_MIRROR at the data mirror}/SunHays80"

# Each recipe's CPU budget: about 30 minutes for the assignment note, 15 for each other note, sized
# from the step rates of this 2-core CPU in fp32.
declare -A budget=(
  [assignment]="-S train.epochs=3 -S train.perceptual_epochs=1 -S train.epoch_samples=768"
  [srcnn-cli]="-S train.epochs=10 -S train.perceptual_epochs=1"
  [rescnn]="-S train.epochs=1 -S train.perceptual_epochs=1 -S train.epoch_samples=320"
  [srgan]="-S train.epochs=5 -S train.perceptual_epochs=1 -S train.epoch_samples=400"
  [johnson]="-S train.epochs=1 -S train.perceptual_epochs=1 -S train.epoch_samples=400"
)
# Variants: RECIPE, then its CPU budget or the note's full one, then more settings. srlab's own
# (what it takes to beat bicubic where a note's model does not), and a note run to its own budget.
declare -A variant=(
  [assignment-residual]="assignment cpu -S model.residual=true -S train.epoch_samples=384"
  [srcnn-cli-full-bf16]="srcnn-cli full -S train.precision=bf16 -S eval.precision=bf16"
)
offline="-S data.train_source=folder -S data.train_dir=$photos -S loss.vgg_init=random -S loss.vgg19_init=random -S eval.lpips=off"

repo=$(pwd)
rm -rf "$work"
git clone -q "$repo" "$work"
cd "$work"
export PYTHONPATH="$work/src"  # ahead of the editable install: the clone's code, not the checkout's
for run in "${runs[@]}"; do
  recipe=$run size=cpu other=""
  if [ -n "${variant[$run]:-}" ]; then
    read -r recipe size other <<< "${variant[$run]}"
  elif [ -z "${budget[$run]:-}" ]; then
    recipe=${run%-*}
    other=$(python - "$run" "$recipe" "${run##*-}" <<'EOF'
import sys
from srlab.errors import SrlabError
from srlab.recipes import load_recipe
try:
    print(" ".join("-S " + o for o in load_recipe(sys.argv[2]).runs[sys.argv[3]]))
except (SrlabError, KeyError):
    sys.exit(f"recipes_cpu.sh: {sys.argv[1]}: no such recipe, recipe run or variant (listed in the script)")
EOF
    )
  fi
  cpu_budget=""
  [ "$size" = full ] || cpu_budget=${budget[$recipe]}
  srlab recipe "$recipe" > /dev/null
  # shellcheck disable=SC2206  # the -S lists are meant to split
  command=(dvc exp run -n "$run" $offline $cpu_budget $other)
  log="$work/$run.log"
  echo "$(date +%T) $run: ${command[*]}"
  /usr/bin/time -v "${command[@]}" > "$log" 2>&1 || { tail -n 20 "$log" >&2; exit 1; }
  dest="$repo/docs/results/$([ "$size" = full ] && echo full || echo recipes)/$run"
  rm -rf "$dest" && mkdir -p "$dest"
  cp params.yaml reports/prepare.json reports/metrics.json reports/curves_mse.png reports/curves_perceptual.png "$dest/"
  cp -r reports/train "$dest/train"
  python - "$dest/run.json" "$log" "$recipe" "${command[@]}" <<'EOF'
import json, re, subprocess, sys, time
import torch
path, log, recipe, command = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], sys.argv[4:]
h, m, s = ([0] + re.search(r"Elapsed \(wall clock\) time.*: (.+)", log).group(1).split(":"))[-3:]
lscpu = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if ":" in line)
cpu, flags = lscpu["Model name"].strip(), lscpu.get("Flags", "").split()
json.dump({
    "command": f"srlab recipe {recipe} && " + " ".join(command),
    "wall_s": round(int(h) * 3600 + int(m) * 60 + float(s)),
    "peak_rss_gb": round(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1)) / 1024**2, 2),
    "cpu": cpu, "isa": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags], "threads": torch.get_num_threads(), "torch": torch.__version__,
    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "date": time.strftime("%Y-%m-%d"),
}, open(path, "w"), indent=1)
EOF
  echo "$(date +%T) $run: done, $(python -c "import json; r = json.load(open('$dest/run.json')); print(r['wall_s'], 's,', r['peak_rss_gb'], 'GB')")"
done
