"""Build driver for the patched CPython runtime.

Stages, each incremental: resolve and verify an upstream source (tarball,
unpacked tree, URL or git tag) -> unpack -> apply ``patches/<series>`` ->
copy ``cpython-overlay/`` -> configure -> make.  Also builds an unpatched
("vanilla") interpreter from the same source with the same flags, and ports a
verified series to a new release (``port``).

Downloads and build trees live in a cache directory outside the repository:
``$RETRACE_CPYTHON_CACHE`` (default ``~/.cache/retrace-cpython``).

    python tools/cpython_runtime.py build --series 3.13
    python tools/cpython_runtime.py build --series 3.13 --vanilla
    python tools/cpython_runtime.py port --series 3.12 --source Python-3.12.8.tar.xz
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "patches"
OVERLAY = ROOT / "cpython-overlay"
DEFAULT_CONFIGURE = ("--without-ensurepip",)
UPSTREAM_URL = "https://www.python.org/ftp/python/{v}/Python-{v}.tar.xz"
UPSTREAM_GIT = "https://github.com/python/cpython.git"


class RuntimeBuildError(Exception):
    """A build stage failed; the message says what to do."""


# --------------------------------------------------------------------------- #
# series and versions


@dataclass(frozen=True)
class Series:
    name: str
    directory: Path
    versions: str
    probe_abi: str
    patches: tuple[str, ...]
    regenerated: tuple[str, ...]
    verified: tuple[dict, ...]
    port_from: str | None

    def verified_release(self, version: str) -> dict | None:
        return next((v for v in self.verified if v["version"] == version), None)

    def latest_verified(self) -> dict | None:
        if not self.verified:
            return None
        return max(self.verified, key=lambda v: version_tuple(v["version"]))

    def accepts(self, version: str) -> bool:
        return version_in_range(version, self.versions)


def version_tuple(version: str) -> tuple[int, ...]:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        raise RuntimeBuildError(f"not a final CPython release version: {version!r}")
    return tuple(int(x) for x in match.groups())


def version_in_range(version: str, spec: str) -> bool:
    """Check *version* against a ``>=a.b.c,<x.y`` range."""
    have = version_tuple(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        op, bound = re.fullmatch(r"(>=|<=|<|>|==)\s*([\d.]+)", clause).groups()
        want = tuple(int(x) for x in bound.split("."))
        cmp_have = have[: len(want)]
        ok = {
            ">=": cmp_have >= want,
            "<=": cmp_have <= want,
            ">": cmp_have > want,
            "<": cmp_have < want,
            "==": cmp_have == want,
        }[op]
        if not ok:
            return False
    return True


def load_series(name: str) -> Series:
    directory = PATCHES / name
    manifest = directory / "series.toml"
    if not manifest.is_file():
        known = sorted(p.name for p in PATCHES.iterdir() if (p / "series.toml").is_file())
        raise RuntimeBuildError(f"no patch series {name!r}; known series: {', '.join(known)}")
    data = tomllib.loads(manifest.read_text())
    head = data["series"]
    return Series(
        name=head["name"],
        directory=directory,
        versions=head["versions"],
        probe_abi=head["probe_abi"],
        patches=tuple(head.get("patches", ())),
        regenerated=tuple(head.get("regenerated", ())),
        verified=tuple(data.get("verified", ())),
        port_from=head.get("port_from"),
    )


def cache_dir() -> Path:
    env = os.environ.get("RETRACE_CPYTHON_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "retrace-cpython"


# --------------------------------------------------------------------------- #
# sources


@dataclass(frozen=True)
class Source:
    version: str
    path: Path  # a tarball or an unpacked tree
    sha256: str | None  # of the tarball; None for trees
    verified: bool


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_version(tree: Path) -> str:
    header = tree / "Include" / "patchlevel.h"
    if not header.is_file():
        raise RuntimeBuildError(f"{tree} is not a CPython source tree (no Include/patchlevel.h)")
    match = re.search(r'#define\s+PY_VERSION\s+"([^"]+)"', header.read_text())
    if not match:
        raise RuntimeBuildError(f"cannot read PY_VERSION from {header}")
    return match.group(1)


def tarball_version(path: Path) -> str:
    match = re.search(r"(\d+\.\d+\.\d+)", path.name)
    if not match:
        raise RuntimeBuildError(
            f"cannot tell the CPython version from the tarball name {path.name!r}; "
            "name it Python-X.Y.Z.tar.xz (or .tgz)"
        )
    return match.group(1)


def download(url: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    print(f"retrace-cpython: downloading {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RuntimeBuildError(f"cannot download {url}: {exc}") from None
    tmp.replace(dest)
    return dest


def no_source_message(series: Series) -> str:
    return (
        f"no verified CPython {series.name} release in patches/{series.name}/series.toml and no "
        "source given.\n"
        "Provide one with CPYTHON_SOURCE=<Python-X.Y.Z.tar.xz | unpacked tree | URL> (or "
        "CPYTHON_REPO_URL=<git url> with --tag vX.Y.Z), then:\n"
        f"  nox -s port-patches-{series.name}   # carry the nearest verified series over, "
        "report rejects, write a candidate series\n"
        f"  review the candidate, copy it to patches/{series.name}/, build with "
        f"`nox -s build-runtime-{series.name} -- --unverified`, run smoke-{series.name}, "
        "then add the release and its tarball sha256 under [[verified]]."
    )


def resolve_source(
    series: Series,
    *,
    version: str | None,
    source: str | None,
    repo_url: str | None,
    tag: str | None,
    unverified: bool,
) -> Source:
    """Find (and if needed download) the upstream source selected by the caller."""
    cache = cache_dir()
    source = source or os.environ.get("CPYTHON_SOURCE") or None
    repo_url = repo_url or os.environ.get("CPYTHON_REPO_URL") or None
    tag = tag or os.environ.get("CPYTHON_TAG") or None
    if source is None and repo_url is not None:
        if not tag:
            raise RuntimeBuildError("CPYTHON_REPO_URL needs a release tag (--tag or CPYTHON_TAG)")
        dest = cache / "git" / re.sub(r"[^\w.-]", "_", f"{repo_url}@{tag}")
        if not (dest / "Include" / "patchlevel.h").is_file():
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            run(["git", "clone", "--depth", "1", "--branch", tag, repo_url, str(dest)])
        source = str(dest)
    if source is None:
        release = series.verified_release(version) if version else series.latest_verified()
        if release is None:
            if version is None:
                raise RuntimeBuildError(no_source_message(series))
            if not unverified:
                raise RuntimeBuildError(
                    f"CPython {version} is not a verified release of series {series.name}; "
                    "pass --unverified to build it anyway"
                )
            release = {"version": version, "tarball": f"Python-{version}.tar.xz"}
        tarball = cache / "src" / release["tarball"]
        if not tarball.is_file():
            download(release.get("url") or UPSTREAM_URL.format(v=release["version"]), tarball)
        source = str(tarball)
    if re.match(r"^https?://", source):
        name = source.rsplit("/", 1)[-1]
        tarball = cache / "src" / name
        if not tarball.is_file():
            download(source, tarball)
        source = str(tarball)
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise RuntimeBuildError(f"CPython source {path} does not exist")
    if path.is_dir():
        found = tree_version(path)
        digest = None
    else:
        found = tarball_version(path)
        digest = sha256_of(path)
    if version and found != version:
        raise RuntimeBuildError(f"source {path} is CPython {found}, not the requested {version}")
    if not series.accepts(found):
        raise RuntimeBuildError(
            f"CPython {found} is outside series {series.name} ({series.versions})"
        )
    release = series.verified_release(found)
    verified = release is not None and digest is not None and digest == release["sha256"]
    if not verified and not unverified:
        if release is None:
            why = f"{found} is not a verified release of series {series.name}"
        elif digest is None:
            why = f"{path} is an unpacked tree, so its sha256 cannot be checked"
        else:
            why = f"sha256 of {path.name} is {digest}, series.toml expects {release['sha256']}"
        raise RuntimeBuildError(f"refusing unverified source: {why}; pass --unverified to build")
    return Source(version=found, path=path, sha256=digest, verified=verified)


# --------------------------------------------------------------------------- #
# stages


def run(cmd: list[str], cwd: Path | None = None, *, nice: bool = False, log: Path | None = None):
    if nice and shutil.which("nice"):
        cmd = ["nice", "-n", "10", *cmd]
    if log is None:
        result = subprocess.run(cmd, cwd=cwd)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            result = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        where = f" (log: {log})" if log else ""
        raise RuntimeBuildError(f"command failed ({result.returncode}): {' '.join(cmd)}{where}")


def unpack(source: Source, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    if source.path.is_dir():
        shutil.copytree(
            source.path,
            dest,
            dirs_exist_ok=True,
            symlinks=True,
            ignore=shutil.ignore_patterns(".git"),
        )
    else:
        run(["tar", "-xf", str(source.path), "-C", str(dest), "--strip-components=1"])
    if tree_version(dest) != source.version:
        raise RuntimeBuildError(f"{source.path} does not unpack to CPython {source.version}")


def patch_files(series: Series) -> list[Path]:
    if not series.patches:
        raise RuntimeBuildError(
            f"series {series.name} has no patches yet: port the nearest verified series with "
            f"`CPYTHON_SOURCE=... nox -s port-patches-{series.name}` (see docs/building.md)"
        )
    files = [series.directory / name for name in series.patches]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise RuntimeBuildError(f"series.toml lists missing patches: {', '.join(missing)}")
    return files


def apply_patches(series: Series, tree: Path) -> None:
    for patch in patch_files(series):
        dry = subprocess.run(
            ["patch", "-p1", "--batch", "--forward", "--fuzz=0", "--dry-run", "-i", str(patch)],
            cwd=tree,
            capture_output=True,
            text=True,
        )
        if dry.returncode != 0:
            raise RuntimeBuildError(
                f"{patch.name} does not apply cleanly to {tree}:\n{dry.stdout}{dry.stderr}"
                f"use `nox -s port-patches-{series.name}` to port the series"
            )
        run(
            ["patch", "-p1", "--batch", "--forward", "--fuzz=0", "--quiet", "-i", str(patch)],
            cwd=tree,
        )


REGEN_313 = [
    ["opcode_id_generator.py", "-o", "Include/opcode_ids.h", "Python/bytecodes.c"],
    ["target_generator.py", "-o", "Python/opcode_targets.h", "Python/bytecodes.c"],
    ["uop_id_generator.py", "-o", "Include/internal/pycore_uop_ids.h", "Python/bytecodes.c"],
    ["py_metadata_generator.py", "-o", "Lib/_opcode_metadata.py", "Python/bytecodes.c"],
    ["tier1_generator.py", "-o", "Python/generated_cases.c.h", "Python/bytecodes.c"],
    ["tier2_generator.py", "-o", "Python/executor_cases.c.h", "Python/bytecodes.c"],
    [
        "optimizer_generator.py",
        "-o",
        "Python/optimizer_cases.c.h",
        "Python/optimizer_bytecodes.c",
        "Python/bytecodes.c",
    ],
    [
        "opcode_metadata_generator.py",
        "-o",
        "Include/internal/pycore_opcode_metadata.h",
        "Python/bytecodes.c",
    ],
    [
        "uop_metadata_generator.py",
        "-o",
        "Include/internal/pycore_uop_metadata.h",
        "Python/bytecodes.c",
    ],
]


def regenerate_cases(tree: Path) -> list[str]:
    """Run CPython's case generators in *tree*; return the files that changed."""
    gen = tree / "Tools" / "cases_generator"
    if (gen / "tier1_generator.py").is_file():
        commands = [[str(gen / c[0]), *c[1:]] for c in REGEN_313]
    elif (gen / "generate_cases.py").is_file():
        commands = [[str(gen / "generate_cases.py")]]
    else:
        return []
    before = {p: p.read_bytes() for p in _generated_files(tree)}
    python = os.environ.get("PYTHON_FOR_REGEN") or sys.executable
    for cmd in commands:
        run([python, *cmd], cwd=tree)
    return [
        str(p.relative_to(tree)) for p in _generated_files(tree) if before.get(p) != p.read_bytes()
    ]


