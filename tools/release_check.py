"""Release checks for Retrace: VERSION, CHANGELOG, tag and sdist contents.

Used by ``nox -s release-check`` and by the release workflow before anything is
built.  Each check raises :class:`ReleaseError` with one message that says what
is wrong and how to fix it; the command line prints those messages and exits 1.

    python tools/release_check.py                       # VERSION + CHANGELOG
    python tools/release_check.py --tag v0.1.0          # ... + the tag matches VERSION
    python tools/release_check.py --sdist dist/x.tar.gz # ... + the sdist holds what it must
    python tools/release_check.py --engine              # print the working container engine

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Canonical PEP 440 release versions: X.Y.Z with optional aN/bN/rcN, .postN, .devN.
VERSION_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:(?:a|b|rc)(?:0|[1-9]\d*))?(?:\.post(?:0|[1-9]\d*))?(?:\.dev(?:0|[1-9]\d*))?$"
)
DATE_RE = r"\d{4}-\d{2}-\d{2}"

# Files every sdist must contain (relative to its top directory), besides every
# file tracked by git.
REQUIRED_SDIST_FILES = (
    "PKG-INFO",
    "pyproject.toml",
    "meson.build",
    "VERSION",
    "README.md",
    "CHANGELOG.md",
    "tools/package_files.py",
    "src/retracesoftware/__init__.py",
    "src/retracesoftware/__main__.py",
    "src/retracesoftware/_version.py.in",
)
# Path fragments that must never be shipped in an sdist.
FORBIDDEN_SDIST_PARTS = (".git", ".nox", "__pycache__", "build", "builddir", "dist", "site")
FORBIDDEN_SDIST_SUFFIXES = (".pyc", ".pyo", ".so", ".o", ".whl")


class ReleaseError(Exception):
    """A release precondition does not hold; the message says how to fix it."""


def check_version(text: str) -> str:
    """Return the version held by the text of ``VERSION``; raise if it is malformed."""
    version = text[:-1] if text.endswith("\n") else None
    if not version or "\n" in version or version != version.strip():
        raise ReleaseError(
            f"VERSION must hold exactly one line with the version and a final newline, got {text!r}"
        )
    if not VERSION_RE.match(version):
        raise ReleaseError(
            f"VERSION {version!r} is not a canonical release version "
            "(expected X.Y.Z with optional aN/bN/rcN, .postN, .devN, e.g. 1.2.0 or 1.3.0rc1)"
        )
    return version


def check_changelog(text: str, version: str) -> str:
    """Return the date of *version*'s CHANGELOG section; raise if it is missing or empty."""
    heading = re.compile(rf"^## \[{re.escape(version)}\](?P<rest>.*)$", re.MULTILINE)
    match = heading.search(text)
    if match is None:
        raise ReleaseError(
            f"CHANGELOG.md has no section for {version}: move the entries under "
            f"'## [Unreleased]' to a new '## [{version}] - YYYY-MM-DD' heading"
        )
    date = re.fullmatch(rf"\s+-\s+(?P<date>{DATE_RE})\s*", match["rest"])
    if date is None:
        raise ReleaseError(
            f"CHANGELOG.md heading for {version} must read '## [{version}] - YYYY-MM-DD', "
            f"got {match[0]!r}"
        )
    following = text[match.end() :]
    end = re.search(r"^## ", following, re.MULTILINE)
    section = following[: end.start()] if end else following
    if not re.search(r"^\s*[-*] \S", section, re.MULTILINE):
        raise ReleaseError(f"CHANGELOG.md section for {version} has no entries ('- ...' bullets)")
    return date["date"]


def changelog_section(text: str, version: str) -> str:
    """Return the body of *version*'s CHANGELOG section (the release notes)."""
    check_changelog(text, version)
    match = re.search(rf"^## \[{re.escape(version)}\].*$", text, re.MULTILINE)
    assert match is not None
    following = text[match.end() :]
    end = re.search(r"^## ", following, re.MULTILINE)
    return (following[: end.start()] if end else following).strip() + "\n"


def check_tag(tag: str, version: str) -> None:
    """Raise unless *tag* is exactly ``v`` followed by *version*."""
    if not re.fullmatch(r"v\d\S*", tag):
        raise ReleaseError(f"tag {tag!r} is not a release tag: release tags look like v{version}")
    if tag != f"v{version}":
        raise ReleaseError(
            f"tag {tag!r} does not match VERSION {version!r}: tag the commit as v{version}, "
            "or change VERSION (and CHANGELOG.md) before tagging"
        )


