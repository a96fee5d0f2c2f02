"""The notebook path needs the SageMaker SDK, which lives in a venv of its own (.tools/notebook).

`make test-notebook` builds it and runs this folder with ``SPOTLINE_NOTEBOOK_PYTHON`` set; `make test`
(a plain `pytest` of the repository) leaves the folder out, so that the SDK's 1 GB install does not
push it past its 10 minutes (CI runs both).
"""

from __future__ import annotations

import os

NOTEBOOK_PYTHON_ENV = "SPOTLINE_NOTEBOOK_PYTHON"
collect_ignore_glob = [] if os.environ.get(NOTEBOOK_PYTHON_ENV) else ["test_*.py"]