def _generated_files(tree: Path) -> list[Path]:
    names = [
        "Include/opcode_ids.h",
        "Python/opcode_targets.h",
        "Include/internal/pycore_uop_ids.h",
        "Lib/_opcode_metadata.py",
        "Python/generated_cases.c.h",
        "Python/executor_cases.c.h",
        "Python/optimizer_cases.c.h",
        "Include/internal/pycore_opcode_metadata.h",
        "Include/internal/pycore_uop_metadata.h",
        "Python/abstract_interp_cases.c.h",
    ]
    return [tree / n for n in names if (tree / n).is_file()]


def copy_overlay(tree: Path) -> list[str]:
    """Copy overlay files whose content differs (unchanged files keep their mtime)."""
    changed = []
    for src in sorted(OVERLAY.rglob("*")):
        if not src.is_file() or src.name.startswith("."):
            continue
        rel = src.relative_to(OVERLAY)
        dest = tree / rel
        data = src.read_bytes()
        if dest.is_file() and dest.read_bytes() == data:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        changed.append(str(rel))
    return changed


def digest_of(paths: list[Path], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


INPUTS_FILE = "inputs.sha256"


def runtime_inputs(series: Series) -> str:
    """Digest of what a patched build is made from here: the series' patches and the overlay.

    Written next to a finished build (``inputs.sha256``) so tools and tests can tell a cached
    interpreter built from other patches or overlay files from an up-to-date one.
    """
    overlay = sorted(p for p in OVERLAY.rglob("*") if p.is_file() and not p.name.startswith("."))
    digest = hashlib.sha256(series.name.encode())
    for path in [*patch_files(series), *overlay]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_is_current(build_dir: Path) -> bool:
    """True when the patched build in *build_dir* was made from this checkout's inputs."""
    stamp = build_dir / INPUTS_FILE
    if not stamp.is_file():
        return False
    version = build_dir.name.split("-")[0]
    try:
        series = load_series(".".join(version.split(".")[:2]))
        return stamp.read_text().strip() == runtime_inputs(series)
    except RuntimeBuildError:
        return False


@dataclass(frozen=True)
class BuildResult:
    build_dir: Path
    tree: Path
    executable: Path
    version: str
    vanilla: bool
    verified: bool
    seconds: float
    cpu_seconds: float  # user+sys of the build's child processes
    steps: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "build_dir": str(self.build_dir),
            "tree": str(self.tree),
            "executable": str(self.executable),
            "version": self.version,
            "vanilla": self.vanilla,
            "verified": self.verified,
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "steps": list(self.steps),
        }


