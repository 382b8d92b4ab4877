"""Hashed layers, the model side of the hashing family (HashedNets, functional hashing):

    index.py     the 32-bit hash: bucket and sign of every virtual weight, from a seed (one mix32 for
                 Python ints and torch tensors)
    kernel.c     the same hash in C, and the fused native CPU kernel around it
    kernel.py    builds and loads kernel.c on first use; g's parameter layout, and g in C generated from it
    layers.py    HashedLinear / HashedConv2d, the shared root (spaces, g, seed), g in PyTorch: the PyTorch path

They are model building blocks like the factorised layers: `models/structure.py` replays them when a
run's model is rebuilt. The methods that choose budgets and initialise them are `methods/hashing/`;
what a hashed model stores (buckets, g, the seed) is encoded in `methods/storage.py`.
"""
