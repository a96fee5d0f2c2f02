"""The Lambda bundle as `sam build` makes it from template.yaml, imported the way the runtime imports it.

Every function of the template is built (the repository's samconfig.toml applies, as for a user) and
its handler module is imported from its built folder alone, by an interpreter of the template's
runtime, with the function's environment, fake credentials and the network refused: what a cold
start does before the first event. The bundle must also hold nothing but Lambda code and its
pinned dependencies, built for the template's architecture.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spotline_local.template import Resolver, load_template
from tests.packaging.checkout import REPO, canonical, run, tool_env
from tests.support.processes import run_watched

pytestmark = pytest.mark.slow

SAM = REPO / ".tools" / "sam" / "bin" / "sam"  # made by `make setup` from requirements-sam.txt
TEMPLATE = REPO / "template.yaml"
INTERPRETER_VAR = "SPOTLINE_LAMBDA_PYTHON"  # overrides the search for the runtime's interpreter
REGION = "eu-west-3"
ACCOUNT = "123456789012"
PARAMETERS = {"ImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/spotline:1.0.0"}
ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # e_machine of EM_AARCH64 and EM_X86_64
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # code and dependencies of a .zip function, unzipped
# Top-level names that must not reach a function: tests, the GPU container, the local stack, the
# SageMaker SDK (the functions call SageMaker through boto3) and what only those need.
NOT_IN_BUNDLE = frozenset(
    {
        "tests",
        "container",
        "local",
        "spotline_container",
        "spotline_toolkit",
        "spotline_local",
        "sagemaker",
        "moto",
        "torch",
    }
)

# Scripts run by the runtime's interpreter with -P -S: sys.path is the bundle (PYTHONPATH) and the
# stdlib. Any attempt to open a connection while they import raises.
REFUSE_NETWORK = """
import socket

NETWORK_USE = []

def refuse(*args, **kwargs):
    NETWORK_USE.append(repr(args)[:200])
    raise OSError(f"network use while importing: {args!r}")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.getaddrinfo = socket.create_connection = refuse
"""
IMPORT_HANDLER = (
    REFUSE_NETWORK
    + """
import importlib, json, sys, sysconfig, traceback

module_name, attribute, bundle = sys.argv[1:4]
try:
    module = importlib.import_module(module_name)
except BaseException:
    traceback.print_exc()
    if NETWORK_USE:  # libraries wrap the refusal in errors of their own: say what happened
        print(f"network use while importing {module_name}: {NETWORK_USE}", file=sys.stderr)
    raise SystemExit(1)