def configure_args() -> list[str]:
    extra = os.environ.get("RETRACE_CPYTHON_CONFIGURE_FLAGS", "").split()
    return [*DEFAULT_CONFIGURE, *extra]


_LOCKED: set[Path] = set()


@contextlib.contextmanager
def exclusive(build_dir: Path) -> Iterator[None]:
    """Hold the build directory's lock: two builds never share a tree at once.

    Reentrant within one process (``build`` calls ``prepare``); another process
    waits, saying so, until the first one is done.
    """
    build_dir = build_dir.resolve()
    if build_dir in _LOCKED:
        yield
        return
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"retrace-cpython: waiting for another build in {build_dir} to finish",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        _LOCKED.add(build_dir)
        try:
            yield
        finally:
            _LOCKED.discard(build_dir)


def prepare(
    series: Series,
    source: Source,
    *,
    vanilla: bool,
    build_dir: Path | None = None,
    steps: list[str],
) -> Path:
    """Unpack, patch and overlay (incrementally); return the source tree."""
    kind = "vanilla" if vanilla else "retrace"
    build_dir = build_dir or cache_dir() / "build" / f"{source.version}-{kind}"
    with exclusive(build_dir):
        return _prepare(series, source, vanilla=vanilla, build_dir=build_dir, steps=steps)


