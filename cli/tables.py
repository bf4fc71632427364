"""Plain-text output for the CLI: aligned tables and `key: value` blocks. Numbers are right-aligned, None
shows as `-`, and floats print without trailing zeros at up to nine decimals (costs are nano-dollar exact).
Used by `cli.tenants`."""

from collections.abc import Iterable, Sequence

__all__ = ["cell", "render_pairs", "render_table"]

GAP = "  "
FLOAT_DECIMALS = 9


def cell(value: object) -> str:
    """One value as table text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:.{FLOAT_DECIMALS}f}".rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Columns padded to their widest cell; a column of numbers (and Nones) is right-aligned."""
    materialised = [list(row) for row in rows]
    texts = [[cell(value) for value in row] for row in materialised]
    widths = [max([len(header), *(len(row[index]) for row in texts)]) for index, header in enumerate(headers)]
    numeric = [any(_is_number(row[index]) for row in materialised)
               and all(_is_number(row[index]) or row[index] is None for row in materialised)
               for index in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        padded = [value.rjust(width) if right else value.ljust(width)
                  for value, width, right in zip(values, widths, numeric, strict=True)]
        return GAP.join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in texts)])


def render_pairs(pairs: Sequence[tuple[str, object]]) -> str:
    """`key: value` lines with the values aligned."""
    width = max((len(key) for key, _ in pairs), default=0)
    return "\n".join(f"{(key + ':').ljust(width + 1)} {cell(value)}" for key, value in pairs)
