"""What every stage script and CLI command shares: paths from argv, errors as one line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from srlab.errors import SrlabError


def stage_paths(*names: str) -> argparse.Namespace:
    """Each name becomes a required --name PATH option (dvc.yaml is the one place paths live)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    for name in names:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=Path, required=True)
    return parser.parse_args()


def run(main: Callable[[], object], prog: str) -> None:
    """Run `main`; a user error becomes one line on stderr and exit status 1, never a traceback."""
    try:
        main()
    except SrlabError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; completed checkpoints are kept and the run can resume", file=sys.stderr)
        sys.exit(130)
