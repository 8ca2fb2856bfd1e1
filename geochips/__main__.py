"""``python -m geochips``: the same command line as the ``geochips`` script."""

from geochips.cli import main

raise SystemExit(main())
