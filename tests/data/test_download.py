"""Automatic download: small files in the official formats served over a local HTTP server, with
the source table pointed at it. No test touches the real network."""

import dataclasses
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import urllib.request

import numpy as np
import pytest

from fastres.data import download, load_dataset, mnist
from fastres.data.dataset import MissingDataError
from tests.data.test_datasets import write_cifar_py, write_mnist


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(base_url, served folder, list of requested paths); automatic download switched on."""
    monkeypatch.delenv("FASTRES_NO_DOWNLOAD", raising=False)
    root = tmp_path / "served"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root, hits
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def serve_cifar10(monkeypatch, base, root, tmp_path, evil=None, bad_md5=False):
    """cifar-10-python.tar.gz built from write_cifar_py, served and entered in SOURCES."""
    stage = tmp_path / "stage"
    batches = write_cifar_py(stage)
    tgz = root / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(stage / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        if evil:
            info = tarfile.TarInfo(evil)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"pwned"))
    digest = "0" * 32 if bad_md5 else md5(tgz)
    monkeypatch.setitem(download.SOURCES, "cifar10", dataclasses.replace(
        download.SOURCES["cifar10"], files=((base + tgz.name, digest),)))
    return batches


def serve_idx(monkeypatch, base, root, key, bad=()):
    ref = write_mnist(root / key)
    names = [url.rsplit("/", 1)[-1] for url, _ in download.SOURCES[key].files]
    files = tuple((f"{base}{key}/{name}", "0" * 32 if i in bad else md5(root / key / name))
                  for i, name in enumerate(names))
    monkeypatch.setitem(download.SOURCES, key, dataclasses.replace(download.SOURCES[key],
                                                                   files=files))
    return ref


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".fastres-"))


def test_cifar10_downloaded_verified_and_loaded(server, tmp_path, monkeypatch, capsys):
    base, root, hits = server
    batches = serve_cifar10(monkeypatch, base, root, tmp_path)
    data = tmp_path / "data" / "nested"  # created on demand, as `fastres train --data-dir D`
    ds = load_dataset("cifar10", data)
    assert ds.x_train.shape == (30, 3, 32, 32) and ds.classes[6] == "frog"
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][1])
    assert hits == ["/cifar-10-python.tar.gz"]
    err = capsys.readouterr().err
    assert (f"fastres: downloading {base}cifar-10-python.tar.gz -> "
            f"{data / 'cifar-10-batches-py'}" in err)
    assert sorted(p.name for p in data.iterdir()) == ["cifar-10-batches-py"]  # no tarball/temp
    load_dataset("cifar10", data)  # present now: no second download
    assert len(hits) == 1


@pytest.mark.parametrize("key", ["mnist", "fashion-mnist"])
def test_idx_sets_downloaded(server, tmp_path, monkeypatch, key):
    base, root, hits = server
    monkeypatch.setattr(mnist, "FASHION_SYSTEM_DIR", tmp_path / "no-system-copy")
    ref = serve_idx(monkeypatch, base, root, key)
    data = tmp_path / "data"
    data.mkdir()
    ds = load_dataset(key, data)
    np.testing.assert_array_equal(np.rint(ds.x_train[:, 0] * 255).astype(np.uint8), ref["train"][0])
    np.testing.assert_array_equal(ds.y_test, ref["t10k"][1])
    assert len(hits) == 4 and leftovers(data) == []
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (data / key / name).read_bytes() == (root / key / name).read_bytes()


def test_only_missing_files_are_downloaded(server, tmp_path, monkeypatch):
    base, root, hits = server
    serve_idx(monkeypatch, base, root, "mnist")
    data = tmp_path / "data"
    write_mnist(data / "mnist")
    (data / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    load_dataset("mnist", data)
    assert hits == ["/mnist/t10k-labels-idx1-ubyte.gz"]


def test_idx_checksum_mismatch_leaves_nothing(server, tmp_path, monkeypatch):
    base, root, _ = server
    serve_idx(monkeypatch, base, root, "mnist", bad=(2,))
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(download.ChecksumError) as exc:
        load_dataset("mnist", data)
    msg = str(exc.value)
    got = md5(root / "mnist" / "t10k-images-idx3-ubyte.gz")
    for part in (f"{base}mnist/t10k-images-idx3-ubyte.gz", "0" * 32, got):
        assert part in msg
    assert list(data.iterdir()) == []  # all-or-nothing: the two good files are not kept either


def test_archive_checksum_mismatch_leaves_nothing(server, tmp_path, monkeypatch):
    base, root, _ = server
    serve_cifar10(monkeypatch, base, root, tmp_path, bad_md5=True)
    data = tmp_path / "data"
    with pytest.raises(download.ChecksumError, match="expected 0{32}, received [0-9a-f]{32}"):
        load_dataset("cifar10", data)
    assert not data.exists()


def test_unreachable_network_names_path_and_files(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTRES_NO_DOWNLOAD", raising=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"
    monkeypatch.setitem(download.SOURCES, "cifar10", dataclasses.replace(
        download.SOURCES["cifar10"], files=((url, "0" * 32),)))
    data = tmp_path / "data"
    with pytest.raises(MissingDataError) as exc:
        load_dataset("cifar10", data)
    msg = str(exc.value)
    for part in (str(data / "cifar-10-batches-py"), "data_batch_1", "test_batch", "batches.meta",
                 "Downloading them failed", url, "cs.toronto.edu"):
        assert part in msg
    assert isinstance(exc.value, FileNotFoundError) and not data.exists()


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_download_off_never_connects(server, tmp_path, monkeypatch, how):
    base, root, hits = server
    serve_idx(monkeypatch, base, root, "mnist")

    def no_network(*a, **k):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    kwargs = {"download": False} if how == "argument" else {}
    if how == "environment":
        monkeypatch.setenv("FASTRES_NO_DOWNLOAD", "1")
    with pytest.raises(MissingDataError, match=r"train-images-idx3-ubyte.*Automatic download is "
                                               r"off.*yann\.lecun"):
        load_dataset("mnist", tmp_path / "data", **kwargs)
    assert hits == [] and not (tmp_path / "data").exists()


def test_download_true_overrides_environment(server, tmp_path, monkeypatch):
    base, root, hits = server
    serve_idx(monkeypatch, base, root, "mnist")
    monkeypatch.setenv("FASTRES_NO_DOWNLOAD", "1")
    assert load_dataset("mnist", tmp_path / "data", download=True).x_train.shape == (20, 1, 28, 28)
    assert len(hits) == 4


@pytest.mark.parametrize("evil", ["../evil", "cifar-10-batches-py/../../evil", "ABSOLUTE"])
def test_tar_path_traversal_refused(server, tmp_path, monkeypatch, evil):
    base, root, _ = server
    if evil == "ABSOLUTE":
        evil = str(tmp_path / "evil")
    serve_cifar10(monkeypatch, base, root, tmp_path, evil=evil)
    data = tmp_path / "a" / "data"
    with pytest.raises(download.UnsafeArchiveError, match="refusing to extract member"):
        load_dataset("cifar10", data)
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not data.exists()


def test_tar_link_refused(server, tmp_path, monkeypatch):
    base, root, _ = server
    serve_cifar10(monkeypatch, base, root, tmp_path)
    tgz = root / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    monkeypatch.setitem(download.SOURCES, "cifar10", dataclasses.replace(
        download.SOURCES["cifar10"], files=((base + tgz.name, md5(tgz)),)))
    with pytest.raises(download.UnsafeArchiveError, match="link or special file"):
        load_dataset("cifar10", tmp_path / "data")


def test_source_table():
    for key, src in download.SOURCES.items():
        assert src.files and all(len(m) == 32 and u.startswith(("https://", "http://"))
                                 for u, m in src.files), key
    assert download.SOURCES["mnist"].folder == "mnist"
    assert download.SOURCES["fashion-mnist"].folder == "fashion-mnist"
    assert download.SOURCES["cifar10"].folder == "cifar-10-batches-py"
    assert download.SOURCES["cifar100"].folder == "cifar-100-python"
