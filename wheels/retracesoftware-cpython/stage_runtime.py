"""Build the patched CPython (via tools/cpython_runtime.py) and stage the
minimal runtime overlay installed by the wheel:

    _runtime/bin/pythonX.Y                      stripped patched executable
    _runtime/lib/pythonX.Y/site-packages/       retrace.py and the .pth that
                                                adds the installing environment
    _runtime/runtime.json                       what was built, from what

Files are only rewritten when their content changes, so a rebuild with nothing
changed is fast and leaves the staged tree untouched.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

PTH = (
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--driver", required=True)
    parser.add_argument("--out", required=True, type=Path)
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
    out: Path = args.out
    exe = out / "bin" / f"python{major_minor}"
    source_exe = Path(result["executable"])
    stamp = out / ".source-mtime"
    mtime = str(source_exe.stat().st_mtime_ns)
    if not exe.is_file() or not stamp.is_file() or stamp.read_text() != mtime:
        exe.parent.mkdir(parents=True, exist_ok=True)
        tmp = exe.with_name(exe.name + ".tmp")
        shutil.copy2(source_exe, tmp)
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-debug", str(tmp)], check=True)
        tmp.replace(exe)
        stamp.write_text(mtime)
    site = out / "lib" / f"python{major_minor}" / "site-packages"
    tree = Path(result["tree"])
    write_if_changed(site / "retrace.py", (tree / "Lib" / "retrace.py").read_bytes())
    write_if_changed(site / "_retracesoftware_cpython_env.pth", PTH.encode())
    info = {
        "cpython_version": version,
        "series": major_minor,
        "probe_abi": "retrace-probe-1",
        "verified": result["verified"],
        "executable": f"bin/python{major_minor}",
    }
    write_if_changed(out / "runtime.json", (json.dumps(info, indent=2) + "\n").encode())
    for alias in (out / "bin" / "python3", out / "bin" / "python"):
        if not alias.is_symlink():
            alias.unlink(missing_ok=True)
            alias.symlink_to(exe.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
