"""Argument types shared by the ``gen0`` subcommands (light: the CLI imports them before any torch)."""

from __future__ import annotations

import argparse


def size_arg(text: str) -> tuple[int, int]:
    """Image sizes written WIDTHxHEIGHT (``320x240``): (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must be WIDTHxHEIGHT like 96x96, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"image size must be positive, got {text!r}")
    return w, h
