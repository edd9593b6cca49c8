#!/usr/bin/env bash
# The README's table of the design notes' recipes, measured on this machine: each recipe (and its
# other runs) through `srlab recipe NAME && dvc exp run`, in a scratch clone of this repository,
# with a CPU budget on top (-S: fewer epochs and patches; the mirror's SunHays80 photos stand in
# for VOC2011 / DIV2K / the 91 images, which cannot be downloaded here; random backbones).
# Prints one markdown row per run: Set5 and Set14 Y-PSNR of bicubic, <model>_mse and
# <model>_perceptual, the wall time and the peak RSS (/usr/bin/time -v).
#
#   SRLAB_DATA_MIRROR=../shared/data bash bench/recipes_cpu.sh WORK [NAME ...]
#   ONLY_MAIN=1 ...: each recipe's main run alone, not its other runs
set -euo pipefail
work=${1:?usage: bash bench/recipes_cpu.sh WORK [NAME ...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(assignment srcnn-cli rescnn srgan johnson)
photos="${SRLAB_DATA_MIRROR:?point SRLAB_DATA_MIRROR at the data mirror}/SunHays80"

# the CPU budget of each recipe: what the README's table says was used
declare -A budget=(
  [assignment]="-S data.patches_per_image=8 -S train.epochs=3 -S train.perceptual_epochs=1 -S train.epoch_samples=256"
  [srcnn-cli]="-S train.epochs=20 -S train.perceptual_epochs=1"
  [rescnn]="-S train.epochs=3 -S train.perceptual_epochs=3 -S train.epoch_samples=480"
  [srgan]="-S data.patches_per_image=8 -S train.epochs=2 -S train.perceptual_epochs=1 -S train.epoch_samples=160"
  [johnson]="-S data.patches_per_image=4 -S train.epochs=2 -S train.perceptual_epochs=2 -S train.epoch_samples=80"
)
offline="-S data.train_source=folder -S data.train_dir=$photos -S loss.vgg_init=random -S loss.vgg19_init=random -S eval.lpips=off"

repo=$(pwd)
rm -rf "$work"
git clone -q "$repo" "$work"
cd "$work"
echo "| run | Set5 bicubic / mse / perceptual | Set14 bicubic / mse / perceptual | wall | peak RSS |"
echo "|---|---|---|---|---|"
for name in "${names[@]}"; do
  srlab recipe "$name" > /dev/null
  runs=("main")
  mapfile -t more < <(python -c "from srlab.recipes import load_recipe; r = load_recipe('$name'); print('\n'.join(f'{k}\t{\" \".join(\"-S \" + o for o in v)}' for k, v in r.runs.items()))")
  [ -n "${ONLY_MAIN:-}" ] || for line in "${more[@]}"; do [ -n "$line" ] && runs+=("$line"); done
  for run in "${runs[@]}"; do
    label=${run%%$'\t'*}
    extra=""; [ "$label" != main ] && extra=${run#*$'\t'}
    log="$work/$name-$label.log"
    # shellcheck disable=SC2086  # the -S lists are meant to split
    /usr/bin/time -v dvc exp run -n "$name-$label" $offline ${budget[$name]} $extra > "$log" 2>&1 || { tail -n 20 "$log" >&2; exit 1; }
    python - "$name-$label" "$log" <<'EOF'
import json, re, sys
name, log = sys.argv[1], open(sys.argv[2]).read()
m = json.load(open("reports/metrics.json"))
model = m["provenance"]["model"]
cells = [" / ".join(f"{m[s][k]['psnr']:.2f}" for k in ("bicubic", f"{model}_mse", f"{model}_perceptual")) for s in ("Set5", "Set14")]
wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", log).group(1)
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1)) / 1024**2
print(f"| {name} (x{m['provenance']['scale']}) | {cells[0]} | {cells[1]} | {wall} | {rss:.2f} GB |")
EOF
  done
done
