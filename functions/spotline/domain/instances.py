"""Facts about SageMaker instance types that change what a job request may contain."""

from __future__ import annotations

import re

# Families whose name does not say "d" but that come with NVMe instance storage.
_LOCAL_STORAGE_FAMILIES = frozenset(
    {"g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "p6", "trn1", "trn1n", "trn2"}
)
# "g4dn", "p3dn", "p4d", "p4de", "m5d", "c6id", "r5dn": a "d" in the suffix after the generation.
_D_SUFFIX = re.compile(r"[a-z]+\d+[a-z]*d[a-z]*")


def has_local_storage(instance_type: str) -> bool:
    """True for instance types with local NVMe storage, encrypted by the instance's hardware.

    SageMaker refuses ``VolumeKmsKeyId`` for these types, so the request must leave it out.
    """
    parts = instance_type.split(".")
    family = parts[1] if len(parts) == 3 else instance_type
    return family in _LOCAL_STORAGE_FAMILIES or bool(_D_SUFFIX.fullmatch(family))
