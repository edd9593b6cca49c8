"""Stage prepare: cut LR/HR patch pairs once, as uint8 .npy arrays, with a report of every image."""

from srlab.data.patches import Degradation, build_split, save_pairs
from srlab.data.images import is_image_file
from srlab.entry import run, stage_paths
from srlab.errors import SrlabError
from srlab.fileio import write_json
from srlab.params import load_params


def main():
    args = stage_paths("raw", "out", "report")
    p = load_params(args.params)
    d = p.data
    degradation = Degradation(d.degradation, d.blur_sigma)
    report = {"scale": d.scale, "hr_size": d.hr_size, "lr_size": d.hr_size // d.scale, "degradation": d.degradation}
    if d.degradation in ("gaussian", "mixed"):
        report["blur_sigma"] = d.blur_sigma
    for offset, split in enumerate(("train", "val")):
        images = sorted(f for f in (args.raw / split).iterdir() if is_image_file(f))
        pairs, used, skipped = build_split(images, d.scale, d.hr_size, d.patches_per_image, degradation, p.seed + offset, split)
        report[split] = {"images": len(used), "skipped": len(skipped), "patches": 0 if pairs is None else len(pairs.hr),
                         "used": used, "skipped_files": skipped}
        if pairs is None:
            write_json(args.report, report)
            raise SrlabError(f"{args.raw / split}: no usable image among {len(images)} (reasons in {args.report})")
        save_pairs(args.out, split, pairs)
    write_json(args.report, report)
    print(f"prepare: {report['train']['patches']} train / {report['val']['patches']} val patches "
          f"of {d.hr_size}px, x{d.scale} {d.degradation}")


if __name__ == "__main__":
    run(main, "prepare")
