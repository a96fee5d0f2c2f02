"""Faults the local SageMaker injects, so recovery is shown rather than promised.

A faults file (YAML or JSON, named by ``SPOTLINE_LOCAL_FAULTS`` or passed to the stack) lists rules;
the first rule whose ``job`` glob (and ``attempt``, if given) matches a new job applies to it:

```yaml
faults:
  - job: "*-a01"                 # fnmatch glob on the training job name
    kind: spot_interruption       # SIGTERM when the container reports this iteration (step=N)...
    at_iteration: 40
    # at_line: 'valid/accuracy='  # ...or prints a line this regex finds (any image's metric line)
    # after_seconds: 30           # ...or has trained this long
    then: MaxWaitTimeExceeded     # job ends Stopped/MaxWaitTimeExceeded (or Interrupted);
                                  # "restart": SageMaker restarts the same job from its checkpoints
  - job: "*-a02"
    kind: capacity_error          # Failed: CapacityError, before any training
  - job: "*infer*"
    kind: internal_error          # Failed: InternalServerError
```
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FAULTS_ENV = "SPOTLINE_LOCAL_FAULTS"
KINDS = ("spot_interruption", "capacity_error", "internal_error")
ENDINGS = ("MaxWaitTimeExceeded", "Interrupted", "restart")
_ATTEMPT = re.compile(r"-a(\d{2})$")


class FaultsError(ValueError):
    """The faults file is malformed."""


@dataclass(frozen=True)
class Fault:
    job: str
    kind: str
    attempt: int | None = None
    at_iteration: int = 0
    then: str = "MaxWaitTimeExceeded"
    at_line: str | None = None  # a regex: interrupt on the first output line it finds
    after_seconds: float | None = None  # interrupt after this long in training

    def __post_init__(self) -> None:
        if self.at_line is not None:
            try:
                re.compile(self.at_line)
            except re.error as e:
                raise FaultsError(f"at_line {self.at_line!r}: {e}") from e
        if self.after_seconds is not None and not 0 <= self.after_seconds < float("inf"):
            raise FaultsError(f"after_seconds {self.after_seconds!r}: expected a finite number >= 0")

    def matches(self, job_name: str) -> bool:
        if not fnmatch.fnmatchcase(job_name, self.job):
            return False
        if self.attempt is None:
            return True
        match = _ATTEMPT.search(job_name)
        return match is not None and int(match.group(1)) == self.attempt


def parse_faults(document: Any) -> list[Fault]:
    entries = document.get("faults", []) if isinstance(document, Mapping) else document
    if not isinstance(entries, list):
        raise FaultsError("expected a list of faults (or a mapping with a 'faults' list)")
    faults = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise FaultsError(f"faults[{i}]: expected a mapping")
        kind = entry.get("kind")
        if kind not in KINDS:
            raise FaultsError(f"faults[{i}].kind: {kind!r}, expected one of {', '.join(KINDS)}")
        then = str(entry.get("then", "MaxWaitTimeExceeded"))
        if then not in ENDINGS:
            raise FaultsError(f"faults[{i}].then: {then!r}, expected one of {', '.join(ENDINGS)}")
        attempt = entry.get("attempt")
        at_line, after = entry.get("at_line"), entry.get("after_seconds")
        faults.append(
            Fault(
                job=str(entry.get("job", "*")),
                kind=str(kind),
                attempt=int(attempt) if attempt is not None else None,
                at_iteration=int(entry.get("at_iteration", 0)),
                then=then,
                at_line=str(at_line) if at_line is not None else None,
                after_seconds=float(after) if after is not None else None,
            )
        )
    return faults


def load_faults(path: str | Path | None) -> list[Fault]:
    if not path:
        return []
    text = Path(path).read_text()
    try:
        document = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise FaultsError(f"{path}: {e}") from e
    return parse_faults(document or [])


def fault_for(job_name: str, faults: Iterable[Fault]) -> Fault | None:
    return next((f for f in faults if f.matches(job_name)), None)
