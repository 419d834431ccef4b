"""``python -m medlens <verb>``: the same program as the ``medlens`` console script."""

from medlens.cli import main

main()
