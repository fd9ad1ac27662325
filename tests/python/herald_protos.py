"""Python modules generated from proto/ with grpcio-tools, fresh on every run (never
checked in), for the scripts beside this one."""

import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def generate() -> pathlib.Path:
    """Generates the modules into a new temporary directory and puts it on sys.path."""
    out = pathlib.Path(tempfile.mkdtemp(prefix="herald-py-"))
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}",
         f"--grpc_python_out={out}", *protos],
        check=True,
    )
    # Packages for the generated modules' imports (herald.common.v1.event_pb2, ...).
    for d in out.rglob("*"):
        if d.is_dir():
            (d / "__init__.py").touch()
    (out / "__init__.py").touch()
    sys.path.insert(0, str(out))
    return out