def _prepare(
    series: Series, source: Source, *, vanilla: bool, build_dir: Path, steps: list[str]
) -> Path:
    kind = "vanilla" if vanilla else "retrace"
    tree = build_dir / "src"
    stamp = build_dir / "prepared.stamp"
    key = digest_of(
        [] if vanilla else patch_files(series),
        f"{source.path}|{source.sha256}|{kind}",
    )
    if not stamp.is_file() or stamp.read_text() != key or not tree.is_dir():
        stamp.unlink(missing_ok=True)
        unpack(source, tree)
        steps.append("unpack")
        if not vanilla:
            apply_patches(series, tree)
            steps.append("apply")
            if series.regenerated:
                # The check depends only on the source and the patches (the
                # stamp key): once passed, later unpacks of the same inputs
                # skip it, so a rebuild from scratch costs what a vanilla one does.
                checked = cache_dir() / "regen-checked" / key
                if not checked.is_file():
                    drift = regenerate_cases(tree)
                    if drift:
                        raise RuntimeBuildError(
                            "regenerating the eval-loop cases changes "
                            f"{', '.join(drift)}: the regenerated patches of series "
                            f"{series.name} are stale; regenerate them (see docs/building.md)"
                        )
                    checked.parent.mkdir(parents=True, exist_ok=True)
                    checked.write_text(f"{source.version}\n")
                    steps.append("regen-check")
        stamp.write_text(key)
    if not vanilla:
        changed = copy_overlay(tree)
        if changed:
            steps.append("overlay:" + ",".join(changed))
    return tree


