"""Stage download: the training photos (split into train / val) and the test sets, as plain files.

Writes into a staging folder and swaps it in at the end, so a failed run leaves no half a dataset
and no staging folder.
"""

from srlab.backbones import backbone
from srlab.data.sources import TEST_SETS, copy_images, mirror_dir, test_set_dir, training_split
from srlab.entry import run, stage_paths
from srlab.fileio import file_md5, staged_folder, write_json
from srlab.params import load_params


def main():
    args = stage_paths("out", "downloads")
    p = load_params(args.params)
    # ImageNet backbones that cannot be had fail here, minutes before training would need them
    for name, param, init, used in (("vgg16", "loss.vgg_init", p.loss.vgg_init, True),
                                    ("vgg19", "loss.vgg19_init", p.loss.vgg19_init, p.loss.vgg19_weight > 0),
                                    ("resnet18", "loss.resnet_init", p.loss.resnet_init, p.loss.resnet_weight > 0)):
        if used and init == "imagenet":
            backbone(name, init, p.seed, param)

    d = p.data
    train, val = training_split(d.train_source, d.train_dir, d.train_images, d.val_images, p.seed, args.downloads)
    with staged_folder(args.out) as staging:
        manifest = {
            "source": d.train_source if d.train_source != "folder" else f"folder {d.train_dir}",
            "train": copy_images(train, staging / "train", numbered=True),
            "val": copy_images(val, staging / "val", numbered=True),
            "test": {},
        }
        mirror = mirror_dir()
        for name in p.eval.sets:
            found = test_set_dir(name, args.downloads)
            files = sorted(f for f in found.iterdir() if f.is_file())
            copy_images(files, staging / "test" / name, numbered=False)
            # the source kind, not its path: the output must hash the same on every machine
            origin = "SRLAB_DATA_MIRROR" if mirror and mirror in found.parents else TEST_SETS[name].url
            manifest["test"][name] = {"from": origin, "md5": {f.name: file_md5(f) for f in files}}
        write_json(staging / "manifest.json", manifest)
    print(f"download: {len(train)} train / {len(val)} val photos from {manifest['source']}; test sets {', '.join(p.eval.sets)}")


if __name__ == "__main__":
    run(main, "download")
