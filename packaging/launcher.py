"""Entry script for the PyInstaller build: the ``codex-pool`` console script, and the pool window.

In a bundle ``sys.executable`` is codex-pool itself, so the tray starts its window as
``codex-pool --pool-window`` (``tray.desktop.window.window_command``); that is dispatched here,
before the command line is parsed, because the CLI knows no such option.
"""

import sys

from tray.desktop.window import WINDOW_FLAG

if sys.argv[1:2] == [WINDOW_FLAG]:
    from tray.desktop.window import main as window

    raise SystemExit(window())

from tray.cli import main

raise SystemExit(main())
