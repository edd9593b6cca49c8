"""Stage prepare: cut LR/HR pairs once into the store (uint8 .npy files and an index), with a
report of every image. Streams photo by photo on every core; memory does not grow with the photos."""

from srlab.data.images import is_image_file
from srlab.data.patches import Cutting, Degradation, check_room, default_workers, header_pairs, prepare_split
from srlab.data.store import gigabytes, write_index
from srlab.entry import run, stage_paths
from srlab.errors import SrlabError
from srlab.fileio import staged_folder, write_json
from srlab.params import load_params


def main():
    args = stage_paths("raw", "out", "report")
    p = load_params(args.params)
    d = p.data
    cutting = Cutting(d.scale, d.hr_size, Degradation(d.degradation, d.blur_sigma), d.layout, d.patches_per_image, d.step())
    workers = d.workers or default_workers()
    meta = {"layout": d.layout, "scale": d.scale, "hr_size": d.hr_size, "lr_size": d.hr_size // d.scale,
            "degradation": d.degradation}
    meta.update({"patches_per_image": d.patches_per_image} if d.layout == "patches" else {"tile_step": d.step()})
    if d.degradation in ("gaussian", "mixed"):
        meta["blur_sigma"] = d.blur_sigma
    photos = {split: sorted(f for f in (args.raw / split).iterdir() if is_image_file(f)) for split in ("train", "val")}
    counts = {split: header_pairs(paths, cutting) for split, paths in photos.items()}
    check_room(args.out.parent, sum(map(sum, counts.values())) * cutting.row_bytes())

    report, splits = dict(meta), {}
    with staged_folder(args.out) as staging:
        for offset, (split, paths) in enumerate(photos.items()):
            entry, used, skipped = prepare_split(paths, staging, split, cutting, p.seed + offset, workers, counts[split])
            report[split] = {"images": len(used), "skipped": len(skipped), "patches": entry["count"] if entry else 0,
                             "used": used, "skipped_files": skipped}
            if entry is None:
                write_json(args.report, report)
                raise SrlabError(f"{args.raw / split}: no usable image among {len(paths)} (reasons in {args.report})")
            splits[split] = entry
        write_index(staging, meta, splits)
    report["bytes"] = sum(e[kind]["bytes"] for e in splits.values() for kind in ("hr", "lr", "corners"))
    write_json(args.report, report)
    print(f"prepare: {report['train']['patches']} train / {report['val']['patches']} val {d.layout} of {d.hr_size}px, "
          f"x{d.scale} {d.degradation}, {gigabytes(report['bytes'])} with {workers} workers")


if __name__ == "__main__":
    run(main, "prepare")
