"""Run-file layout (DESIGN.md, "Run store"), read with plain h5py: readable by any HDF5 tool."""

from __future__ import annotations

import datetime as dt
import json

import h5py
import numpy as np
import pytest

import workbench
from workbench.core.config import RunConfig

SERIES = ("step", "epoch", "train_loss", "test_accuracy", "param_ratio", "storage_ratio")


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def test_root_attributes(dns_run):
    events, path = dns_run
    with h5py.File(path, "r") as f:
        a = {k: _s(v) for k, v in f.attrs.items()}
    assert int(a["schema_version"]) == 1
    assert a["status"] == "completed" and a["error"] == ""
    cfg = RunConfig.from_json(a["config"])
    assert cfg.model == "mlp_tiny" and cfg.dataset == "tiny"
    assert [s.method for s in cfg.stages] == ["dns"]
    started_event = next(e for e in events if type(e).__name__ == "RunStarted")
    assert cfg == RunConfig.from_json(started_event.config["config"])
    assert (a["method"], a["model"], a["dataset"]) == ("dns", "mlp_tiny", "tiny")
    assert a["device"].startswith("cpu")
    started, finished = dt.datetime.fromisoformat(a["started"]), dt.datetime.fromisoformat(a["finished"])
    assert started.tzinfo is not None and started <= finished
    assert a["workbench_version"] == workbench.__version__


def test_metrics_series_have_one_entry_per_point(dns_run):
    events, path = dns_run
    points = [e for e in events if type(e).__name__ == "Evaluated"]
    with h5py.File(path, "r") as f:
        m = f["metrics"]
        for name in ("step", "epoch", "test_accuracy", "param_ratio", "storage_ratio"):
            assert m[name].ndim == 1 and m[name].shape == (len(points),), name
        np.testing.assert_array_equal(m["step"][()], [0, 4, 8, 8])
        np.testing.assert_array_equal(m["epoch"][()], [0, 1, 2, 2])
        np.testing.assert_allclose(m["test_accuracy"][()], [e.metrics["test_accuracy"] for e in points])
        np.testing.assert_allclose(m["param_ratio"][()], [e.metrics["param_ratio"] for e in points])
        assert m["param_ratio"][0] == pytest.approx(1.0)      # the reference point is uncompressed
        loss = m["train_loss"][()]
        assert np.isnan(loss[0])                               # not measured before training
        assert np.all(np.isfinite(loss[1:3]))


def test_every_metric_series_is_padded_to_every_point(dns_run):
    events, path = dns_run
    n = sum(type(e).__name__ == "Evaluated" for e in events)
    with h5py.File(path, "r") as f:
        lengths = {name: ds.shape[0] for name, ds in f["metrics"].items()}
        for layer in f["layers"].values():
            lengths.update({f"{layer.name}/{k}": ds.shape[0] for k, ds in layer.items() if k != "hist_edges"})
    assert {k: v for k, v in lengths.items() if v != n} == {}


def test_layers_histograms_and_nonzeros(dns_run):
    events, path = dns_run
    n = sum(type(e).__name__ == "Evaluated" for e in events)
    with h5py.File(path, "r") as f:
        assert set(f["layers"]) == {"fc1", "fc2"}
        shapes = {"fc1": [32, 64], "fc2": [4, 32]}
        for name, g in f["layers"].items():
            assert list(g.attrs["shape"]) == shapes[name]
            assert _s(g.attrs["kind"]) == "fc"
            edges, counts, nz = g["hist_edges"][()], g["hist_counts"][()], g["nonzeros"][()]
            bins = counts.shape[1]
            assert edges.shape == (bins + 1,) and np.all(np.diff(edges) > 0)
            assert counts.shape == (n, bins) and nz.shape == (n,)
            np.testing.assert_array_equal(counts.sum(axis=1), nz)
            assert nz[0] == np.prod(shapes[name])             # nothing pruned in the reference
            final = f["model"][f"{name}.weight"][()]
            assert nz[-1] == np.count_nonzero(final) < nz[0]
            # DNS's own series
            for series in ("a_k", "b_k", "mask_pruned", "mask_spliced"):
                assert series in g, series
            a_k, b_k = g["a_k"][()], g["b_k"][()]
            ok = np.isfinite(a_k)
            assert ok[-1] and np.all(a_k[ok] <= b_k[ok])
            np.testing.assert_allclose(b_k[ok] / a_k[ok], 1.1 / 0.9)
            assert np.nansum(g["mask_pruned"][()]) > 0


def test_summary_attributes(dns_run):
    events, path = dns_run
    with h5py.File(path, "r") as f:
        s = dict(f["summary"].attrs)
        for key in ("test_accuracy", "param_ratio", "storage_ratio", "bits", "wall_seconds"):
            assert np.isfinite(s[key]), key
        assert 0 <= s["test_accuracy"] <= 1
        assert s["bits"] > 0 and s["wall_seconds"] > 0
        assert s["storage_ratio"] == pytest.approx(s["dense_bits"] / s["bits"])
        assert s["param_ratio"] == pytest.approx(s["dense_params"] / s["stored_params"])
    assert events[-1].summary["bits"] == s["bits"]


def _check_attr(where, key, value):
    if isinstance(value, (str, bytes, int, float, np.integer, np.floating, np.bool_)):
        return
    assert isinstance(value, np.ndarray) and value.dtype.kind in "iufb", (where, key, type(value))


def test_no_pickles_only_standard_types(dns_run, magnitude_run):
    for _, path in (dns_run, magnitude_run):
        seen = []
        with h5py.File(path, "r") as f:
            for k, v in f.attrs.items():
                _check_attr("/", k, v)

            def visit(name, obj):
                seen.append(name)
                for k, v in obj.attrs.items():
                    _check_attr(name, k, v)
                if isinstance(obj, h5py.Dataset):
                    assert obj.dtype.kind in "iufb", (name, obj.dtype)   # no object/opaque/vlen data
                    assert h5py.check_dtype(vlen=obj.dtype) is None
                    obj[()]                                               # and it reads
            f.visititems(visit)
        assert "metrics/test_accuracy" in seen and "model/fc1.weight" in seen


def test_config_attribute_repeats_the_run(dns_run):
    _, path = dns_run
    with h5py.File(path, "r") as f:
        cfg = json.loads(_s(f.attrs["config"]))
    assert cfg["stages"][0]["method"] == "dns"
    assert cfg["stages"][0]["params"]["c_rate"] == 0.0
    assert cfg["stages"][0]["train"]["epochs"] == 2
