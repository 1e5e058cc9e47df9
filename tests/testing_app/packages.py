"""Real conda package files for tests in conda-build's layout (info/test/run_test.*), written
with conda-package-handling: rattler-build cannot make that layout (it writes
info/tests/tests.yaml), and the conda-build paths need it. Packages in rattler-build's layout
are built by rattler-build itself (tests/testing_app/rattler_built.py, the sample channel)."""

import hashlib
import json
from pathlib import Path

import conda_package_handling.api as cph


def build_package(
    out_dir: Path,
    *,
    name: str,
    version: str = "1.0.0",
    build: str = "py_0",
    depends: tuple[str, ...] = (),
    subdir: str = "noarch",
    run_test_sh: str | None = None,
    run_test_py: str | None = None,
    module_source: str | None = None,
    extension: str = ".conda",
    extra_files: dict[str, str] | None = None,
) -> Path:
    """A package `<name>-<version>-<build><extension>` under out_dir/<subdir>/, with an optional
    Python module `<name>` and the test scripts conda-build would have put in info/test/.
    `extra_files` adds more files by path (under info/ they are metadata, else payload)."""
    stage = out_dir / ".stage" / f"{name}-{version}-{build}{extension}"
    (stage / "info" / "test").mkdir(parents=True)
    files = []
    if module_source is not None:
        module = stage / "site-packages" / f"{name.replace('-', '_')}.py"
        module.parent.mkdir(parents=True)
        module.write_text(module_source)
        files.append(module.relative_to(stage).as_posix())
    for relative, text in (extra_files or {}).items():
        target = stage / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if not relative.startswith("info/"):
            files.append(relative)
    for script_name, text in (("run_test.sh", run_test_sh), ("run_test.py", run_test_py)):
        if text is not None:
            (stage / "info" / "test" / script_name).write_text(text)
    index = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": list(depends),
        "subdir": subdir,
        "license": "BSD-3-Clause",
        "timestamp": 1700000000000,
    }
    if subdir == "noarch":
        index["noarch"] = "python"
    (stage / "info" / "index.json").write_text(json.dumps(index))
    (stage / "info" / "files").write_text("".join(f + "\n" for f in files))
    paths = [
        {
            "_path": f,
            "path_type": "hardlink",
            "sha256": hashlib.sha256((stage / f).read_bytes()).hexdigest(),
            "size_in_bytes": (stage / f).stat().st_size,
        }
        for f in files
    ]
    (stage / "info" / "paths.json").write_text(json.dumps({"paths": paths, "paths_version": 1}))
    (stage / "info" / "about.json").write_text(json.dumps({"summary": f"{name} for tests"}))
    target_dir = out_dir / subdir
    target_dir.mkdir(parents=True, exist_ok=True)
    filename = f"{name}-{version}-{build}{extension}"
    cph.create(str(stage), None, filename, out_folder=str(target_dir))
    return target_dir / filename


def file_digests(path: Path) -> dict:
    data = path.read_bytes()
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),  # noqa: S324 - the repodata field, not security
        "size": len(data),
    }
