"""The wheel a user builds, installed (not editable) into a fresh virtual environment.

``make`` installs the project editable, and an editable install finds every module in the source
folders whatever pyproject.toml declares; only a real install shows a package left out of the
wheel. The wheel is built from the files a clone holds and installed with its dependencies from the
registry; the installed copy is then used from a folder outside the checkout.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from tests.packaging.checkout import REPO, canonical, copy_checkout, run, tool_env

pytestmark = pytest.mark.slow

# Where each import package lives in the checkout (pyproject.toml's packages.find).
SOURCE_PACKAGES = {
    "spotline": Path("functions/spotline"),
    "spotline_container": Path("container/spotline_container"),
    "spotline_toolkit": Path("container/spotline_toolkit"),
    "spotline_local": Path("local/spotline_local"),
}
SHIPPED_SUFFIXES = (".py", ".yaml")  # modules and package data (configs)
CLI_COMMANDS = ("local", "validate", "submit", "status", "report", "demo")  # as the README documents them
CORE_PACKAGE = "spotline"  # the control plane: imports with the wheel's own dependencies alone

# Lists the installed distribution's files (its RECORD) and where they are.
LIST_INSTALLED = """
import importlib.metadata, json
dist = importlib.metadata.distribution("spotline")
print(json.dumps({"root": str(dist.locate_file("")), "files": [str(f) for f in dist.files or ()]}))
"""

# Imports each named module; reports None, or the module that was missing, or the error.
IMPORT_EACH = """
import importlib, json, sys
results = {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
        results[name] = {"file": getattr(module, "__file__", None)}
    except ModuleNotFoundError as e:
        results[name] = {"missing": e.name}
    except Exception as e:
        results[name] = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(results))
