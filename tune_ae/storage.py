"""Where an experiment lives: a local folder, or a cloud URI (s3://, gs://, ...) with a local mirror.

Ray Tune writes trials straight to the storage path, local or remote. tune_ae's own files
(tune_ae/experiment.json, the tables, the report) are made from a local folder: for a file-system
storage path that is the experiment folder itself; for a URI it is a mirror under
`~/tune_ae_results/.mirror/<key>/<name>` (or `$TUNE_AE_MIRROR/<key>/<name>`, the key a hash
of the storage URI), filled by `pull` and sent
back by `push`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tune_ae.config import ConfigError

DEFAULT_STORAGE = Path.home() / "tune_ae_results"
MIRROR = Path(os.environ.get("TUNE_AE_MIRROR", DEFAULT_STORAGE / ".mirror"))  # local copies of URI experiments


def is_uri(path: str) -> bool:
    return "://" in path


def check_storage(path: str) -> str:
    """An absolute, writable storage folder, or a URI whose file system pyarrow can open."""
    if is_uri(path):
        import pyarrow.fs

        try:
            pyarrow.fs.FileSystem.from_uri(path)
        except Exception as err:  # unknown scheme, missing credentials library, bad bucket name
            raise ConfigError(f"storage path {path} cannot be opened ({err}); check the URI and your credentials") from None
        return path.rstrip("/")
    folder = Path(path).expanduser().resolve()
    # Checked without creating anything: a command refused later leaves no folder behind.
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    elif existing == folder:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as err:
            problem = err.strerror or str(err)
    if problem:
        raise ConfigError(
            f"storage path {folder} is not writable ({problem}); pass --storage-path DIR with a folder you can write"
        )
    return str(folder)


def experiment_uri(storage_path: str, name: str) -> str:
    return f"{storage_path}/{name}" if is_uri(storage_path) else str(Path(storage_path) / name)


def local_folder(storage_path: str, name: str) -> Path:
    """The folder on this machine that holds (or mirrors) the experiment. A URI's mirror is
    keyed by the whole URI, not the name alone: two buckets' experiments of one name have a
    mirror (and a lock) each."""
    if not is_uri(storage_path):
        return Path(storage_path) / name
    import hashlib

    return MIRROR / hashlib.sha256(storage_path.encode()).hexdigest()[:12] / name


def exists(storage_path: str, name: str) -> bool:
    if not is_uri(storage_path):
        return (Path(storage_path) / name).exists()
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(experiment_uri(storage_path, name))
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


APPEND_ONLY = ("tune_ae/trials.jsonl", "*/tune_ae_epochs.jsonl")  # the driver's logs, only ever appended to


def pull(storage_path: str, name: str) -> Path:
    """Bring a remote experiment into its local mirror (a no-op for local storage). The driver's
    append-only logs are never shortened: a mirror's copy longer than the URI's (a run that
    ended before sending it) is kept."""
    local = local_folder(storage_path, name)
    if is_uri(storage_path) and exists(storage_path, name):
        import pyarrow.fs

        local.mkdir(parents=True, exist_ok=True)
        logs = {p: p.read_bytes() for pattern in APPEND_ONLY for p in local.glob(pattern)}
        pyarrow.fs.copy_files(experiment_uri(storage_path, name), str(local),
                              destination_filesystem=pyarrow.fs.LocalFileSystem())
        for path, text in logs.items():
            if not path.is_file() or path.stat().st_size < len(text):
                path.write_bytes(text)
    return local


def own_logs(storage_path: str, name: str) -> list[str]:
    """The driver's logs in the mirror, relative to the experiment: what `push` sends after a fit."""
    local = local_folder(storage_path, name)
    return [str(p.relative_to(local)) for pattern in APPEND_ONLY for p in local.glob(pattern)]


def rename_remote(storage_path: str, name: str, renames: list[tuple[str, str]]) -> None:
    """Rename files of the experiment at the URI as in the mirror (a no-op for local storage)."""
    if not is_uri(storage_path):
        return
    import pyarrow.fs

    remote, base = pyarrow.fs.FileSystem.from_uri(experiment_uri(storage_path, name))
    for source, target in renames:
        if remote.get_file_info(f"{base}/{source}").type == pyarrow.fs.FileType.File:
            remote.move(f"{base}/{source}", f"{base}/{target}")


def push(storage_path: str, name: str, relative_paths: list[str]) -> None:
    """Send tune_ae's own files (paths relative to the experiment) from the mirror to the URI."""
    if not is_uri(storage_path):
        return
    import pyarrow.fs

    local = local_folder(storage_path, name)
    remote, base = pyarrow.fs.FileSystem.from_uri(experiment_uri(storage_path, name))
    for relative in relative_paths:
        source = local / relative
        if source.is_file():
            target = f"{base}/{relative}"
            remote.create_dir(target.rsplit("/", 1)[0], recursive=True)  # a no-op on object stores
            pyarrow.fs.copy_files(str(source), target, source_filesystem=pyarrow.fs.LocalFileSystem(),
                                  destination_filesystem=remote)
