"""``python -m spotline_container train`` (what the image's ``train`` program runs)."""

from __future__ import annotations

import os
import sys


def main() -> int:
    # Before torch is imported: OpenMP reads its thread count and wait policy once, at start.
    from spotline_container.threads import configure_threads

    configure_threads(os.environ)
    from spotline_container.runner import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
