"""Stage prepare: cut LR/HR pairs once into the store (uint8 .npy files and an index), with a
report of every image. Streams photo by photo on every core; memory does not grow with the photos."""

from srlab.data.patches import prepare
from srlab.data.store import gigabytes
from srlab.entry import run, stage_paths
from srlab.params import load_params


def main():
    args = stage_paths("raw", "out", "report")
    p = load_params(args.params)
    report, workers = prepare(p.data, p.seed, args.raw, args.out, args.report)
    d = p.data
    print(
        f"prepare: {report['train']['patches']} train / {report['val']['patches']} val {d.layout} of {d.hr_size}px, "
        f"x{d.scale} {d.degradation}, {gigabytes(report['bytes'])} with {workers} workers"
    )


if __name__ == "__main__":
    run(main, "prepare")
