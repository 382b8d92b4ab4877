import pytest
import torch

from workbench.core.errors import ParamError
from workbench.data import batches, load_dataset, num_batches


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_batches_cover_every_sample_once(shuffle, drop_last):
    x = torch.arange(103).float().view(103, 1)
    y = torch.arange(103)
    gen = torch.Generator().manual_seed(0)
    seen = []
    for xb, yb in batches(x, y, 10, shuffle=shuffle, generator=gen, drop_last=drop_last):
        assert torch.equal(xb[:, 0].long(), yb)  # pairs stay together
        assert len(yb) == 10 or (not drop_last and len(yb) == 3)
        seen += yb.tolist()
    assert len(seen) == len(set(seen))
    if drop_last:
        assert len(seen) == 100 and set(seen) <= set(range(103))
    else:
        assert sorted(seen) == list(range(103))
    assert (seen != sorted(seen)) == shuffle


def test_shuffle_follows_generator():
    x = y = torch.arange(50)

    def order(seed):
        gen = torch.Generator().manual_seed(seed)
        return torch.cat([yb for _, yb in batches(x, y, 8, shuffle=True, generator=gen)]).tolist()

    assert order(1) == order(1) and order(1) != order(2)


def test_num_batches_and_errors():
    assert num_batches(100, 10) == 10 and num_batches(101, 10) == 11
    assert num_batches(101, 10, drop_last=True) == 10 and num_batches(0, 4) == 0
    with pytest.raises(ParamError):
        num_batches(10, 0)
    with pytest.raises(ParamError):
        batches(torch.zeros(3), torch.zeros(4), 2, shuffle=False)


def test_subset():
    ds = load_dataset("tiny")
    sub = ds.subset(100, None, seed=3)
    assert len(sub.train_x) == 100 and len(sub.test_x) == 256 and sub.num_classes == 4
    assert torch.equal(sub.train_x, ds.subset(100, None, seed=3).train_x)
    assert not torch.equal(sub.train_y, ds.subset(100, None, seed=4).train_y)
    # rows are taken whole from the original
    row = sub.train_x[0]
    assert any(torch.equal(row, r) for r in ds.train_x)
    assert len(ds.subset(10_000, 5).train_x) == 512 and len(ds.subset(None, 5).test_x) == 5
    with pytest.raises(ParamError):
        ds.subset(-1, None)
