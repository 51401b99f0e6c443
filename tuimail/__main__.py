"""`python -m tuimail` is the `tuimail` command."""

from tuimail.cli import main

raise SystemExit(main())
