"""The mutation score of the last mutmut run, per module and in total.

Reads mutmut 3's meta files (mutants/<path>.meta: every mutant's exit code), or with
``--results FILE`` (``-`` for stdin) the output of ``mutmut results --all true``. A mutant
counts as killed when a test failed on it or it timed out; survivors, mutants no test reaches
and anything else count against the score. Exits 1 when the total is below ``--min`` percent.

Usage: python scripts/mutation_score.py [--min 90] [--results FILE] [--mutants DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

# mutmut 3's exit codes (mutmut/stats.py); any other code is "suspicious"
STATUS_BY_EXIT_CODE = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    2: "interrupted",
    None: "not checked",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "caught by type check",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    -11: "segfault",
    -9: "segfault",
}
KILLED = {"killed", "timeout", "caught by type check"}
_MODULE = re.compile(r"^(?P<module>[\w.]+?)\.x[_\u01c1]")
_RESULT_LINE = re.compile(r"^\s*(?P<name>\S+__mutmut_\d+): (?P<status>.+?)\s*$")


def module_of(mutant: str) -> str:
    """``syncd.api.retry.xǁRetryPolicyǁbackoff__mutmut_8`` -> ``syncd.api.retry``."""
    match = _MODULE.match(mutant)
    if not match:
        raise ValueError(f"not a mutmut 3 mutant name: {mutant!r}")
    return match["module"]


def from_results(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(mutant, status) from ``mutmut results --all true`` lines; other lines are skipped."""
    for line in lines:
        match = _RESULT_LINE.match(line)
        if match:
            yield match["name"], match["status"]


def from_meta(mutants: Path) -> Iterator[tuple[str, str]]:
    """(mutant, status) from every ``*.meta`` file under ``mutants``."""
    for meta in sorted(mutants.rglob("*.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            yield name, STATUS_BY_EXIT_CODE.get(code, "suspicious")


def tally(results: Iterable[tuple[str, str]]) -> dict[str, Counter[str]]:
    """Statuses counted per module, modules in the order first seen."""
    per_module: dict[str, Counter[str]] = {}
    for name, status in results:
        per_module.setdefault(module_of(name), Counter())[status] += 1
    return per_module


def killed(counts: Counter[str]) -> int:
    return sum(n for status, n in counts.items() if status in KILLED)


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def report(per_module: dict[str, Counter[str]]) -> tuple[list[str], float]:
    """The table's lines and the total score in percent."""
    lines = [f"{'module':<22} {'killed':>7} {'total':>6} {'score':>7}  not killed"]
    total = Counter[str]()
    for module, counts in per_module.items():
        total.update(counts)
        lines.append(_row(module, counts))
    lines.append(_row("total", total))
    return lines, percent(killed(total), sum(total.values()))


def _row(name: str, counts: Counter[str]) -> str:
    whole, done = sum(counts.values()), killed(counts)
    rest = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s not in KILLED and n)
    timeouts = f" ({counts['timeout']} by timeout)" if counts["timeout"] else ""
    return f"{name:<22} {done:>7} {whole:>6} {percent(done, whole):>6.1f}%  {rest or '-'}{timeouts}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=90.0, help="lowest passing score, percent")
    parser.add_argument("--results", help="`mutmut results --all true` output; - for stdin")
    parser.add_argument("--mutants", default="mutants", help="mutmut's folder (default mutants)")
    args = parser.parse_args(argv)
    if args.results:
        handle = sys.stdin if args.results == "-" else open(args.results)
        with handle:
            per_module = tally(from_results(handle))
    else:
        per_module = tally(from_meta(Path(args.mutants)))
    if not per_module:
        print("mutation_score: no mutants found: run bash scripts/mutation.sh", file=sys.stderr)
        return 2
    lines, score = report(per_module)
    print("\n".join(lines))
    if score < args.min:
        print(f"mutation_score: {score:.1f}% is below {args.min:g}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
