"""`python -m loanbilling`: the same as the `loanbilling` command (serve --workers
starts its worker processes this way)."""

from loanbilling.cli import main

raise SystemExit(main())
