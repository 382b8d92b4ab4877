"""Failures that lose nothing: exports are atomic, compact files and run files carry checksums that turn
damage into one line (never a different model or wrong numbers), and a run never truncates another's file.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import struct
import zlib
from pathlib import Path

import core_helpers as H
import h5py
import numpy as np
import pytest
import torch

from workbench import cli
from workbench.core.config import RunConfig, StageConfig
from workbench.core.errors import CheckpointError, WorkbenchError
from workbench.core.store import RunFileExists, RunWriter, read_model, read_run
from workbench.engine import export as X
from workbench.engine import runner


@pytest.fixture(scope="module")
def kmeans_run(tmp_path_factory, cache_root):
    """magnitude -> kmeans on mlp_tiny: its compact file holds codebooks and relative indices."""
    out = tmp_path_factory.mktemp("run-fs")
    config = RunConfig(dataset="tiny", model="mlp_tiny", out_dir=str(out), device="cpu", pretrain_epochs=3,
                       stages=[StageConfig("magnitude", H.AGGRESSIVE["magnitude"], {"epochs": 1}),
                               StageConfig("kmeans", {}, {"epochs": 1})], name="mk")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_CACHE", str(cache_root))
        fin = H.finished(H.run_events(config))
    assert fin.status == "completed", fin.error
    return Path(fin.run_path)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


# --- 1. atomic exports ----------------------------------------------------------------------------

def _enospc(path) -> None:
    """What a full disk does to a writer: some bytes land, then the write fails."""
    with open(path, "ab") as f:
        f.write(b"partial" * 10)
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail_inner_writer(fmt: str, monkeypatch) -> None:
    import safetensors.torch

    if fmt == "compact" or fmt == "dense-sidecar":   # the compact file; the sidecar (after the .safetensors)
        monkeypatch.setattr(X, "_write_parts", lambda path, *parts: _enospc(path))
    elif fmt == "dense":
        monkeypatch.setattr(safetensors.torch, "save_file", lambda state, path, *a, **k: _enospc(path))
    elif fmt == "pt2":
        monkeypatch.setattr(torch.export, "save", lambda program, f, *a, **k: _enospc(f))
    else:
        monkeypatch.setattr(torch.onnx, "export", lambda model, args, f, *a, **k: _enospc(f))


@pytest.mark.parametrize("fmt", ["compact", "dense", "dense-sidecar", "pt2", "onnx"])
def test_a_failed_export_leaves_no_file_and_an_older_one_as_it_was(fmt, kmeans_run, tmp_path, monkeypatch):
    real_fmt = fmt.split("-")[0]
    out = tmp_path / "exports" / f"model.{ {'compact': 'cwbc', 'dense': 'safetensors'}.get(real_fmt, real_fmt)}"
    finals = [out, out.with_suffix(".json")] if real_fmt == "dense" else [out]
    _fail_inner_writer(fmt, monkeypatch)
    with pytest.raises(WorkbenchError, match="No space left on device") as info:
        X.export_run(kmeans_run, real_fmt, out)
    _one_line(info.value)
    assert sorted(out.parent.iterdir()) == []                  # nothing at the target, no temporary left

    older = {p: f"an older {p.suffix} file".encode() for p in finals}
    for p, data in older.items():
        p.write_bytes(data)
    with pytest.raises(WorkbenchError, match="No space left on device"):
        X.export_run(kmeans_run, real_fmt, out)
    assert sorted(out.parent.iterdir()) == sorted(finals)
    assert all(p.read_bytes() == data for p, data in older.items())

    monkeypatch.undo()                                         # and a working writer replaces them
    X.export_run(kmeans_run, real_fmt, out)
    assert sorted(out.parent.iterdir()) == sorted(finals)
    assert all(p.read_bytes() != data for p, data in older.items())


@pytest.mark.parametrize("older", [False, True])
def test_a_dense_export_whose_last_rename_fails_undoes_the_first(older, kmeans_run, tmp_path, monkeypatch):
    """Dense writes two files (the sidecar renamed first): when the weights' rename fails, the sidecar
    already in place is taken back, an older one restored, so the pair stays as it was."""
    out = tmp_path / "m.safetensors"
    sidecar = out.with_suffix(".json")
    if older:
        out.write_bytes(b"older weights")
        sidecar.write_bytes(b"older sidecar")
    real = os.replace

    def failing(src, dst):
        if Path(dst) == out:
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(X.os, "replace", failing)
    with pytest.raises(WorkbenchError, match="Input/output error") as info:
        X.export_run(kmeans_run, "dense", out)
    _one_line(info.value)
    if older:
        assert sorted(tmp_path.iterdir()) == [sidecar, out]
        assert (out.read_bytes(), sidecar.read_bytes()) == (b"older weights", b"older sidecar")
    else:
        assert sorted(tmp_path.iterdir()) == []


def test_export_into_a_folder_that_is_a_file_is_one_line(kmeans_run, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    for out in (blocker / "m.cwbc", blocker / "sub" / "m.cwbc"):
        assert cli.main(["export", str(kmeans_run), "--format", "compact", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot write") and err.count("\n") == 1 and "Traceback" not in err
    assert blocker.read_text() == "a file where a folder should be"


# --- 2. compact checksum ------------------------------------------------------------------------

def _outputs(model) -> torch.Tensor:
    x, _ = H.tiny_test_set()
    with torch.no_grad():
        return model.eval()(x[:64])


def _split(blob: bytes) -> tuple[dict, int]:
    length = struct.unpack("<BI", blob[4:9])[1]
    return json.loads(zlib.decompress(blob[9:9 + length])), 9 + length


def _without_crc(blob: bytes) -> bytes:
    """The same file as written before the payload CRC existed."""
    header, start = _split(blob)
    del header["payload_crc32"]
    packed = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    return X.MAGIC + struct.pack("<BI", X.VERSION, len(packed)) + packed + blob[start:]


def _flip_outcomes(blob: bytes, start: int, tmp_path, seed: int, copies: int = 200):
    """Flip 1-3 distinct bytes at or after `start` in each copy; (refused, equal, different) counts."""
    reference = _outputs(X.load_compact(_write(tmp_path / "clean.cwbc", blob)))
    rng = random.Random(seed)
    refused = equal = different = 0
    for i in range(copies):
        damaged = bytearray(blob)
        for pos in rng.sample(range(start, len(blob)), rng.randint(1, 3)):
            damaged[pos] ^= rng.randint(1, 255)
        path = _write(tmp_path / f"flip{i}.cwbc", bytes(damaged))
        try:
            model = X.load_compact(path)
        except CheckpointError as exc:                     # one line, never another exception type
            assert str(path) in _one_line(exc)
            refused += 1
            continue
        if torch.equal(_outputs(model), reference):
            equal += 1
        else:
            different += 1
    return refused, equal, different


def _write(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


def test_compact_payload_flips_are_refused_never_a_different_model(kmeans_run, tmp_path):
    out = X.export_run(kmeans_run, "compact", tmp_path / "m.cwbc").path
    blob = out.read_bytes()
    header, start = _split(blob)
    assert header["payload_crc32"] == zlib.crc32(blob[start:])
    refused, equal, different = _flip_outcomes(blob, start, tmp_path, seed=0)
    assert different == 0 and refused + equal == 200 and refused >= 190, (refused, equal)
    # Anywhere in the file (magic, version, header length, the zlib header): refused or harmless too.
    refused, equal, different = _flip_outcomes(blob, 0, tmp_path, seed=1, copies=100)
    assert different == 0 and refused >= 95, (refused, equal)


def test_compact_without_checksum_still_loads_and_damage_is_one_line(kmeans_run, tmp_path):
    """Files from before the CRC load unchecked; a flipped payload reaches the decoder, whose out-of-range
    indices and codes must come out as the one-line error (or a model: without a checksum a changed value
    cannot be told from a real one)."""
    out = X.export_run(kmeans_run, "compact", tmp_path / "m.cwbc").path
    checked = out.read_bytes()
    old = _without_crc(checked)
    assert torch.equal(_outputs(X.load_compact(_write(tmp_path / "old.cwbc", old))),
                       _outputs(X.load_compact(out)))
    refused, equal, different = _flip_outcomes(old, _split(old)[1], tmp_path, seed=2)
    assert refused + equal + different == 200 and refused > 0


def test_compact_damage_is_found_before_decoding(kmeans_run, tmp_path, monkeypatch):
    blob = X.export_run(kmeans_run, "compact", tmp_path / "m.cwbc").path.read_bytes()
    damaged = bytearray(blob)
    damaged[-1] ^= 0x01
    monkeypatch.setattr(X, "decode", lambda *a: pytest.fail("decoded a file whose checksum fails"))
    path = _write(tmp_path / "d.cwbc", bytes(damaged))
    with pytest.raises(CheckpointError, match="is damaged: checksum mismatch$"):
        X.read_compact(path)


# --- 3. run files never truncate another's --------------------------------------------------------

def test_run_file_taken_between_choice_and_creation_keeps_its_bytes(tmp_path, monkeypatch):
    config = H.make_config("magnitude", tmp_path, epochs=1, pretrain_epochs=1, name="race")
    theirs = b"another process's run file"
    real = runner.RunWriter
    calls = []

    def racing(path, attrs):
        calls.append(Path(path))
        if len(calls) == 1:                     # the other process wins the name just before creation
            Path(path).write_bytes(theirs)
        return real(path, attrs)

    monkeypatch.setattr(runner, "RunWriter", racing)
    fin = H.finished(H.run_events(config))
    assert fin.status == "completed", fin.error
    assert calls == [tmp_path / "race.h5", tmp_path / "race-2.h5"]
    assert (tmp_path / "race.h5").read_bytes() == theirs
    assert Path(fin.run_path) == tmp_path / "race-2.h5" and read_run(fin.run_path).status == "completed"


def test_run_writer_refuses_an_existing_file(tmp_path):
    path = tmp_path / "r.h5"
    path.write_bytes(b"precious")
    with pytest.raises(RunFileExists):
        RunWriter(path, {})
    assert path.read_bytes() == b"precious"
    # A name that exists only as a dangling link is skipped as well, not retried for ever.
    (tmp_path / "s.h5").symlink_to(tmp_path / "nowhere" / "s.h5")
    config = H.make_config("magnitude", tmp_path, name="s")
    assert runner.run_path_for(config, [tmp_path / "s.h5"]) == tmp_path / "s-2.h5"


# --- 4. checksums on run-file datasets ----------------------------------------------------------

def _flip_in_chunk(path: Path, dataset: str, byte: int = 3) -> None:
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        assert ds.fletcher32, dataset
        offset = ds.id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + byte)
        value = fh.read(1)[0]
        fh.seek(offset + byte)
        fh.write(bytes([value ^ 0x20]))


@pytest.mark.parametrize("dataset", ["metrics/test_accuracy", "layers/fc1/nonzeros", "layers/fc1/hist_edges"])
def test_a_flipped_byte_in_a_series_is_one_line_not_wrong_numbers(dataset, kmeans_run, tmp_path):
    path = Path(shutil.copy(kmeans_run, tmp_path / "run.h5"))
    _flip_in_chunk(path, dataset)
    with pytest.raises(WorkbenchError, match=f"is damaged: /{dataset} fails its checksum$") as info:
        read_run(path)
    _one_line(info.value)


def test_a_flipped_byte_in_the_model_is_one_line(kmeans_run, tmp_path):
    path = Path(shutil.copy(kmeans_run, tmp_path / "run.h5"))
    _flip_in_chunk(path, "model/fc1.weight", byte=40)
    with pytest.raises(WorkbenchError, match=r"/model/fc1.weight fails its checksum"):
        read_model(path)


def test_run_files_without_series_checksums_still_read(tmp_path):
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:          # the layout before /metrics and /layers had checksums
        f.attrs["schema_version"], f.attrs["status"] = 1, "completed"
        f.create_group("metrics").create_dataset("test_accuracy", data=[0.5, 0.75], maxshape=(None,),
                                                 chunks=(64,))
        f.create_group("layers").create_group("fc1").create_dataset("nonzeros", data=[10.0, 5.0])
        f.create_group("summary")
    run = read_run(path)
    np.testing.assert_array_equal(run.metrics["test_accuracy"], [0.5, 0.75])
    np.testing.assert_array_equal(run.layers["fc1"]["nonzeros"], [10.0, 5.0])


# --- 5. export of a damaged run file ---------------------------------------------------------------

def _truncate(fraction: float):
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * fraction)])
    return damage


def _set_attr(group: str, name: str, value):
    def damage(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            f[group].attrs[name] = value
    return damage


def _delete(name: str):
    def damage(path: Path) -> None:
        with h5py.File(path, "r+") as f:
            del f[name]
    return damage


def _del_attr(path: Path, group: str, name: str) -> None:
    with h5py.File(path, "r+") as f:
        del f[group].attrs[name]


DAMAGE = {
    "truncated-0.01": _truncate(0.01), "truncated-0.3": _truncate(0.3), "truncated-0.6": _truncate(0.6),
    "truncated-0.95": _truncate(0.95), "truncated-0.999": _truncate(0.999),
    "config-not-json": _set_attr("model", "config", "{not json"),
    "config-not-a-run": _set_attr("model", "config", '{"stages": 3}'),
    "config-null": _set_attr("model", "config", "null"),            # was "'NoneType' object is not subscriptable"
    "config-no-stages": _set_attr("model", "config", '{"stages": [], "dataset": "tiny"}'),   # was an IndexError
    "mean-not-numbers": _set_attr("model", "mean", "abc"),           # was a ValueError traceback
    "no-input-shape": lambda p: _del_attr(p, "model", "input_shape"),
    "no-model": _delete("model"),
    "no-metrics": _delete("metrics"),
    "model-tensor-flipped": lambda p: _flip_in_chunk(p, "model/fc1.weight", byte=40),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_export_of_a_damaged_run_is_one_line(damage, kmeans_run, tmp_path, capsys):
    path = Path(shutil.copy(kmeans_run, tmp_path / "run.h5"))
    DAMAGE[damage](path)
    out = tmp_path / "m.cwbc"
    rc = cli.main(["export", str(path), "--format", "compact", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == "", captured
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and not out.exists()


# --- 6. the compact decoder never reads out of bounds ------------------------------------------------

def _encodings() -> dict:
    """One real record of every encoding the compact file holds (Huffman where it wins)."""
    from workbench.core import encoding as E

    rng = np.random.default_rng(0)
    dense = rng.standard_normal((40, 60)).astype(np.float32)
    # Mostly every 4th weight kept (skewed gaps: Huffman wins), a few runs past 2^5 (fillers too).
    keep = (np.arange(dense.size) % 4 == 0) & (rng.random(dense.size) < 0.9)
    keep[200:300] = False
    pruned = dense * keep.reshape(dense.shape)
    book = np.array([-0.5, -0.1, 0.2, 0.7], np.float32)
    shared = book[rng.choice(4, dense.shape, p=[0.7, 0.1, 0.1, 0.1])]   # skewed codes: Huffman wins
    shared_pruned = shared * keep.reshape(dense.shape)
    records = {
        "dense": E.encode_dense("w", "fc1", "fc", dense),
        "sparse": E.encode_sparse("w", "fc1", "fc", pruned, index_bits=5),
        "dense_cb": E.encode_codebook("w", "fc1", "fc", shared, book, sparse=False),
        "sparse_cb": E.encode_codebook("w", "fc1", "fc", shared_pruned, book, sparse=True, index_bits=4),
        "uint": E.encode_integers("seed", "fc1", "other", np.array([7, 123456], np.int64)),
    }
    records["sparse_huffman"] = E.huffman_coded(records["sparse"])
    records["sparse_cb_huffman"] = E.huffman_coded(records["sparse_cb"])
    assert records["sparse_huffman"].info.get("index_coding") == "huffman"
    assert records["sparse_cb_huffman"].info.get("codes_coding") == "huffman"
    return records


def _damaged(record, rng: random.Random) -> tuple[dict, dict]:
    """(info, arrays) with one kind of damage: bytes flipped, an array cut short or grown, a count or width
    in the header changed."""
    info = json.loads(json.dumps(record.info))                          # as a file's header gives it back
    arrays = {k: np.ascontiguousarray(v) for k, v in record.arrays.items()}
    name = rng.choice(sorted(arrays))
    raw = bytearray(arrays[name].tobytes())
    how = rng.choice(["flip", "cut", "grow", "count"])
    if how == "flip" and raw:
        for pos in rng.sample(range(len(raw)), min(len(raw), rng.randint(1, 3))):
            raw[pos] ^= rng.randint(1, 255)
    elif how == "cut":
        raw = raw[:rng.randrange(len(raw) + 1)]
    elif how == "grow":
        raw += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    else:
        counts = [k for k in info if k in ("entries", "index_bits", "code_bits", "codebook_size")]
        if counts:
            key = rng.choice(counts)
            info[key] = rng.choice([0, 1, 33, info[key] + rng.randint(-3, 3), info[key] * 4, -1])
    dtype = arrays[name].dtype
    raw = raw[:len(raw) - len(raw) % dtype.itemsize]
    arrays[name] = np.frombuffer(bytes(raw), dtype=dtype)
    return info, arrays


@pytest.mark.parametrize("kind", ["dense", "sparse", "dense_cb", "sparse_cb", "uint", "sparse_huffman",
                                  "sparse_cb_huffman"])
def test_the_decoder_refuses_damage_in_one_line_never_reads_out_of_bounds(kind):
    """Random flips, cuts and header counts on a real record of each encoding, no checksum to stop them:
    decode gives a tensor of the declared shape or the one-line Damaged error, never an IndexError, a
    MemoryError or a wrong-sized array."""
    from workbench.core.encoding import Damaged, decode

    record = _encodings()[kind]
    clean = decode(record.info, record.shape, record.encoding, record.arrays)
    assert clean.shape == record.shape
    rng = random.Random(kind)
    refused = 0
    for _ in range(150):
        info, arrays = _damaged(record, rng)
        try:
            value = decode(info, record.shape, record.encoding, arrays)
        except Damaged as exc:
            assert isinstance(exc, WorkbenchError)
            _one_line(exc)
            refused += 1
            continue
        assert value.shape == record.shape
    assert refused > 0


def test_truncated_and_flipped_compact_files_without_checksum_are_the_damage_line(kmeans_run, tmp_path):
    """The whole file, cut anywhere or flipped anywhere, with the CRC gone (as in older files): only
    read_compact's one line, and never by way of an out-of-bounds index caught late."""
    blob = _without_crc(X.export_run(kmeans_run, "compact", tmp_path / "m.cwbc", huffman=True).path.read_bytes())
    rng = random.Random(3)
    damaged = [blob[:n] for n in sorted(rng.sample(range(len(blob)), 60))]
    for _ in range(60):
        copy = bytearray(blob)
        for pos in rng.sample(range(len(blob)), rng.randint(1, 4)):
            copy[pos] ^= rng.randint(1, 255)
        damaged.append(bytes(copy))
    for i, data in enumerate(damaged):
        path = _write(tmp_path / f"d{i}.cwbc", data)
        try:
            X.read_compact(path)
        except CheckpointError as exc:
            text = _one_line(exc)
            assert str(path) in text
            assert not text.endswith(("(IndexError)", "(MemoryError)", "(OverflowError)")), text
