"""Console commands of syncvp_core (and the argument parser every project CLI shares)."""
import argparse


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments exit 2 with one line saying what to fix (argparse's default adds the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")