def build(
    series: Series,
    source: Source,
    *,
    vanilla: bool = False,
    build_dir: Path | None = None,
    jobs: int | None = None,
) -> BuildResult:
    import resource
    import time

    start = time.monotonic()
    cpu_start = resource.getrusage(resource.RUSAGE_CHILDREN)
    steps: list[str] = []
    kind = "vanilla" if vanilla else "retrace"
    build_dir = build_dir or cache_dir() / "build" / f"{source.version}-{kind}"
    with exclusive(build_dir):
        inputs = None if vanilla else runtime_inputs(series)  # before the overlay is copied
        tree = prepare(series, source, vanilla=vanilla, build_dir=build_dir, steps=steps)
        return _build(source, build_dir, jobs, tree, steps, start, cpu_start, inputs)


def _build(
    source: Source,
    build_dir: Path,
    jobs: int | None,
    tree: Path,
    steps: list[str],
    start: float,
    cpu_start: Any,
    inputs: str | None,
) -> BuildResult:
    """Configure (when needed) and make; *inputs* is the patched build's input digest."""
    import time

    args = configure_args()
    stamp = build_dir / "configured.stamp"
    wanted = json.dumps(args)
    if not (tree / "Makefile").is_file() or not stamp.is_file() or stamp.read_text() != wanted:
        stamp.unlink(missing_ok=True)
        run(["./configure", *args], cwd=tree, nice=True, log=build_dir / "configure.log")
        stamp.write_text(wanted)
        steps.append("configure")
    jobs = jobs or int(os.environ.get("RETRACE_CPYTHON_JOBS", "2"))
    (build_dir / INPUTS_FILE).unlink(missing_ok=True)
    run(["make", f"-j{jobs}"], cwd=tree, nice=True, log=build_dir / "make.log")
    steps.append("make")
    executable = tree / "python"
    if not executable.is_file():
        raise RuntimeBuildError(f"make finished but {executable} is missing")
    if inputs is not None:
        (build_dir / INPUTS_FILE).write_text(inputs + "\n")
    if "configure" in steps:  # a build from scratch: keep its cost for comparisons
        (build_dir / "full-build.json").write_text(
            json.dumps(
                {
                    "seconds": round(time.monotonic() - start, 1),
                    "cpu_seconds": round(_cpu_since(cpu_start), 1),
                }
            )
        )
    return BuildResult(
        build_dir=build_dir,
        tree=tree,
        executable=executable,
        version=source.version,
        vanilla=inputs is None,
        verified=source.verified,
        seconds=time.monotonic() - start,
        cpu_seconds=_cpu_since(cpu_start),
        steps=tuple(steps),
    )


def _cpu_since(before) -> float:
    import resource

    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (now.ru_utime - before.ru_utime) + (now.ru_stime - before.ru_stime)


# --------------------------------------------------------------------------- #
# porting


_HUNK_RE = re.compile(r"Hunk #(\d+) (succeeded|FAILED|ignored)(?: at (\d+))?(.*)")


