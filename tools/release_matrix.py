"""Compute the build matrices of the release workflow from its inputs.

``.github/workflows/release.yml`` calls this once, before any build, so that
"rebuild one series", "rebuild one platform" and "only publish" are decided in
one tested place instead of in workflow expressions:

    python tools/release_matrix.py --series all --platform all
    python tools/release_matrix.py --series 3.13 --platform linux-aarch64
    python tools/release_matrix.py --publish-only

It prints ``key=value`` lines (and appends them to ``$GITHUB_OUTPUT`` when that
is set): ``wheels`` and ``runtime`` (JSON matrices), ``wheels_any``,
``runtime_any`` and ``build_any`` (``true``/``false``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

# Python series the retracesoftware wheels are built for (see [tool.cibuildwheel]).
PACKAGE_SERIES = ("3.11", "3.12", "3.13", "3.14")
# Series whose patched runtime has a verified upstream release (patches/<series>/series.toml).
# 3.12 and 3.14 join this tuple once a release of theirs is verified.
RUNTIME_SERIES = ("3.11", "3.13")
PLATFORMS: dict[str, dict[str, str]] = {
    "linux-x86_64": {"runner": "ubuntu-24.04", "cibw_platform": "linux", "archs": "x86_64"},
    "linux-aarch64": {"runner": "ubuntu-24.04-arm", "cibw_platform": "linux", "archs": "aarch64"},
    "macos-arm64": {"runner": "macos-14", "cibw_platform": "macos", "archs": "arm64"},
}
ALL = "all"


class MatrixError(ValueError):
    """The workflow inputs do not describe a valid selection."""


def plan(series: str = ALL, platform: str = ALL, publish_only: bool = False) -> dict[str, Any]:
    """Return the wheel and runtime matrices for the given selection."""
    if series != ALL and series not in PACKAGE_SERIES:
        raise MatrixError(
            f"unknown series {series!r}; choose one of: {ALL}, {', '.join(PACKAGE_SERIES)}"
        )
    if platform != ALL and platform not in PLATFORMS:
        raise MatrixError(
            f"unknown platform {platform!r}; choose one of: {ALL}, {', '.join(PLATFORMS)}"
        )
    wheels: list[dict[str, str]] = []
    runtime: list[dict[str, str]] = []
    if not publish_only:
        platforms = list(PLATFORMS) if platform == ALL else [platform]
        package_series = list(PACKAGE_SERIES) if series == ALL else [series]
        runtime_series = list(RUNTIME_SERIES) if series == ALL else [series]
        for name in platforms:
            info = PLATFORMS[name]
            for s in package_series:
                wheels.append(
                    {
                        "platform": name,
                        "series": s,
                        "runner": info["runner"],
                        "cibw_platform": info["cibw_platform"],
                        "archs": info["archs"],
                        "build": f"cp{s.replace('.', '')}-*",
                    }
                )
            for s in runtime_series:
                runtime.append({"platform": name, "series": s, "runner": info["runner"]})
    return {
        "wheels": wheels,
        "runtime": runtime,
        "wheels_any": bool(wheels),
        "runtime_any": bool(runtime),
        "build_any": bool(wheels or runtime),
    }


def as_outputs(result: dict[str, Any]) -> list[str]:
    """Render *result* as ``key=value`` lines for ``$GITHUB_OUTPUT``."""
    lines = []
    for key, value in result.items():
        text = json.dumps(value, separators=(",", ":")) if isinstance(value, list) else value
        lines.append(f"{key}={str(text).lower() if isinstance(value, bool) else text}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compute the release workflow's build matrices.")
    ap.add_argument("--series", default=ALL, help="all, or one Python series such as 3.13")
    ap.add_argument("--platform", default=ALL, help=f"all, or one of: {', '.join(PLATFORMS)}")
    ap.add_argument("--publish-only", action="store_true", help="build nothing, only publish")
    args = ap.parse_args(argv)
    try:
        lines = as_outputs(plan(args.series, args.platform, args.publish_only))
    except MatrixError as exc:
        print(f"release_matrix: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
