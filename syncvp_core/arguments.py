"""The argument parsing every project CLI shares (syncvp_core's commands, syncvp-bag, the demo, benchmarks)."""
import argparse


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments exit 2 with one line saying what to fix (argparse's default adds the usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def number(kind, *, at_least=None, at_most=None, above=None, below=None):
    """argparse type: a number of `kind` within the given bounds."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if at_least is not None and not value >= at_least:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {at_least}")
        if at_most is not None and not value <= at_most:
            raise argparse.ArgumentTypeError(f"{text!r} must be <= {at_most}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"{text!r} must be > {above}")
        if below is not None and not value < below:
            raise argparse.ArgumentTypeError(f"{text!r} must be < {below}")
        return value
    return parse


POSITIVE_INT, COUNT = number(int, above=0), number(int, at_least=0)
POSITIVE, NON_NEGATIVE = number(float, above=0), number(float, at_least=0)
FRACTION = number(float, at_least=0, below=1)
