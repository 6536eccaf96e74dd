"""The `caviar` console script: the same command-line tool as the Rust binary."""

import sys

from ._caviar import cli_main


def main() -> None:
    # The CLI's messages call it `caviar`, whatever path started it.
    sys.exit(cli_main(["caviar", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