def tracked_files(root: Path = ROOT) -> list[str]:
    """Return the files git tracks in *root* (POSIX paths), or raise if git cannot tell."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ReleaseError(f"cannot list the files tracked by git in {root}: {exc}") from exc
    return sorted(p for p in out.decode().split("\0") if p and (root / p).is_file())


def check_sdist(path: Path, version: str, expected: Iterable[str] = ()) -> list[str]:
    """Check the sdist at *path*; return its members relative to the top directory.

    *expected* lists further files that must be present (normally every file git
    tracks: meson-python builds sdists from the committed tree).
    """
    top = f"retracesoftware-{version}"
    if path.name != f"{top}.tar.gz":
        raise ReleaseError(f"sdist is named {path.name!r}, expected {top}.tar.gz")
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = archive.getmembers()
            pkg_info = (
                archive.extractfile(f"{top}/PKG-INFO")
                if any(m.name == f"{top}/PKG-INFO" for m in members)
                else None
            )
            metadata = pkg_info.read().decode("utf-8", "replace") if pkg_info else ""
    except (OSError, tarfile.TarError) as exc:
        raise ReleaseError(f"sdist {path} cannot be read: {exc}") from exc
    names = []
    for member in members:
        if not member.name.startswith(f"{top}/") and member.name != top:
            raise ReleaseError(f"sdist member {member.name!r} is outside the {top}/ directory")
        if member.issym() or member.islnk():
            raise ReleaseError(f"sdist member {member.name!r} is a link; sdists hold plain files")
        if member.isfile():
            names.append(member.name[len(top) + 1 :])
    present = set(names)
    missing = [f for f in (*REQUIRED_SDIST_FILES, *expected) if f not in present]
    if missing:
        shown = ", ".join(sorted(set(missing))[:10])
        raise ReleaseError(
            f"sdist lacks {len(set(missing))} file(s): {shown}; commit them "
            "(the sdist is built from the files git tracks)"
        )
    bad = [
        n
        for n in names
        if set(Path(n).parts[:-1]) & set(FORBIDDEN_SDIST_PARTS)
        or n.endswith(FORBIDDEN_SDIST_SUFFIXES)
    ]
    if bad:
        raise ReleaseError(f"sdist contains build or cache files: {', '.join(sorted(bad)[:10])}")
    declared = re.search(r"^Version: (.+)$", metadata, re.MULTILINE)
    if declared is None or declared[1].strip() != version:
        found = declared[1].strip() if declared else "none"
        raise ReleaseError(f"sdist PKG-INFO declares version {found}, expected {version}")
    return sorted(names)


def container_engine() -> tuple[str | None, str]:
    """Return ``(engine, reason)``: a container engine whose daemon answers, or ``None``.

    A client binary alone is not enough (``docker`` can be installed without a
    reachable daemon), so each candidate must answer ``info`` successfully.
    """
    reasons = []
    for name in ("docker", "podman"):
        exe = shutil.which(name)
        if exe is None:
            reasons.append(f"{name}: not installed")
            continue
        try:
            result = subprocess.run(
                [exe, "info"], capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"{name}: {exc}")
            continue
        if result.returncode == 0:
            return name, f"{name} answers 'info'"
        lines = (result.stderr or result.stdout).strip().splitlines()
        reasons.append(f"{name}: {lines[-1] if lines else f'exit {result.returncode}'}")
    return None, "; ".join(reasons)


def run_checks(root: Path, tag: str | None, sdist: Path | None) -> list[str]:
    """Run the checks for the project at *root*; return the problems found (empty if none)."""
    problems = []
    try:
        version = check_version((root / "VERSION").read_text(encoding="utf-8"))
    except (ReleaseError, OSError) as exc:
        return [str(exc)]
    try:
        check_changelog((root / "CHANGELOG.md").read_text(encoding="utf-8"), version)
    except (ReleaseError, OSError) as exc:
        problems.append(str(exc))
    if tag is not None:
        try:
            check_tag(tag, version)
        except ReleaseError as exc:
            problems.append(str(exc))
    if sdist is not None:
        try:
            check_sdist(sdist, version, tracked_files(root))
        except ReleaseError as exc:
            problems.append(str(exc))
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check that the tree is ready to release.")
    ap.add_argument("--tag", help="the release tag to check against VERSION (e.g. v0.1.0)")
    ap.add_argument("--sdist", type=Path, help="an sdist to check")
    ap.add_argument("--notes", action="store_true", help="print VERSION's CHANGELOG section")
    ap.add_argument("--engine", action="store_true", help="print the working container engine")
    args = ap.parse_args(argv)
    if args.engine:
        engine, reason = container_engine()
        print(engine or "none", f"({reason})")
        return 0 if engine else 1
    if args.notes:
        try:
            version = check_version((ROOT / "VERSION").read_text(encoding="utf-8"))
            sys.stdout.write(
                changelog_section((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), version)
            )
        except (ReleaseError, OSError) as exc:
            print(f"release-check: {exc}", file=sys.stderr)
            return 1
        return 0
    problems = run_checks(ROOT, args.tag, args.sdist)
    for problem in problems:
        print(f"release-check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("release-check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
