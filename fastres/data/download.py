"""Download the official data-set files and verify their published MD5s.

`load_dataset` calls `fetch_dataset` when a set's files are missing, unless ``download=False`` or
``FASTRES_NO_DOWNLOAD=1``. Each file is streamed to a temporary file inside the target folder and
its MD5 checked before anything is renamed (or, for a tarball, extracted and renamed) into place,
so an interrupted or corrupt download never leaves files the loaders would read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath

__all__ = ["SOURCES", "ChecksumError", "DownloadError", "Source", "UnsafeArchiveError",
           "download_enabled", "fetch_dataset"]

TIMEOUT = 10.0  # seconds, per connection attempt and per read


@dataclass(frozen=True)
class Source:
    """Where a data set comes from.

    folder : the sub-folder of the data directory the loader reads (``mnist``, ...).
    files : ``(url, md5)`` pairs; the file name is the last part of the URL.
    archive : True if the single file is a ``.tar.gz`` that extracts to ``folder/``.
    """

    folder: str
    files: tuple
    archive: bool = False


_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # mirror of yann.lecun.com/exdb/mnist
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_KRIZ = "https://www.cs.toronto.edu/~kriz/"

# The published MD5s (the same torchvision checks).
SOURCES = {
    "cifar10": Source("cifar-10-batches-py", (
        (_KRIZ + "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),), archive=True),
    "cifar10-bin": Source("cifar-10-batches-bin", (
        (_KRIZ + "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),), archive=True),
    "cifar100": Source("cifar-100-python", (
        (_KRIZ + "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),), archive=True),
    "mnist": Source("mnist", tuple(zip([_MNIST + f for f in _IDX], (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")))),
    "fashion-mnist": Source("fashion-mnist", tuple(zip([_FASHION + f for f in _IDX], (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")))),
}

_NETWORK_ERRORS = (urllib.error.URLError, HTTPException, ConnectionError, socket.timeout)


class DownloadError(OSError):
    """The source could not be reached or the transfer broke off (no network, HTTP error...)."""


class ChecksumError(ValueError):
    """A downloaded file's MD5 differs from the published one (the file was deleted)."""


class UnsafeArchiveError(ValueError):
    """A tarball member would land outside the target folder, or is not a plain file/folder."""


def download_enabled(download: bool | None) -> bool:
    """`download` if given, else True unless ``$FASTRES_NO_DOWNLOAD`` is set (to not 0/false/no)."""
    if download is not None:
        return bool(download)
    return os.environ.get("FASTRES_NO_DOWNLOAD", "").strip().lower() in ("", "0", "false", "no")


def fetch_dataset(name: str, data_dir: str | os.PathLike, *, timeout: float | None = None) -> Path:
    """Download set `name` (a key of `SOURCES`) into ``data_dir/<folder>``; returns that folder.

    Files already present are kept. All files of a set are downloaded and verified before any is
    put in place. Raises `DownloadError` (network), `ChecksumError` or `UnsafeArchiveError`.
    """
    src = SOURCES[name]
    data_dir = Path(data_dir).expanduser()
    target = data_dir / src.folder
    timeout = TIMEOUT if timeout is None else timeout
    made = target  # the outermost folder this call may create
    while not made.parent.exists():
        made = made.parent
    existed = made.exists()
    try:
        return _fetch(src, data_dir, target, timeout)
    except BaseException:
        d = target
        while not existed:  # remove the folders made for a failed download, if still empty
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                break
            if d == made:
                break
            d = d.parent
        raise


def _fetch(src: Source, data_dir: Path, target: Path, timeout: float) -> Path:
    if src.archive:
        (url, md5), = src.files
        tmp = _download(url, md5, data_dir, target, timeout)
        try:
            _extract(tmp, data_dir, src.folder, url)
        finally:
            tmp.unlink(missing_ok=True)
        return target
    from fastres.data.mnist import _find  # the loader's notion of "present"

    todo = [(url, md5) for url, md5 in src.files
            if _find(target, url.rsplit("/", 1)[-1].removesuffix(".gz")) is None]
    done = []
    try:
        for url, md5 in todo:
            name_ = url.rsplit("/", 1)[-1]
            done.append((_download(url, md5, target, target / name_, timeout), target / name_))
        for tmp, final in done:
            os.replace(tmp, final)
    finally:
        for tmp, _ in done:
            tmp.unlink(missing_ok=True)
    return target


def _download(url: str, md5: str, folder: Path, shown: Path, timeout: float) -> Path:
    """Stream `url` to a temporary file in `folder` and check its MD5; returns the temp path."""
    try:
        resp = urllib.request.urlopen(url, timeout=timeout)
    except (*_NETWORK_ERRORS, OSError) as exc:
        why = exc.reason if type(exc) is urllib.error.URLError else exc  # HTTPError: code too
        raise DownloadError(f"cannot download {url}: {why}") from exc
    with resp:
        print(f"fastres: downloading {url} -> {shown}", file=sys.stderr, flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fastres-", suffix=".part", dir=folder)
        tmp = Path(tmp)
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with os.fdopen(fd, "wb") as f:
                while True:
                    try:
                        chunk = resp.read(1 << 20)
                    except _NETWORK_ERRORS as exc:
                        raise DownloadError(f"download of {url} broke off: {exc}") from exc
                    if not chunk:
                        break
                    digest.update(chunk)
                    f.write(chunk)
            got = digest.hexdigest()
            if got != md5.lower():
                raise ChecksumError(
                    f"{url}: MD5 mismatch: expected {md5}, received {got}. The download was "
                    "deleted; the file is corrupt, was tampered with, or changed upstream.")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return tmp


def _check_member(m: tarfile.TarInfo, url: str) -> None:
    p = PurePosixPath(m.name)
    if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
        kind = "file" if m.isfile() else "folder" if m.isdir() else "link or special file"
        raise UnsafeArchiveError(f"{url}: refusing to extract member {m.name!r} ({kind}): only "
                                 "plain files and folders inside the archive are allowed")


def _extract(archive: Path, data_dir: Path, folder: str, url: str) -> None:
    """Extract `archive` into a temp folder in `data_dir`, then move ``folder/`` into place."""
    tmpdir = Path(tempfile.mkdtemp(prefix=".fastres-extract-", dir=data_dir))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                _check_member(m, url)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmpdir, members=members, filter="data")
            else:
                tar.extractall(tmpdir, members=members)
        src = tmpdir / folder
        if not src.is_dir():
            raise ValueError(f"{url}: the archive has no {folder}/ folder")
        target = data_dir / folder
        if not target.exists():
            os.rename(src, target)
        else:  # a partly filled folder: add what is missing, keep what is there
            for p in src.iterdir():
                if not (target / p.name).exists():
                    os.replace(p, target / p.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
