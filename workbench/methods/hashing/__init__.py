"""The hashing methods: HashedNets (`hashednets.py`) and functional hashing (`funhash.py`) over their
shared part (`base.py`: budgets, the structure spec, initialisation) and run-file series (`stats.py`).
The layers they install, the hash and the native kernel are `models/hashed/`.
"""
