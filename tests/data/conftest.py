import pytest


@pytest.fixture(autouse=True)
def _no_download(monkeypatch):
    """No data-set test touches the real network: load_dataset's automatic download is off
    (tests/data/test_download.py turns it back on against a local server)."""
    monkeypatch.setenv("FASTRES_NO_DOWNLOAD", "1")
