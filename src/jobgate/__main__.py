"""python -m jobgate: the command line."""

from jobgate.cli.main import main

main()