stdlib = (sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib"))
outside = sorted(
    name
    for name, loaded in list(sys.modules.items())
    if (where := getattr(loaded, "__file__", None))
    and not where.startswith(bundle + "/")
    and not where.startswith(stdlib)
)
print(json.dumps({
    "file": module.__file__,
    "callable": callable(getattr(module, attribute, None)),
    "outside": outside,
    "network": NETWORK_USE,
    "version": "%d.%d" % sys.version_info[:2],
}))
"""
)

# Every absolute import written anywhere in the bundled first-party code (inside functions too: the
# handlers import lazily for cold start), except under `if TYPE_CHECKING:`, and whether it resolves.
RESOLVE_IMPORTS = (
    REFUSE_NETWORK
    + """
import ast, importlib.machinery, importlib.util, json, pathlib, sys

bundle, packages = pathlib.Path(sys.argv[1]), sys.argv[2:]

def type_checking(test):
    return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"

def resolves(name):
    # Look the module up on disk first, so a check runs no package's __init__; import only for
    # what exists at run time alone (os.path).
    top, *rest = name.split(".")
    spec = importlib.util.find_spec(top)
    for part in rest:
        if spec is None or spec.submodule_search_locations is None:
            break
        spec = importlib.machinery.PathFinder.find_spec(part, spec.submodule_search_locations)
    else:
        return spec is not None
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False

unresolved = {}
for package in packages:
    for path in sorted((bundle / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and type_checking(node.test)
            for statement in node.body
            for inner in ast.walk(statement)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if not resolves(name):
                    unresolved.setdefault(name, []).append(f"{path.relative_to(bundle)}:{node.lineno}")
print(json.dumps(unresolved))
"""
)


@dataclass(frozen=True)
class Function:
    """One AWS::Serverless::Function with the Globals applied and its environment resolved."""

    logical_id: str
    runtime: str  # python3.13
    architecture: str  # arm64
    handler: str  # handlers/launch.handler
    code_uri: Path
    environment: dict[str, str]

    @property
    def version(self) -> str:
        match = re.fullmatch(r"python(\d+\.\d+)", self.runtime)
        assert match, f"{self.logical_id}: runtime {self.runtime} is not a Python runtime"
        return match.group(1)

    @property
    def module_and_attribute(self) -> tuple[str, str]:
        module, _, attribute = self.handler.rpartition(".")
        return module.replace("/", "."), attribute  # as the Lambda Python runtime reads the handler


@dataclass(frozen=True)
class Bundle:
    build_dir: Path
    functions: list[Function]
    interpreters: dict[str, Path]  # runtime version -> interpreter
    home: Path  # an empty HOME for the import checks

    def artifact(self, function: Function) -> Path:
        return self.build_dir / function.logical_id


def template_functions() -> list[Function]:
    template = load_template(TEMPLATE)
    resolver = Resolver(
        template,
        stack_name="spotline",
        queue_url_base=f"https://sqs.{REGION}.amazonaws.com",
        parameters=dict(PARAMETERS),
        account_id=ACCOUNT,
        region=REGION,
    )
    defaults: dict[str, Any] = template.get("Globals", {}).get("Function", {})
    functions: list[Function] = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        own: dict[str, Any] = resource.get("Properties", {})
        props = {**defaults, **own}
        assert props.get("PackageType", "Zip") == "Zip", f"{logical_id}: only .zip functions are checked here"
        variables = resolver.resolve(
            {
                **defaults.get("Environment", {}).get("Variables", {}),
                **own.get("Environment", {}).get("Variables", {}),
            }
        )
        functions.append(
            Function(
                logical_id,
                runtime=props["Runtime"],
                architecture=props.get("Architectures", ["x86_64"])[0],
                handler=props["Handler"],
                code_uri=(REPO / props["CodeUri"]).resolve(),
                environment={k: ",".join(v) if isinstance(v, list) else str(v) for k, v in variables.items()},
            )
        )
    assert functions, "template.yaml declares no AWS::Serverless::Function"
    return functions


def runtime_interpreter(version: str) -> Path:
    """A working ``python<version>``: $SPOTLINE_LAMBDA_PYTHON, then PATH, then pyenv's versions.

    A pyenv shim on PATH fails unless its version is selected, so each candidate is run once.
    """
    name = f"python{version}"
    override = os.environ.get(INTERPRETER_VAR)
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [override] if override else []
    candidates.append(shutil.which(name))
    pyenv_versions = pyenv_root / "versions" / f"{version}.*" / "bin" / name
    candidates += sorted(glob.glob(str(pyenv_versions)), reverse=True)
    for candidate in filter(None, candidates):
        try:
            reported = run_watched(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
            ).stdout.strip()
        except OSError:
            continue
        if reported == version:
            return Path(candidate).resolve()
    pytest.fail(
        f"no working {name} (the template's runtime; `sam build` and the import check need it): "
        f"tried {INTERPRETER_VAR}={override or '(unset)'}, {name} on PATH, {pyenv_versions}. "
        f"Install Python {version} or set {INTERPRETER_VAR} to its interpreter.",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    if not SAM.is_file():
        pytest.fail(f"{SAM.relative_to(REPO)} is missing: run `make setup`", pytrace=False)
    functions = template_functions()
    interpreters = {v: runtime_interpreter(v) for v in sorted({f.version for f in functions})}
    root = tmp_path_factory.mktemp("sam")
    build_dir = root / "build"
    # sam's python builder looks for python<version> on PATH for each runtime it builds.
    path = os.pathsep.join([*(str(p.parent) for p in interpreters.values()), os.environ.get("PATH", "")])
    # --no-cached: a cached build keys its dependency folders by the build.toml next to --build-dir,
    # so each fresh build dir would leave another copy of the dependencies under .aws-sam/deps.
    build = [SAM, "build", "--template", TEMPLATE, "--build-dir", build_dir, "--cache-dir", root / "cache"]
    run(
        [*build, "--no-cached"],
        cwd=REPO,  # where samconfig.toml is read from, as for a user
        env=tool_env(PATH=path, SAM_CLI_TELEMETRY="0"),
    )
    home = root / "home"
    home.mkdir()
    return Bundle(build_dir, functions, interpreters, home)


def cold_start_env(function: Function, artifact: Path, home: Path) -> dict[str, str]:
    """What the Lambda runtime gives the function, with credentials that cannot reach an account."""
    return {
        **function.environment,
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(artifact),
        "LAMBDA_TASK_ROOT": str(artifact),
        "AWS_LAMBDA_FUNCTION_NAME": f"spotline-{function.logical_id}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "_HANDLER": function.handler,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class ColdStartFailed(Exception):
    """A script run at a function's cold start exited non-zero (its error is the message)."""


def run_in_bundle(bundle: Bundle, function: Function, script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` at a cold start of ``function``; its last output line, read as JSON."""
    artifact = bundle.artifact(function)
    if not artifact.is_dir():
        raise ColdStartFailed(f"{function.logical_id}: sam build made no {artifact.name}/")
    done = run_watched(
        [bundle.interpreters[function.version], "-P", "-S", "-B", "-c", script, *args],
        cwd=bundle.home,
        env=cold_start_env(function, artifact, bundle.home),
    )
    if done.returncode != 0:
        last_lines = "\n".join(done.stderr.strip().splitlines()[-6:])
        raise ColdStartFailed(f"{function.logical_id}: {args[0]} failed:\n{last_lines}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def first_party_packages(code_uri: Path) -> list[str]:
    """The folders of the function's own code (handlers, spotline): what sam copies from CodeUri."""
    return sorted(p.name for p in code_uri.iterdir() if p.is_dir() and any(p.rglob("*.py")))


def test_every_handler_imports_from_its_bundle_alone(bundle: Bundle) -> None:
    problems: list[str] = []
    for function in bundle.functions:
        artifact = bundle.artifact(function)
        module, attribute = function.module_and_attribute
        try:
            result = run_in_bundle(bundle, function, IMPORT_HANDLER, module, attribute, str(artifact))
        except ColdStartFailed as e:
            problems.append(str(e))
            continue
        if result["version"] != function.version:
            problems.append(f"{function.logical_id}: imported by Python {result['version']}")
        if not Path(result["file"]).is_relative_to(artifact):
            problems.append(f"{function.logical_id}: {module} came from {result['file']}")
        if not result["callable"]:
            problems.append(f"{function.logical_id}: {module} has no callable {attribute}")
        if result["outside"]:
            problems.append(f"{function.logical_id}: modules from outside the bundle: {result['outside']}")
        if result["network"]:  # attempted, refused, and the error swallowed
            problems.append(f"{function.logical_id}: network use while importing: {result['network']}")
    assert not problems, "\n".join(problems)


# spotline.notebook is the entry of the optional `notebook` extra: it imports the SageMaker SDK (and
# the pydantic it brings) inside its functions only, and no handler imports it (the cold-start test
# above would see it). Those imports alone need not resolve in a function's bundle.
OPTIONAL_EXTRA_IMPORTS = {"spotline/notebook.py": ("sagemaker", "pydantic")}


def _needed(name: str, at: str) -> bool:
    """Whether an unresolved import at ``at`` (``path:line``) is one the bundle must satisfy."""
    path = at.rsplit(":", 1)[0]
    return name.split(".", maxsplit=1)[0] not in OPTIONAL_EXTRA_IMPORTS.get(path, ())


def test_every_import_in_the_bundled_code_resolves_in_the_bundle(bundle: Bundle) -> None:
    problems: list[str] = []
    for function in bundle.functions:
        packages = first_party_packages(function.code_uri)
        assert packages, f"{function.logical_id}: no Python code under {function.code_uri}"
        try:
            unresolved = run_in_bundle(
                bundle, function, RESOLVE_IMPORTS, str(bundle.artifact(function)), *packages
            )
        except ColdStartFailed as e:
            problems.append(str(e))
            continue
        for name, places in unresolved.items():
            needed = [at for at in places if _needed(name, at)]
            if needed:
                problems.append(f"{function.logical_id}: {name} ({', '.join(needed)})")
    assert not problems, "imports the bundle cannot satisfy:\n" + "\n".join(problems)


def test_the_bundle_holds_lambda_code_and_its_pinned_dependencies_only(bundle: Bundle) -> None:
    (code_uri,) = {f.code_uri for f in bundle.functions}  # one CodeUri, one requirements.txt
    sources = {p.relative_to(code_uri) for p in code_uri.rglob("*.py") if "__pycache__" not in p.parts}
    pins = {}
    for line in (code_uri / "requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, _, version = requirement.partition("==")
            assert version, f"{code_uri}/requirements.txt: {requirement!r} is not pinned with =="
            pins[canonical(name)] = version.strip()
    problems: list[str] = []
    for function in bundle.functions:
        artifact = bundle.artifact(function)
        top = {p.name for p in artifact.iterdir()}
        if unwanted := sorted(top & NOT_IN_BUNDLE | {t for t in top if t.startswith("sagemaker")}):
            problems.append(f"{function.logical_id}: holds {unwanted}")
        test_code = sorted(
            str(p.relative_to(artifact))
            for p in artifact.rglob("*")
            if p.name == "conftest.py" or (p.is_dir() and p.name in {"tests", "test"})
        )
        if test_code:
            problems.append(f"{function.logical_id}: test code {test_code[:5]}")
        if missing := sorted(str(s) for s in sources if not (artifact / s).is_file()):
            problems.append(f"{function.logical_id}: lacks {missing}")
        installed = {}
        for info in artifact.glob("*.dist-info"):
            name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
            installed[canonical(name)] = version
        for name, version in pins.items():
            if installed.get(name) != version:
                problems.append(f"{function.logical_id}: {name} {installed.get(name)}, pinned {version}")
    assert not problems, "\n".join(problems)


def test_native_code_is_built_for_the_functions_architecture(bundle: Bundle) -> None:
    wrong: list[str] = []
    for function in bundle.functions:
        artifact = bundle.artifact(function)
        machine = ELF_MACHINES[function.architecture]
        for library in filter(Path.is_file, artifact.rglob("*.so*")):
            with library.open("rb") as elf:
                header = elf.read(20)
            if header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") != machine:
                wrong.append(f"{function.logical_id}: {library.relative_to(artifact)}")
    assert not wrong, f"native code not built for the template's architecture: {wrong}"


def test_each_function_fits_the_lambda_size_limit(
    bundle: Bundle, record_property: Callable[[str, object], None]
) -> None:
    for function in bundle.functions:
        artifact = bundle.artifact(function)
        size = sum(p.stat().st_size for p in artifact.rglob("*") if p.is_file())
        record_property(f"{function.logical_id}_bytes", size)
        assert size < LAMBDA_UNZIPPED_LIMIT, f"{function.logical_id}: {size / 2**20:.1f} MiB unzipped"