"""


@dataclass(frozen=True)
class Installed:
    """The wheel installed into a fresh virtual environment."""

    source: Path  # the clone's files the wheel was built from
    venv: Path
    site_packages: Path
    files: frozenset[str]  # installed paths, relative to site_packages
    outside: Path  # an empty working folder, away from the checkout

    def command(self, name: str) -> Path:
        return self.venv / "bin" / name

    def env(self) -> dict[str, str]:
        """A user's shell: the venv's commands on PATH, nothing pointing at the checkout."""
        return tool_env(PATH=f"{self.venv / 'bin'}:/usr/bin:/bin", HOME=str(self.outside))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = copy_checkout(root / "source")
    dist, venv, outside = root / "dist", root / "venv", root / "elsewhere"
    outside.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # pip builds in an isolated environment with pyproject.toml's build requirements, as for a user.
    run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, source], cwd=root, env=tool_env())
    wheels = sorted(dist.glob("spotline-*.whl"))
    assert len(wheels) == 1, f"expected one spotline wheel, built {wheels}"
    # No pip inside the venv (ensurepip is the slow part); this pip installs into it instead.
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root, env=tool_env())
    python = venv / "bin" / "python"
    run([*pip, "--python", python, "install", "--quiet", wheels[0]], cwd=root, env=tool_env())
    listing = json.loads(run([python, "-I", "-c", LIST_INSTALLED], cwd=outside, env=tool_env()).stdout)
    site_packages = Path(listing["root"])
    assert site_packages.is_relative_to(venv), f"spotline resolved to {site_packages}, not the fresh venv"
    return Installed(source, venv, site_packages, frozenset(listing["files"]), outside)


def shipped_source_files(source: Path) -> set[str]:
    """Every module and config of the three packages, as paths inside the wheel."""
    found: set[str] = set()
    for package, folder in SOURCE_PACKAGES.items():
        for path in (source / folder).rglob("*"):
            if path.is_file() and path.suffix in SHIPPED_SUFFIXES and "__pycache__" not in path.parts:
                found.add(f"{package}/{path.relative_to(source / folder).as_posix()}")
    return found


def by_package(paths: Iterable[str]) -> str:
    """``spotline.ledger: models.py, runs.py; ...``: which (sub)packages the paths belong to."""
    grouped: dict[str, list[str]] = {}
    for path in sorted(paths):
        pure = PurePosixPath(path)
        grouped.setdefault(".".join(pure.parent.parts), []).append(pure.name)
    return "; ".join(f"{package}: {', '.join(names)}" for package, names in grouped.items())


def module_name(path: str) -> str | None:
    """``spotline/ledger/runs.py`` -> ``spotline.ledger.runs`` (None for what is not an importable module)."""
    pure = PurePosixPath(path)
    if pure.suffix != ".py" or pure.parts[0] not in SOURCE_PACKAGES or pure.stem == "__main__":
        return None
    parts = pure.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def optional_import_names() -> frozenset[str]:
    """Top-level import names of the ``container`` and ``local`` extras (torch, PIL, moto, ...).

    Read from this environment, where make installs the extras: a module may fail to import in the
    fresh venv only because one of these is absent.
    """
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = {canonical(re.split(r"[\[<>=!~;\s]", spec, maxsplit=1)[0]) for spec in extras["container"]}
    wanted |= {canonical(re.split(r"[\[<>=!~;\s]", spec, maxsplit=1)[0]) for spec in extras["local"]}
    return frozenset(
        top
        for top, distributions in importlib.metadata.packages_distributions().items()
        if any(canonical(d) in wanted for d in distributions)
    )


def test_the_wheel_holds_every_module_and_config_of_the_source_tree(installed: Installed) -> None:
    expected = shipped_source_files(installed.source)
    assert {p.split("/")[0] for p in expected} == set(SOURCE_PACKAGES), "a source package folder is missing"
    missing = expected - installed.files
    assert not missing, f"left out of the wheel (see [tool.setuptools.packages.find]): {by_package(missing)}"


def test_the_wheel_holds_only_the_three_packages(installed: Installed) -> None:
    top_levels = {
        PurePosixPath(f).parts[0]
        for f in installed.files
        if not f.startswith("..") and ".dist-info/" not in f  # the console script lives in ../bin
    }
    # handlers/ is the Lambda entry-point folder: the SAM bundle's, not an importable package of ours.
    assert top_levels == set(SOURCE_PACKAGES)


def test_spotline_help_lists_the_commands(installed: Installed) -> None:
    shown = run([installed.command("spotline"), "--help"], cwd=installed.outside, env=installed.env()).stdout
    absent = [c for c in CLI_COMMANDS if not re.search(rf"^\s+{c}\s", shown, re.MULTILINE)]
    assert not absent, f"`spotline --help` does not list {absent}:\n{shown}"


def test_spotline_validates_the_reference_config_it_ships(installed: Installed) -> None:
    shipped = sorted(f for f in installed.files if re.fullmatch(r"spotline/(.+/)?reference\.yaml", f))
    assert len(shipped) == 1, f"expected one reference.yaml in the spotline package, found {shipped}"
    config = installed.site_packages / shipped[0]
    spotline = installed.command("spotline")
    done = run([spotline, "validate", config], cwd=installed.outside, env=installed.env())
    assert f"{config}: valid" in done.stdout


def test_installed_modules_import_with_only_the_declared_dependencies(installed: Installed) -> None:
    modules = sorted(filter(None, map(module_name, installed.files)))
    assert CORE_PACKAGE in modules
    python = installed.command("python")
    results = json.loads(
        run([python, "-I", "-c", IMPORT_EACH, *modules], cwd=installed.outside, env=installed.env()).stdout
    )
    optional = optional_import_names()
    problems: list[str] = []
    for name, result in results.items():
        core = name == CORE_PACKAGE or name.startswith(f"{CORE_PACKAGE}.")
        if "file" in result:
            if result["file"] and not Path(result["file"]).is_relative_to(installed.site_packages):
                problems.append(f"{name} imported from {result['file']}, not the installed wheel")
        elif "missing" in result and not core and result["missing"].split(".")[0] in optional:
            continue  # needs an extra (torch, moto, ...): present in the wheel is what counts here
        else:
            problems.append(f"{name}: {result.get('error') or 'needs missing module ' + result['missing']}")
    assert not problems, "\n".join(problems)
