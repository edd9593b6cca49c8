"""Stage download: the training photos (split into train / val) and the test sets, as plain files,
and a check that every ImageNet backbone the loss uses can be had."""

from srlab.data.sources import download
from srlab.entry import run, stage_paths
from srlab.params import load_params


def main():
    args = stage_paths("out", "downloads")
    p = load_params(args.params)
    manifest = download(p, args.out, args.downloads)
    print(
        f"download: {len(manifest['train'])} train / {len(manifest['val'])} val photos from {manifest['source']}; "
        f"test sets {', '.join(p.eval.sets)}"
    )


if __name__ == "__main__":
    run(main, "download")
