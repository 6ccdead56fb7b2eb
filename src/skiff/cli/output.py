"""How a ``skiff`` API command prints its result: az's ``-o`` formats and ``--query``.

People pipe az's output into scripts, so skiff prints what az (through
knack) prints: ``json`` (sorted keys, two-space indent), ``jsonc`` (coloured
on a terminal), ``yaml``, ``tsv`` (a line per item, a nested list as its
length), ``table`` (tabulate's "simple" layout, from a command's own row
transformer or knack's generic one) and ``none``.
``--query`` is JMESPath, applied before the format, with the key order the
query gives. ``skiff container`` and ``skiff network`` both print through
:func:`emit` and take :func:`output_options`.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_FORMATS = ("json", "jsonc", "none", "table", "tsv", "yaml", "yamlc")


def _format_json(result: Any) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2, sort_keys=True,
                      separators=(",", ": ")) + "\n"


_JSON_TOKEN = re.compile(r'("(?:[^"\\]|\\.)*")(\s*:)?|\b(true|false|null)\b|'
                         r"(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)")


def _colored_json(result: Any) -> str:
    def paint(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            color = "\x1b[94m" if m.group(2) else "\x1b[32m"
            return f"{color}{m.group(1)}\x1b[0m{m.group(2) or ''}"
        return f"\x1b[36m{m.group(0)}\x1b[0m"

    return _JSON_TOKEN.sub(paint, _format_json(result))


def _format_yaml(result: Any) -> str:
    import yaml  # type: ignore[import-untyped,unused-ignore]  # -o yaml only: ~15 ms to import

    # A JSON round trip turns the OrderedDicts of a --query into plain data, as knack does.
    text: str = yaml.safe_dump(json.loads(json.dumps(result)), default_flow_style=False,
                               allow_unicode=True)
    return text


def _tsv_cell(value: Any) -> str:
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, dict):
        return ""
    return value if isinstance(value, str) else str(value)


def _format_tsv(result: Any) -> str:
    """knack's TSV: a line per item; an object's values in key order (a query's
    order for ``--query`` objects), a nested list as its length, a nested object empty."""
    lines = []
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, OrderedDict):
            values = list(item.values())
        elif isinstance(item, dict):
            values = [v for _, v in sorted(item.items())]
        elif isinstance(item, list):
            values = item
        elif isinstance(item, bool):
            values = [str(item).lower()]
        else:
            values = [item]
        lines.append("\t".join(_tsv_cell(v) for v in values))
    return "".join(line + "\n" for line in lines)


def _auto_row(item: Any) -> dict[str, Any]:
    """knack's table row for any object: its scalar fields, first letter capitalized."""
    if isinstance(item, dict):
        return {k[:1].upper() + k[1:]: v for k, v in item.items()
                if k not in ("id", "type", "etag") and v is not None
                and not isinstance(v, list | dict | set)}
    if isinstance(item, list):
        return {f"Column{i + 1}": v for i, v in enumerate(item)}
    return {"Result": item}


def _tabulate(rows: list[dict[str, Any]]) -> str:
    """tabulate's "simple" format, as knack prints tables."""
    headers: list[str] = []
    for row in rows:
        headers.extend(k for k in row if k not in headers)
    if not headers:
        return ""
    cells = [["" if row.get(h) is None else str(row.get(h)) for h in headers] for row in rows]
    # tabulate pads a header by two at least.
    widths = [max(len(h) + 2, *(len(line[i]) for line in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "".join(line.rstrip() + "\n" for line in lines)


def emit(result: Any, output: str, query: Any = None, *,
         table: Callable[[Any], list[dict[str, Any]]] | None = None) -> None:
    """Print a command's result as az does: ``--query`` first, then the format
    (a table transformer only applies without a query)."""
    if query is not None:
        import jmespath  # type: ignore[import-untyped,unused-ignore]  # --query only

        result = query.search(result, jmespath.Options(dict_cls=OrderedDict))
    if result is None or output == "none":
        return
    stdout_tty = click.get_text_stream("stdout").isatty()
    if output == "json" or (output == "jsonc" and not stdout_tty):
        text = _format_json(result)
    elif output == "jsonc":
        text = _colored_json(result)
    elif output in ("yaml", "yamlc"):
        text = _format_yaml(result)
    elif output == "tsv":
        text = _format_tsv(result)
    else:
        if table is not None and query is None:
            rows = table(result)
        else:
            rows = [_auto_row(item) for item in (result if isinstance(result, list) else [result])]
        text = _tabulate(rows)
    click.echo(text, nl=False)


def _compile_query(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    import jmespath  # type: ignore[import-untyped,unused-ignore]  # --query only

    try:
        return jmespath.compile(value)
    except jmespath.exceptions.JMESPathError as exc:
        raise click.BadParameter(f"invalid jmespath query: {value!r}: {exc}",
                                 ctx=ctx, param=param) from exc


def output_options(func: F) -> F:
    """az's ``-o/--output`` (default json) and ``--query`` (compiled as it is parsed)."""
    func = click.option("--query", callback=_compile_query, metavar="JMESPATH",
                        help="JMESPath query string. See http://jmespath.org/ for more "
                             "information and examples.")(func)
    return click.option("--output", "-o", type=click.Choice(OUTPUT_FORMATS, case_sensitive=False),
                        default="json", show_default=True, help="Output format.")(func)
