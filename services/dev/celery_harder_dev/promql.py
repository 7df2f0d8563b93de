"""PromQL as the chart ships it: collect the expressions, name the metrics they read.

Pure functions, no Prometheus needed: whether an expression parses is asked of a real
Prometheus (celery_harder_dev.prometheus); which metrics it reads is decided here by a
tokenizer that skips what is not a metric name: label matchers and their values,
strings, numbers and durations, range and subquery brackets, function and aggregation
names, and the keywords (by, without, on, ignoring, group_left, group_right, bool,
offset, and, or, unless, @ start()/end()), with the label lists that follow the
grouping keywords.

`Expression` is what every source yields: the dashboard JSON files (read here), the
rendered PrometheusRule, or any other list of queries a caller builds.
"""

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "bool", "offset", "inf", "nan", "start", "end",
     # aggregation operators are keywords too: `sum by (x) (...)` has no `(` after sum
     "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
     "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)  # fmt: skip
# Followed by a parenthesised list of label names, not of expressions.
LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9.][0-9A-Za-z_.]*(?:[eE][+-]?[0-9]+)?")
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(["'`])(.*?)\1""")


class PromQLSyntaxError(ValueError):
    """The tokenizer met something it cannot read (an unterminated string or bracket)."""


@dataclass(frozen=True)
class Expression:
    """One PromQL expression and where it comes from (for messages)."""

    source: str  # e.g. "dashboard celery-harder-overview.json", "rule celery-harder"
    where: str  # e.g. 'panel "Workers up" (A)', "alert CeleryWorkerDown"
    expr: str

    def __str__(self) -> str:
        return f"{self.source}: {self.where}: {self.expr.strip()}"


def _skip_string(text: str, i: int) -> int:
    quote = text[i]
    j = i + 1
    while j < len(text):
        if quote != "`" and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            return j + 1
        j += 1
    raise PromQLSyntaxError(f"unterminated string at {i}: {text[i : i + 40]!r}")


def _skip_until(text: str, i: int, close: str) -> int:
    """From an opening bracket at i, the index after its `close`, skipping strings."""
    j = i + 1
    while j < len(text):
        ch = text[j]
        if ch in "\"'`":
            j = _skip_string(text, j)
            continue
        if ch == close:
            return j + 1
        j += 1
    raise PromQLSyntaxError(f"unterminated {text[i]!r} at {i}: {text[i : i + 40]!r}")


def _next_significant(text: str, i: int) -> str:
    while i < len(text) and text[i].isspace():
        i += 1
    return text[i] if i < len(text) else ""


def _word(text: str, match: re.Match[str], names: set[str]) -> int:
    """Classify the identifier `match`; add it to `names` if it is a metric; where to go on."""
    word, i = match.group(0), match.end()
    following = _next_significant(text, i)
    if word.lower() in LABEL_LIST_KEYWORDS:
        if following == "(":  # by (a, b): label names
            return _skip_until(text, text.index("(", i), ")")
    elif word.lower() not in KEYWORDS and following != "(":  # not a keyword, not a call
        names.add(word)
    return i


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (`foo`, `foo{...}`, `{__name__="foo"}`)."""
    names: set[str] = set()
    text = expr
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "#":  # a comment runs to the end of the line
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
        elif ch in "\"'`":
            i = _skip_string(text, i)
        elif ch == "{":
            end = _skip_until(text, i, "}")
            names |= {m.group(2) for m in _NAME_MATCHER.finditer(text[i:end])}
            i = end
        elif ch == "[":
            i = _skip_until(text, i, "]")
        elif ch.isdigit() or (ch == "." and text[i + 1 : i + 2].isdigit()):
            match = _NUMBER.match(text, i)
            assert match is not None
            i = match.end()
        elif match := _IDENT.match(text, i):
            i = _word(text, match, names)
        else:
            i += 1  # operators, parentheses, commas, @
    return names


# Grafana's variable forms: $name, ${name}, ${name:format}, [[name]].
_GRAFANA_VAR = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute_variables(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables by `values`; KeyError names a variable with no value.

    `$1`-style references (label_replace's replacement, inside a string) stay as written.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name.isdigit():
            return match.group(0)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _GRAFANA_VAR.sub(replace, expr)


def _panels(container: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, rows' nested panels (and the old `rows[].panels`) included."""
    for panel in container.get("panels", []) or []:
        yield panel
        yield from _panels(panel)
    for row in container.get("rows", []) or []:
        yield from _panels(row)


def dashboard_expressions(dashboard: Mapping[str, Any], source: str) -> list[Expression]:
    """Each panel target's `expr`, as written (variables unsubstituted)."""
    found = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []) or []:
            expr = target.get("expr")
            if isinstance(expr, str) and expr.strip():
                title, ref = panel.get("title", ""), target.get("refId", "?")
                where = f'panel {panel.get("id")} "{title}" ({ref})'
                found.append(Expression(source, where, expr))
    return found


