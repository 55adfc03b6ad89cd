"""Build the patched CPython (via tools/cpython_runtime.py) and stage the
minimal runtime overlay installed by the wheel:

    pythonX.Y          stripped patched executable     -> _runtime/bin/
    retrace.py         the public probe module         -> _runtime/lib/pythonX.Y/site-packages/
    *.pth              adds the installing environment -> _runtime/lib/pythonX.Y/site-packages/
    runtime.json       what was built, from what       -> _runtime/
    lib-dynload/       the extension modules built     -> _runtime/lib/pythonX.Y/
                       against the patched headers

The host's own extension modules cannot be used: CPython's internal ABI (which
most stdlib extension modules use) differs between patch releases and the
patched structures.  The .pth puts ``lib-dynload`` ahead of the host's.
Meson passes the five output paths in that order.  Files are only rewritten
when their content changes, so a rebuild with nothing changed leaves them as
they are.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

PTH = (
    # Our extension modules first, then the environment the wheel is installed in.
    "import os, sys; _d = os.path.join(sys.prefix, 'lib', 'python%d.%d' % sys.version_info[:2], "
    "'lib-dynload'); _h = [i for i, p in enumerate(sys.path) if p.endswith('lib-dynload')]; "
    "sys.path.insert(_h[0] if _h else len(sys.path), _d)\n"
    "import os, site, sys; "
    "site.addsitedir(os.path.dirname(os.path.dirname(os.path.realpath(sys.prefix))))\n"
)


def write_if_changed(path: Path, data: bytes, mode: int | None = None) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    if mode is not None:
        tmp.chmod(mode)
    tmp.replace(path)


def copy_extensions(tree: Path, dest: Path) -> None:
    """Mirror the built extension modules (resolving symlinks) into *dest*."""
    built = sorted((tree / "build").glob("lib.*"))
    if not built:
        raise SystemExit(f"stage_runtime: no build/lib.* directory in {tree}")
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {p.name: p for p in built[-1].glob("*.so")}
    for name, src in wanted.items():
        target = dest / name
        st = src.stat()
        if target.is_file() and target.stat().st_mtime_ns == st.st_mtime_ns:
            continue
        shutil.copy2(src.resolve(), target)
    for stale in dest.glob("*.so"):
        if stale.name not in wanted:
            stale.unlink()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--driver", required=True)
    parser.add_argument("--outputs", required=True, nargs=5, type=Path)
    parser.add_argument("build_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    build_args = [a for a in args.build_args if a != "--"]
    proc = subprocess.run(
        [sys.executable, args.driver, "build", "--json", *build_args],
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    version = result["version"]
    major_minor = ".".join(version.split(".")[:2])
    exe, retrace_py, pth, info_json, dynload = args.outputs
    if exe.name != f"python{major_minor}":
        print(
            f"stage_runtime: built CPython {version} but Meson expects {exe.name}", file=sys.stderr
        )
        return 2
    source_exe = Path(result["executable"])
    stamp = exe.with_name(exe.name + ".source-mtime")
    mtime = str(source_exe.stat().st_mtime_ns)
    if not exe.is_file() or not stamp.is_file() or stamp.read_text() != mtime:
        tmp = exe.with_name(exe.name + ".tmp")
        shutil.copy2(source_exe, tmp)
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-debug", str(tmp)], check=True)
        tmp.replace(exe)
        stamp.write_text(mtime)
    tree = Path(result["tree"])
    write_if_changed(retrace_py, (tree / "Lib" / "retrace.py").read_bytes())
    write_if_changed(pth, PTH.encode())
    info = {
        "cpython_version": version,
        "series": major_minor,
        "probe_abi": "retrace-probe-1",
        "verified": result["verified"],
        "executable": f"bin/python{major_minor}",
    }
    copy_extensions(Path(result["tree"]), dynload)
    write_if_changed(info_json, (json.dumps(info, indent=2) + "\n").encode())
    # The driver's own result, for callers that need the build tree (nox).
    write_if_changed(exe.with_name("driver-result.json"), (json.dumps(result) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