def port(series: Series, source: Source, out: Path) -> dict:
    """Apply the nearest verified series to *source*; write a candidate series to *out*."""
    origin = load_series(series.port_from or series.name)
    if not origin.verified:
        raise RuntimeBuildError(f"series {origin.name} has no verified release to port from")
    work = cache_dir() / "port" / source.version
    tree = work / "src"
    unpack(source, tree)
    run(["git", "init", "-q"], cwd=tree)
    run(["git", "add", "-A"], cwd=tree)
    run(
        [
            "git",
            "-c",
            "user.name=port",
            "-c",
            "user.email=port@localhost",
            "commit",
            "-q",
            "-m",
            "pristine",
        ],
        cwd=tree,
    )
    report: dict = {"from": origin.name, "to": source.version, "patches": [], "ok": True}
    candidates: list[tuple[str, list[str]]] = []
    for patch in patch_files(origin):
        entry: dict = {"patch": patch.name, "hunks": [], "rejects": []}
        if patch.name in origin.regenerated:
            entry["action"] = "regenerate"
            report["patches"].append(entry)
            continue
        result = subprocess.run(
            [
                "patch",
                "-p1",
                "--batch",
                "--forward",
                "--fuzz=2",
                "--no-backup-if-mismatch",
                "-i",
                str(patch),
            ],
            cwd=tree,
            capture_output=True,
            text=True,
        )
        current = None
        for line in result.stdout.splitlines():
            if line.startswith("patching file "):
                current = line.removeprefix("patching file ").strip()
                continue
            match = _HUNK_RE.search(line)
            if match:
                number, status, at, rest = match.groups()
                entry["hunks"].append(
                    {
                        "file": current,
                        "hunk": int(number),
                        "status": status,
                        "line": int(at) if at else None,
                        "detail": rest.strip(" .()"),
                    }
                )
        for rej in tree.rglob("*.rej"):
            target = str(rej.relative_to(tree))[: -len(".rej")]
            merged = _merge_reject(tree, target, rej)
            entry["rejects"].append(
                {
                    "file": target,
                    "reject": rej.read_text(),
                    "merged_with_markers": merged,
                }
            )
            keep = work / "rejects" / (str(rej.relative_to(tree)).replace("/", "__"))
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(rej), keep)
        entry["clean"] = result.returncode == 0 and not entry["rejects"]
        report["ok"] &= entry["clean"]
        changed = subprocess.run(
            ["git", "diff", "--name-only"], cwd=tree, capture_output=True, text=True, check=True
        ).stdout.split()
        candidates.append((patch.name, changed))
        run(["git", "add", "-A"], cwd=tree)
        run(
            [
                "git",
                "-c",
                "user.name=port",
                "-c",
                "user.email=port@localhost",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                patch.name,
            ],
            cwd=tree,
        )
        report["patches"].append(entry)
    regen_changed = regenerate_cases(tree) if origin.regenerated else []
    out.mkdir(parents=True, exist_ok=True)
    names = []
    commits = subprocess.run(
        ["git", "log", "--format=%H %s", "--reverse"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for line in commits[1:]:
        sha, name = line.split(" ", 1)
        diff = subprocess.run(
            ["git", "show", "--format=", "--no-prefix", "--src-prefix=a/", "--dst-prefix=b/", sha],
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if diff.strip():
            (out / name).write_text(diff)
            names.append(name)
    if regen_changed:
        diff = subprocess.run(
            ["git", "diff", "--src-prefix=a/", "--dst-prefix=b/"],
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        regen_name = next(iter(origin.regenerated))
        (out / regen_name).write_text(diff)
        names.append(regen_name)
        names.sort()
    major_minor = ".".join(source.version.split(".")[:2])
    lines = [
        f"# Candidate series for CPython {source.version}, ported from series {origin.name}.",
        "# Review every patch (see port-report.json), build with --unverified, run the",
        "# smoke tests, then add the release under [[verified]].",
        "[series]",
        f'name = "{major_minor}"',
        f'versions = "{series.versions}"',
        f'probe_abi = "{origin.probe_abi}"',
        "patches = [",
        *[f'    "{n}",' for n in names],
        "]",
        f"regenerated = {json.dumps([n for n in origin.regenerated if n in names])}",
        "",
    ]
    (out / "series.toml").write_text("\n".join(lines))
    report["candidate"] = str(out)
    report["regenerated_files"] = regen_changed
    (out / "port-report.json").write_text(json.dumps(report, indent=2))
    return report


def _merge_reject(tree: Path, target: str, rej: Path) -> bool:
    """Re-apply a file's hunks with diff3-style conflict markers so they can be resolved."""
    orig = tree / (target + ".orig")
    orig.unlink(missing_ok=True)
    result = subprocess.run(
        [
            "patch",
            "-p0",
            "--batch",
            "--forward",
            "--merge",
            "--no-backup-if-mismatch",
            str(tree / target),
            str(rej),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    return "conflict" in (result.stdout + result.stderr).lower() or result.returncode == 0


def format_port_report(report: dict) -> str:
    lines = [f"port of series {report['from']} to CPython {report['to']}:"]
    for entry in report["patches"]:
        if entry.get("action") == "regenerate":
            lines.append(f"  {entry['patch']}: regenerated from the ported bytecodes.c")
            continue
        state = "clean" if entry["clean"] else "NEEDS REVIEW"
        lines.append(f"  {entry['patch']}: {state}")
        for hunk in entry["hunks"]:
            if hunk["status"] != "succeeded" or hunk["detail"]:
                lines.append(
                    f"    {hunk['file']} hunk #{hunk['hunk']} {hunk['status']}"
                    + (f" at line {hunk['line']}" if hunk["line"] else "")
                    + (f" ({hunk['detail']})" if hunk["detail"] else "")
                )
        for rej in entry["rejects"]:
            lines.append(f"    REJECT in {rej['file']}: conflict markers written into the file")
            for reject_line in rej["reject"].splitlines():
                lines.append(f"      {reject_line}")
    lines.append(f"candidate series: {report['candidate']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("apply", "build", "port", "info"):
        p = sub.add_parser(name)
        p.add_argument("--series", required=True)
        p.add_argument("--version")
        p.add_argument("--source", help="tarball, unpacked tree or URL (default: $CPYTHON_SOURCE)")
        p.add_argument("--repo-url", help="git URL (default: $CPYTHON_REPO_URL)")
        p.add_argument("--tag", help="release tag for --repo-url (default: $CPYTHON_TAG)")
        p.add_argument("--unverified", action="store_true")
        p.add_argument("--build-dir", type=Path)
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        if name == "build":
            p.add_argument("--vanilla", action="store_true")
            p.add_argument("--jobs", type=int)
        if name == "port":
            p.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        series = load_series(args.series)
        if args.command == "info":
            print(
                json.dumps(
                    {
                        "series": series.name,
                        "versions": series.versions,
                        "probe_abi": series.probe_abi,
                        "patches": list(series.patches),
                        "verified": list(series.verified),
                        "cache": str(cache_dir()),
                    },
                    indent=2,
                )
            )
            return 0
        unverified = args.unverified or args.command == "port"
        if args.command == "port" and not (
            args.source
            or os.environ.get("CPYTHON_SOURCE")
            or args.repo_url
            or os.environ.get("CPYTHON_REPO_URL")
        ):
            raise RuntimeBuildError(
                f"port-patches-{series.name} needs the target sources: set CPYTHON_SOURCE "
                "to a Python-X.Y.Z tarball, unpacked tree or URL (or CPYTHON_REPO_URL and "
                "CPYTHON_TAG)"
            )
        source = resolve_source(
            series,
            version=args.version,
            source=args.source,
            repo_url=args.repo_url,
            tag=args.tag,
            unverified=unverified,
        )
        if args.command == "apply":
            steps: list[str] = []
            tree = prepare(series, source, vanilla=False, build_dir=args.build_dir, steps=steps)
            result = {
                "tree": str(tree),
                "version": source.version,
                "steps": steps,
                "verified": source.verified,
            }
            print(
                json.dumps(result)
                if args.json
                else f"patched tree: {tree} ({', '.join(steps) or 'up to date'})"
            )
        elif args.command == "build":
            result = build(
                series, source, vanilla=args.vanilla, build_dir=args.build_dir, jobs=args.jobs
            )
            print(json.dumps(result.as_dict()) if args.json else result.executable)
        else:
            out = args.out or cache_dir() / "port" / source.version / "candidate"
            report = port(series, source, out)
            print(json.dumps(report) if args.json else format_port_report(report))
            return 0 if report["ok"] else 3
    except RuntimeBuildError as exc:
        print(f"retrace-cpython: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
