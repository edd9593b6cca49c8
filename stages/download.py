"""Stage download: the training photos (split into train / val) and the test sets, as plain files.

Writes into a staging folder and swaps it in at the end, so a failed run leaves no half a dataset.
"""

import shutil

from srlab.backbones import vgg16_features
from srlab.data.download import file_md5
from srlab.data.sources import TEST_SETS, copy_images, mirror_dir, split_train_val, test_set_dir, training_images
from srlab.entry import run, stage_paths
from srlab.fileio import write_json
from srlab.params import load_params


def main():
    args = stage_paths("out", "downloads")
    p = load_params(args.params)
    if p.loss.vgg_init == "imagenet":  # fail here, minutes before training would need them
        vgg16_features("imagenet", p.seed)

    staging = args.out.with_name(args.out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    photos = training_images(p.data.train_source, p.data.train_dir)
    train, val = split_train_val(photos, p.data.train_images, p.data.val_images, p.seed)
    manifest = {
        "source": p.data.train_source if p.data.train_source != "folder" else f"folder {p.data.train_dir}",
        "train": copy_images(train, staging / "train", numbered=True),
        "val": copy_images(val, staging / "val", numbered=True),
        "test": {},
    }
    for name in p.eval.sets:
        found = test_set_dir(name, args.downloads)
        files = sorted(f for f in found.iterdir() if f.is_file())
        copy_images(files, staging / "test" / name, numbered=False)
        # the source kind, not its path: the output must hash the same on every machine
        origin = "SRLAB_DATA_MIRROR" if mirror_dir() and mirror_dir() in found.parents else TEST_SETS[name].url
        manifest["test"][name] = {"from": origin, "md5": {f.name: file_md5(f) for f in files}}
    write_json(staging / "manifest.json", manifest)

    shutil.rmtree(args.out, ignore_errors=True)
    staging.replace(args.out)
    print(f"download: {len(train)} train / {len(val)} val photos from {manifest['source']}; test sets {', '.join(p.eval.sets)}")


if __name__ == "__main__":
    run(main, "download")
