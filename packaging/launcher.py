"""Entry script for the PyInstaller build: the same as the ``codex-pool`` console script."""

from tray.cli import main

raise SystemExit(main())
