import torch

from workbench.data import batches, load_dataset


def test_tiny_is_deterministic():
    a, b = load_dataset("tiny"), load_dataset("tiny")
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.train_x.shape == (512, 1, 8, 8) and a.test_x.shape == (256, 1, 8, 8)
    assert a.num_classes == 4 and torch.bincount(a.train_y).tolist() == [128] * 4
    assert a.source == "built-in synthetic (tiny)"


def test_tiny_is_learnable():
    ds = load_dataset("tiny")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        for xb, yb in batches(ds.train_x, ds.train_y, 32, shuffle=True, generator=gen):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    with torch.no_grad():
        acc = (model(ds.test_x).argmax(1) == ds.test_y).float().mean().item()
    assert acc > 0.9
