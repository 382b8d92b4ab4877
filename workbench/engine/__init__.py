"""The engine floor: what drives a run over the methods, models and data.

    runner.py     the one run loop, a generator of events (execute)
    training.py   epochs and steps with the method's hooks, evaluation, the clock
    reference.py  the model a run starts from: a user's checkpoint, or a zoo model pretrained and cached
    export.py     a run file's model out as compact, dense or ONNX files, and the compact loader
    compare.py    the side-by-side table of run files
    console.py    the event printer the CLI and the demo share; Ctrl-C / SIGTERM cancel cleanly
    demo.py       the headless demo comparison
"""
