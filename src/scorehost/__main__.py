from __future__ import annotations

from scorehost.cli import main

main()
