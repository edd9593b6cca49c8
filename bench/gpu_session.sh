#!/usr/bin/env bash
# What issue 6 still needs measured on one H100, in three commands that each fit the GPU machine's
# 10-minute limit (about 25 minutes of a session's 30, start-up included):
#
#   bash bench/gpu_session.sh speed   # srlab bench: SRCNN 240 px batch 64 (auto twice, fp32, compiled)
#                                     # and the EDSR recipe's shape twice, with two profiles (~7 min)
#   bash bench/gpu_session.sh x2      # EDSR x2, 7.5 minutes of training, scored (~9 min)
#   bash bench/gpu_session.sh x3x4    # EDSR x3 and x4 from the x2 model, 2.5 minutes each (~8 min)
#
# Run it in the repo root on the GPU machine, with ../shared/data copied to .device-data/ and
# carried. x3x4 starts from .device-data/out_x2/, where x2's results (x2.tgz) must be unpacked
# and carried. Each part writes its log and one tarball of its results to $OUT (./gpu-out when
# unset), the tarball refreshed after every step so that a part cut short still returns what it
# finished.
set -euo pipefail
export PYTHONPATH=src SRLAB_DATA_MIRROR=.device-data PYTHONUNBUFFERED=1
part=${1:-}
if [[ ! $part =~ ^(speed|x2|x3x4)$ ]]; then
  echo "usage: bash bench/gpu_session.sh speed|x2|x3x4 (got '$part')" >&2
  exit 2
fi
out=${OUT:-gpu-out}
work=/tmp/srlab-session/$part
mkdir -p "$out" "$work"
exec > >(tee -a "$out/$part.log") 2>&1

keep() { tar czf "$out/$part.tgz" -C "$work" .; }
bench() { python3 -m srlab.cli bench "$@"; keep; }
quality() { python3 bench/gpu_run.py "$@" --work "$work/scratch"; rm -rf "$work/scratch"; keep; }

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,temperature.gpu --format=csv
case $part in
  speed)
    edsr=(--set model.name=edsr --set data.hr_size=96 --set train.batch_size=32)
    bench --json "$work/srcnn_auto.json"
    bench --set train.precision=fp32 --json "$work/srcnn_fp32.json"
    bench --set train.compile=true --json "$work/srcnn_compile.json"
    bench "${edsr[@]}" --json "$work/edsr_x2_96px.json"
    # last, in case the profiler cannot run on that machine: each default run again (its numbers
    # are taken before the profiled epoch, so they give the run-to-run spread), then profiled
    bench --json "$work/srcnn_auto_again.json" --profile "$work/srcnn_auto_profile.txt"
    bench "${edsr[@]}" --json "$work/edsr_x2_96px_again.json" --profile "$work/edsr_x2_96px_profile.txt"
    ;;
  x2)
    quality bench/gpu_edsr_x2.yaml "$work/out_x2" --minutes 7.5
    ;;
  x3x4)
    for scale in 3 4; do
      quality "bench/gpu_edsr_x$scale.yaml" "$work/out_x$scale" --init .device-data/out_x2/edsr_mse.safetensors --minutes 2.5
    done
    ;;
esac
