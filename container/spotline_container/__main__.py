"""``python -m spotline_container train`` (what the image's ``train`` program runs)."""

from __future__ import annotations

import sys

from spotline_container.runner import main

if __name__ == "__main__":
    sys.exit(main())
