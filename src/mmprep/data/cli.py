"""``mmprep count --manifest FILE [--out FILE] [--engine E]``: a dataset's counts, failures on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from ..loading import load
from .manifest import count_dataset

SHOW_FAILURES = 20  # failures printed to stderr; the --out file has every one


def count_manifest(args: argparse.Namespace, out: TextIO) -> int:
    """Print a JSON summary line; exit 1 when any record failed, else 0."""
    family = load(args.model, engine=args.engine)
    counts = count_dataset(args.manifest, family, tokenizer=args.tokenizer, out=args.out,
                           progress=False if args.no_progress else None)
    summary = counts.summary()
    if args.out:
        summary["out"] = args.out
    print(json.dumps(summary), file=out)
    failed = counts.failed
    for rid, reason in failed[:SHOW_FAILURES]:
        print(f"mmprep: record {rid!r}: {reason}", file=sys.stderr)
    if len(failed) > SHOW_FAILURES:
        print(f"mmprep: ... and {len(failed) - SHOW_FAILURES} more (see --out)", file=sys.stderr)
    if failed:
        print(f"mmprep: {len(failed)} of {len(counts)} records failed", file=sys.stderr)
    return 1 if failed else 0
