"""The bundle's executable: the same command line as the pip-installed `workbench` (`workbench gui FILE.h5`
opens run files in the app; no command opens the app).

A frozen program's sys.executable is the bundle itself, not a Python, so `sys.executable -m MODULE ...`
(deploy's memory probe runs `workbench.engine.deploy_memory` in a fresh process that way) comes back
here: it is run as the module would be by `python -m`.
"""

import runpy
import sys

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "-m":
        module = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        from workbench.cli import entry

        entry()
