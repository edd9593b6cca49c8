"""Stage evaluate: Set5 / Set14 scores of bicubic, both models and any published checkpoints named in
eval.models, a summary and a per-image table, and what made them (data, backbones, devices, versions)."""

import json

from srlab.device import resolve_device
from srlab.entry import run, stage_paths
from srlab.evaluation import evaluate
from srlab.fileio import atomic_path, write_json
from srlab.params import load_params
from srlab.provenance import run_summary
from srlab.published import published_files


def main():
    args = stage_paths(
        "test", "manifest", "mse_model", "perceptual_model", "published", "sr_out", "metrics", "per_image", "provenance"
    )
    p = load_params(args.params)
    models = {f"{p.model.name}_mse": args.mse_model, f"{p.model.name}_perceptual": args.perceptual_model}
    summary, table = evaluate(p, args.test, models, args.sr_out, published_files(p.eval.models, args.published))
    manifest = json.loads(args.manifest.read_text())
    made = run_summary(p, manifest, models, resolve_device(p.train.device))
    if "published" in summary["provenance"]:
        made["published"] = summary["provenance"]["published"]
    write_json(args.provenance, made)
    write_json(args.metrics, summary)
    with atomic_path(args.per_image) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    for set_name in p.eval.sets:
        scores = "  ".join(f"{m} {v['psnr']:.2f} dB" for m, v in summary[set_name].items())
        print(f"evaluate: {set_name} x{p.data.scale}: {scores}")


if __name__ == "__main__":
    run(main, "evaluate")
