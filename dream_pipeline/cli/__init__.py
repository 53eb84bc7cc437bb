"""`dream`: the command line (`dream = "dream_pipeline.cli:main"`); one module per group of commands."""

from dream_pipeline.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
