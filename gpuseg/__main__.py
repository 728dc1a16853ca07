"""``python -m gpuseg``."""

from .cli import main

raise SystemExit(main())
