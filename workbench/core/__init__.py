"""The ground floor, which every other floor stands on (no import of data, models, methods, engine or
gui): parameter declarations and their one exact text format, the run config and run settings, events,
errors, accounting and encoding, Huffman coding, the run store (HDF5), presets and devices."""
