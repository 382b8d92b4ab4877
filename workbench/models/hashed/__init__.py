"""Hashed layers, the model side of the hashing family (HashedNets, functional hashing):

    index.py     the 32-bit hash: bucket and sign of every virtual weight, from a seed (Python and torch)
    kernel.c     the same hash and the reconstruction network g in C: the fused native CPU kernel
    kernel.py    builds and loads kernel.c on first use; g's parameter layout
    layers.py    HashedLinear / HashedConv2d, the shared root (spaces, g, seed): the PyTorch path
    encode.py    what a hashed model stores (buckets, g, the seed), for accounting and the compact file

They are model building blocks like the factorised layers: `models/structure.py` replays them when a
run's model is rebuilt. The methods that choose budgets and initialise them are `methods/hashing/`.
"""
