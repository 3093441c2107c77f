"""Seconds to parse hostile judge outputs at growing sizes (run by hand).

    python benchmarks/judge_parse.py [--sizes 5600,56000,560000]

Each shape once made :func:`rrm.parse.parse_judgment` quadratic (a lazy block regex
retried from every unclosed tag: a 56 KB critique took 4.2 s). Linear parsing shows as
time growing ~10x per 10x of text.
"""

from __future__ import annotations

import argparse
import timeit

from rrm.parse import parse_judgment

SHAPES = {
    "open think tags": lambda n: "<think>" * (n // 7),
    "open critique tags": lambda n: "<think>x</think>" + "<critique>" * (n // 10),
    "open score tags": lambda n: "<think>a</think><critique>b</critique>" + "<score>" * (n // 7),
    "critique full of tags": lambda n: ("<think>a</think><critique>" + "x<think>" * (n // 8)
                                        + "</critique><score>0.5</score>"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5600,56000,560000", help="text sizes in characters")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("shape".ljust(24) + "".join(f"{n:>12}" for n in sizes))
    for name, make in SHAPES.items():
        times = []
        for n in sizes:
            text = make(n)
            times.append(min(timeit.repeat(lambda: parse_judgment(text), number=3, repeat=3)) / 3)
        print(name.ljust(24) + "".join(f"{t:>11.5f}s" for t in times))


if __name__ == "__main__":
    main()
