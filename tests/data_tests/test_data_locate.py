"""Search order, the offline message and downloads (with a fake fetch: never the network)."""

import gzip
import hashlib
import sys

import pytest

from workbench.core.errors import DataError
from workbench.data import dataset_names, download, find_dataset, load_dataset, locate, search_dirs

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]


def test_names():
    assert dataset_names() == ["mnist", "fashion-mnist", "cifar10", "tiny"]


def test_search_order(tmp_path, monkeypatch, isolated, write_idx_set):
    arg, env, system = tmp_path / "arg", tmp_path / "env", tmp_path / "system"
    monkeypatch.setenv("WORKBENCH_DATA", str(env))
    monkeypatch.setattr(locate, "SYSTEM_DIRS", [system])
    assert search_dirs(arg) == [arg, env, isolated, system]
    for root in (system, isolated, env, arg):  # each newly filled root takes precedence
        write_idx_set(root / "mnist")
        assert find_dataset("mnist", arg) == root / "mnist"
        assert load_dataset("mnist", arg).source == str(root / "mnist")


def test_layouts(tmp_path, write_idx_set):
    write_idx_set(tmp_path / "MNIST" / "raw")
    assert find_dataset("mnist", tmp_path) == tmp_path / "MNIST" / "raw"
    # a folder named for MNIST is never taken for Fashion-MNIST, though the file names match
    write_idx_set(tmp_path / "mnist")
    assert find_dataset("mnist", tmp_path / "mnist") == tmp_path / "mnist"
    assert find_dataset("fashion-mnist", tmp_path / "mnist") is None
    assert find_dataset("nonsense", tmp_path) is None


def test_missing_set_offline_names_files_and_dirs(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as err:
        load_dataset("mnist", tmp_path / "arg")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("MNIST not found")
    for f in FILES:
        assert f + ".gz" in msg
    for d in (tmp_path / "arg" / "mnist", tmp_path / "env" / "mnist", isolated / "mnist"):
        assert str(d) in msg


def test_no_download_when_not_allowed(monkeypatch):
    def fail(url, timeout=None):
        raise AssertionError("fetched although download=False")

    monkeypatch.setattr(download, "fetch", fail)
    with pytest.raises(DataError, match="MNIST not found"):
        load_dataset("mnist", download=False)
    with pytest.raises(DataError, match="cannot be downloaded"):
        load_dataset("cifar10")


def _fake_server(monkeypatch, idx_bytes, write_idx_set, tmp_path, corrupt=None):
    """Serves gzipped fake MNIST files and makes their checksums the expected ones."""
    arrays = write_idx_set(tmp_path / "source")
    contents = {base: idx_bytes(arr) for base, arr in arrays.items()}
    monkeypatch.setitem(download.SHA256, "mnist",
                        {b: hashlib.sha256(c).hexdigest() for b, c in contents.items()})
    fetched = []

    def fetch(url, timeout=None):
        fetched.append(url)
        base = url.rsplit("/", 1)[1].removesuffix(".gz")
        content = contents[base] + (b"x" if base == corrupt else b"")
        return gzip.compress(content)

    monkeypatch.setattr(download, "fetch", fetch)
    return fetched


def test_download_verified_and_cached(tmp_path, monkeypatch, isolated, idx_bytes, write_idx_set):
    fetched = _fake_server(monkeypatch, idx_bytes, write_idx_set, tmp_path)
    ds = load_dataset("mnist")
    assert len(fetched) == 4 and ds.source == str(isolated / "mnist")
    assert sorted(p.name for p in (isolated / "mnist").iterdir()) == sorted(f + ".gz" for f in FILES)
    load_dataset("mnist")  # found in the cache now: no second download
    assert len(fetched) == 4


def test_download_with_wrong_checksum_is_not_kept(tmp_path, monkeypatch, isolated, idx_bytes,
                                                  write_idx_set):
    fetched = _fake_server(monkeypatch, idx_bytes, write_idx_set, tmp_path,
                           corrupt="train-labels-idx1-ubyte")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz does not match its SHA-256"):
        load_dataset("mnist")
    assert len(fetched) == 1 + len(download.MIRRORS["mnist"])  # every mirror was tried
    kept = sorted(p.name for p in (isolated / "mnist").iterdir())
    assert kept == ["train-images-idx3-ubyte.gz"]  # the good file stays; no bad or partial ones
    assert find_dataset("mnist") is None


def test_bad_names():
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="needs a path"):
        load_dataset("folder:")


def test_folder_without_pillow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `import PIL` fail
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.png").write_bytes(b"")
    with pytest.raises(DataError, match="pip install pillow"):
        load_dataset(f"folder:{tmp_path}")
