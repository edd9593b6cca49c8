#!/usr/bin/env bash
# Everything srlab measures on a lent GPU, as one command with no arguments, sized for the 15
# minutes of device time a session may have (start-up included); each step stays far under the
# 10-minute limit of one command:
#
#   1. srlab bench, SRCNN x2, 64 px HR patches, batch 16: the fp32 training loop and the bf16 one,
#      each against its own ceiling (the same model on batches already on the GPU)   ~2 min
#   2. SRCNN 9-5-5 x2 on the mirror's SunHays80 photos (bench/gpu_srcnn_x2.yaml), trained for
#      4 minutes, then scored on Set5 and Set14 beside bicubic                        ~5 min
#
# On the device machine, from the repo root, with ../shared/data copied to .device-data/:
#   run(command="bash bench/gpu_session.sh", carry=[".device-data"], timeout_s=600)
# It writes $OUT/gpu_session.log and $OUT/gpu_session.json (each step's numbers under its name),
# the JSON refreshed after every step, so that a run cut short still returns what it finished.
set -euo pipefail
export PYTHONPATH=src SRLAB_DATA_MIRROR=.device-data PYTHONUNBUFFERED=1
out=${OUT:-gpu-out}
work=/tmp/srlab-session
mkdir -p "$out" "$work/results"
exec > >(tee -a "$out/gpu_session.log") 2>&1

collect() {  # every result so far into one JSON object
  python3 - "$work/results" "$out/gpu_session.json" <<'EOF'
import json, sys
from pathlib import Path
results = {f.stem: json.loads(f.read_text()) for f in sorted(Path(sys.argv[1]).glob("*.json"))}
Path(sys.argv[2]).write_text(json.dumps(results, indent=2) + "\n")
EOF
}
bench() { name=$1; shift; python3 -m srlab.cli bench --set data.hr_size=64 --set train.batch_size=16 "$@" --json "$work/results/$name.json"; collect; }

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,temperature.gpu --format=csv
bench srcnn_fp32 --set train.precision=fp32
bench srcnn_bf16 --set train.precision=bf16
python3 bench/gpu_run.py bench/gpu_srcnn_x2.yaml "$work/srcnn_x2" --minutes 4 --work "$work/scratch"
cp "$work/srcnn_x2/metrics.json" "$work/results/srcnn_x2_trained.json"
collect
echo "gpu_session: done; $out/gpu_session.json"