# Grafana's Prometheus variable functions whose first argument is a series selector or
# an expression: label_values(selector, label), query_result(expr).
_VARIABLE_QUERY = re.compile(r"^\s*(label_values|query_result)\((.*)\)\s*$", re.S)


def variable_expressions(dashboard: Mapping[str, Any], source: str) -> list[Expression]:
    """The PromQL inside each query variable (`label_values(<this>, label)`, ...).

    `label_values(label)` (no selector) and `metrics(...)`/`label_names()` read no metric
    and give nothing.
    """
    found = []
    for variable in (dashboard.get("templating") or {}).get("list", []) or []:
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, Mapping) else query
        match = _VARIABLE_QUERY.match(text or "")
        if not match:
            continue
        function, inner = match.groups()
        if function == "label_values":
            head, comma, _label = inner.rpartition(",")
            if not comma:
                continue  # label_values(label): every series, no selector
            inner = head
        found.append(Expression(source, f"variable ${variable.get('name')}", inner.strip()))
    return found


def dashboard_file_expressions(paths: Iterable[Path]) -> list[Expression]:
    """Every panel query of every dashboard JSON file."""
    found: list[Expression] = []
    for path in sorted(paths):
        found += dashboard_expressions(json.loads(path.read_text()), f"dashboard {path.name}")
    return found


def dashboard_file_variable_expressions(paths: Iterable[Path]) -> list[Expression]:
    """The PromQL inside every query variable of every dashboard JSON file."""
    found: list[Expression] = []
    for path in sorted(paths):
        found += variable_expressions(json.loads(path.read_text()), f"dashboard {path.name}")
    return found


def rule_expressions(spec: Mapping[str, Any], source: str = "rules") -> list[Expression]:
    """Each alerting and recording rule of a rule-file document (`groups:`)."""
    found = []
    for group in spec.get("groups", []) or []:
        for rule in group.get("rules", []) or []:
            kind, name = ("alert", rule["alert"]) if "alert" in rule else ("record", rule["record"])
            found.append(Expression(f"{source} {group['name']}", f"{kind} {name}", rule["expr"]))
    return found


def exposition_names(text: str) -> set[str]:
    """Sample names in a Prometheus text exposition, plus the names of its HELP/TYPE lines.

    A labelled metric that has seen no event yet has HELP and TYPE lines and no
    sample: it is served, so it counts. A histogram or summary `x` is listed with its
    `x_bucket`, `x_sum`, `x_count` (and `x_created`) series names; a counter's TYPE
    line may name it with or without `_total`.
    """
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = [*line.split(), ""][:4]
            names.add(name)
            if kind == "counter":
                names |= {name.removesuffix("_total") + "_total", name.removesuffix("_total")}
            elif kind in ("histogram", "summary"):
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line.startswith("#") or not line.strip():
            continue
        elif match := _IDENT.match(line):
            names.add(match.group(0))
    return names
