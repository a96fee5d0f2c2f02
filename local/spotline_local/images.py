"""Which local command runs a training image: the local SageMaker runs images without Docker.

The stack's own image runs spotline's container entry point (``python -m spotline_container train``).
Any other image needs a line in an images file (YAML, named by ``SPOTLINE_LOCAL_IMAGES`` or
``spotline local up --images``), which maps the image URI a config names to the command that stands
in for it, run in the job's ``/opt/ml`` tree (``SAGEMAKER_BASE_DIR``):

```yaml
images:
  123456789012.dkr.ecr.us-east-1.amazonaws.com/rail-geometry:1.0:
    command: ["{python}", "{here}/train.py"]   # {python}: this interpreter; {here}: this file's folder
    environment: {OMP_NUM_THREADS: "1"}        # optional, under the job's own Environment
```

An image with no line runs under a Docker or Podman engine when one is on ``PATH`` (``<engine> run
--rm -v <tree>:/opt/ml <image> train``: the contract's own path; untested here, where no engine
runs); without one its job fails as SageMaker fails a job whose image it cannot pull. The stack
allows the images of its images file (their repositories become its ``AllowedImages``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spotline.config.images import repository_arn

IMAGES_ENV = "SPOTLINE_LOCAL_IMAGES"
OWN_COMMAND = ("{python}", "-m", "spotline_container", "train")
ENGINES = ("docker", "podman")


class ImagesError(ValueError):
    """The images file is malformed."""


@dataclass(frozen=True)
class ImageCommand:
    argv: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalImages:
    """Image URI -> the command that stands in for it (the stack's own image: spotline's container)."""

    commands: Mapping[str, ImageCommand] = field(default_factory=dict)

    def command_for(self, image: str, own_image: str) -> ImageCommand | None:
        """The command for ``image``; None if neither this file nor a container engine can run it."""
        if not image or image == own_image:
            return ImageCommand(tuple(a.replace("{python}", sys.executable) for a in OWN_COMMAND))
        if image in self.commands:
            return self.commands[image]
        engine = next((e for e in ENGINES if shutil.which(e)), None)
        if engine is None:
            return None
        return ImageCommand((engine, "run", "--rm", "-v", "{base}:/opt/ml", image, "train"))

    def allowed_repositories(self) -> tuple[str, ...]:
        """The ECR repository ARNs of the mapped images (what the stack's AllowedImages must hold)."""
        arns = (repository_arn(image) for image in self.commands)
        return tuple(sorted({a for a in arns if a is not None}))


def parse_images(document: Any, here: Path) -> LocalImages:
    entries = document.get("images") if isinstance(document, Mapping) else None
    if not isinstance(entries, Mapping):
        raise ImagesError("expected a mapping with an 'images' mapping (image URI -> {command: [...]})")
    commands = {}
    for image, entry in entries.items():
        if repository_arn(str(image)) is None:
            raise ImagesError(f"images: {image!r} is not an ECR image URI (<account>.dkr.ecr.<region>...)")
        command = entry.get("command") if isinstance(entry, Mapping) else None
        if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
            raise ImagesError(f"images.{image}.command: expected a non-empty list of strings")
        environment = entry.get("environment") or {}
        if not isinstance(environment, Mapping):
            raise ImagesError(f"images.{image}.environment: expected a mapping")
        argv = tuple(a.replace("{python}", sys.executable).replace("{here}", str(here)) for a in command)
        commands[str(image)] = ImageCommand(argv, {str(k): str(v) for k, v in environment.items()})
    return LocalImages(commands)


def load_images(path: str | Path | None) -> LocalImages:
    if not path:
        return LocalImages()
    file = Path(path).resolve()
    try:
        document = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ImagesError(f"{path}: {e}") from e
    return parse_images(document, file.parent)
