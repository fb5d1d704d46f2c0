"""Which directory keeps the embedded Postgres's own user out (pg_placement.blocking_directory)."""

from __future__ import annotations

import pwd
import shutil
import tempfile
from pathlib import Path

from stepwise_devkit.pg_placement import blocking_directory


def test_the_first_untraversable_directory_is_named() -> None:
    nobody = pwd.getpwnam("nobody")
    # not tmp_path: pytest's temporary root is itself private
    base = Path(tempfile.mkdtemp(prefix="stepwise-placement-"))
    base.chmod(0o755)
    try:
        _check(nobody, base)
    finally:
        shutil.rmtree(base)


def _check(nobody: pwd.struct_passwd, base: Path) -> None:
    private = base / "private"
    private.mkdir(mode=0o700)
    inside = private / "clone" / ".venv"
    inside.mkdir(parents=True)
    assert blocking_directory(nobody, inside) == private
    assert blocking_directory(nobody, inside / "not-yet-created") == private
    private.chmod(0o711)  # traversable, not listable: enough
    assert blocking_directory(nobody, inside) is None
    (private / "clone").chmod(0o750)  # the group is not nobody's
    assert blocking_directory(nobody, inside) == private / "clone"
