"""Console commands of syncvp_core: argument parsing over the library's functions (shared helpers:
syncvp_core.arguments)."""
