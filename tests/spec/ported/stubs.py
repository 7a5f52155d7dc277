"""Deterministic stand-ins for the LLM and tool calls of the ported pipeline_ex workflows.

Each function is small and pure so that a test can work out its result by hand. The YAML
files under this folder name them as ``ported.stubs:<name>``.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

# --- generic steps --------------------------------------------------------------------------


def echo(value: Any) -> Any:
    """The ``test_echo`` step of pipeline_ex: returns its (already templated) value."""
    return value


def sentence(text: str) -> str:
    """Single spaces, a capital first letter and a final full stop."""
    words = " ".join(text.split())
    if not words:
        return ""
    words = words[0].upper() + words[1:]
    return words if words.endswith(".") else words + "."


def take(items: list[Any], n: int) -> list[Any]:
    """The first ``n`` items."""
    return list(items[:n])


def flatten(lists: list[list[Any]]) -> list[Any]:
    return [item for inner in lists for item in inner]


# --- blog_post_generator --------------------------------------------------------------------


def outline(brief: str, findings: list[str], target_length: int) -> dict[str, Any]:
    """An outline: an introduction, one section per finding, then takeaways.

    Every section gets an equal share of ``target_length`` words (rounded down).
    """
    titles = [f"Why {brief}", *findings, "Takeaways"]
    words = target_length // len(titles)
    sections = [
        {"id": f"s{number}", "title": title, "words": words}
        for number, title in enumerate(titles, start=1)
    ]
    return {"brief": brief, "sections": sections}


def with_example(text: str, snippet: str) -> str:
    """A section followed by a code example placeholder."""
    return f"{text}\n[example: {snippet}]"


def join_sections(sections: list[str], separator: str = "\n\n") -> str:
    return separator.join(sections)


def keyword_hits(text: str, keywords: list[str]) -> dict[str, int]:
    """How often each keyword occurs in ``text``, ignoring case."""
    lowered = text.lower()
    return {keyword: lowered.count(keyword.lower()) for keyword in keywords}


def review(article: str, hits: dict[str, int], title: str) -> dict[str, Any]:
    """A final review: the title, the number of lines and the keywords never used."""
    return {
        "title": title,
        "lines": len(article.splitlines()),
        "missing_keywords": sorted(keyword for keyword, n in hits.items() if n == 0),
    }


# --- codebase_analyzer ----------------------------------------------------------------------


def scan_codebase(
    repo: dict[str, str], include_patterns: list[str], exclude_patterns: list[str]
) -> tuple[list[str], dict[str, list[str]], dict[str, int]]:
    """The files kept by the patterns, a folder -> file names tree and line statistics."""
    files = sorted(
        path
        for path in repo
        if any(fnmatch.fnmatch(path, p) for p in include_patterns)
        and not any(fnmatch.fnmatch(path, p) for p in exclude_patterns)
    )
    tree: dict[str, list[str]] = {}
    for path in files:
        tree.setdefault(posixpath.dirname(path) or ".", []).append(posixpath.basename(path))
    lines = sum(len(repo[path].splitlines()) for path in files)
    return files, tree, {"files": len(files), "lines": lines}


def sources_of(files: list[str], repo: dict[str, str]) -> list[str]:
    """The source text of each file, in the order of ``files``."""
    return [repo[path] for path in files]


def find_risky_calls(path: str, source: str, patterns: dict[str, str]) -> list[dict[str, Any]]:
    """One issue per line and pattern found on it, with the pattern's severity."""
    issues = []
    for number, line in enumerate(source.splitlines(), start=1):
        for pattern, severity in patterns.items():
            if pattern in line:
                issues.append(
                    {"file": path, "line": number, "pattern": pattern, "severity": severity}
                )
    return issues


def with_severity(issues: list[dict[str, Any]], severity: str) -> list[dict[str, Any]]:
    return [issue for issue in issues if issue["severity"] == severity]


def long_lines(files: list[str], repo: dict[str, str], max_line_length: int) -> dict[str, int]:
    """For each file, how many of its lines are longer than ``max_line_length``."""
    return {
        path: sum(len(line) > max_line_length for line in repo[path].splitlines()) for path in files
    }


def quality_score(counts: dict[str, int]) -> float:
    """The share of files without a long line."""
    return sum(n == 0 for n in counts.values()) / len(counts) if counts else 1.0


_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.MULTILINE)


def collect_imports(repo: dict[str, str]) -> list[str]:
    """The top-level modules imported anywhere in the repository, sorted."""
    found = set()
    for source in repo.values():
        for match in _IMPORT.finditer(source):
            found.add((match.group(1) or match.group(2)).split(".")[0])
    return sorted(found)


def flag_vulnerable(modules: list[str], known_bad: list[str], enabled: bool) -> list[str]:
    return [module for module in modules if module in known_bad] if enabled else []


def layer_check(file_tree: dict[str, list[str]], layers: list[str]) -> dict[str, Any]:
    """Which folders are known layers and which are not."""
    return {
        "layers": [folder for folder in file_tree if folder in layers],
        "unknown": [folder for folder in file_tree if folder not in layers],
    }


FIXES = {"eval(": "parse with ast.literal_eval", "password =": "read it from the environment"}


def suggest_fix(pattern: str) -> str:
    return FIXES.get(pattern, "review by hand")


def audit_summary(
    stats: dict[str, int],
    critical: list[dict[str, Any]],
    score: float,
    vulnerable: list[str],
    unknown_folders: list[str],
    fixes: list[str],
) -> dict[str, Any]:
    """The report's figures, gathered in one mapping."""
    return {
        "files": stats["files"],
        "critical": len(critical),
        "quality": score,
        "vulnerable": vulnerable,
        "unknown_folders": unknown_folders,
        "fixes": fixes,
    }


# --- microservices_generator ----------------------------------------------------------------


def bounded_contexts(requirements: list[str], entities: list[str]) -> dict[str, list[str]]:
    """For each entity, the requirements that mention it (case-insensitive)."""
    return {
        entity: [text for text in requirements if entity.lower() in text.lower()]
        for entity in entities
    }


def design_services(contexts: dict[str, list[str]], max_services: int) -> list[dict[str, Any]]:
    """One service per entity with requirements (at most ``max_services``).

    A service is a ``worker`` when one of its requirements mentions ``nightly``, else ``api``.
    """
    services = []
    for entity, texts in contexts.items():
        if not texts:
            continue
        kind = "worker" if any("nightly" in text.lower() for text in texts) else "api"
        services.append({"name": f"{entity}-service", "entity": entity, "type": kind})
    return services[:max_services]


def contracts_for(services: list[dict[str, Any]]) -> dict[str, str]:
    return {service["name"]: f"{service['entity']}.v1" for service in services}


def routes_for(services: list[dict[str, Any]]) -> dict[str, str]:
    """A public path for every ``api`` service."""
    return {f"/{s['entity']}s": s["name"] for s in services if s["type"] == "api"}


def package_service(spec: dict[str, Any], code: str, stack: dict[str, str]) -> dict[str, Any]:
    return {"name": spec["name"], "language": stack["language"], "code": code}


def gateway_config(routes: dict[str, str], auth: str) -> dict[str, Any]:
    return {"auth": auth, "routes": [f"{path} -> {name}" for path, name in sorted(routes.items())]}


def deployment(service: dict[str, Any], platform: str, replicas: int) -> str:
    return f"{platform}/{service['name']}: {replicas} x {service['language']}"


def alert_name(service: dict[str, Any], rule: str) -> str:
    return f"{service['name']}:{rule}"


# --- data_transform_example -----------------------------------------------------------------

_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _apply(data: Any, op: dict[str, Any]) -> Any:
    kind = op["operation"]
    if kind == "filter":
        test = _COMPARE[op.get("op", "==")]
        return [row for row in data if test(row[op["field"]], op["value"])]
    if kind == "sort":
        return sorted(data, key=lambda row: row[op["field"]], reverse=op.get("order") == "desc")
    if kind == "join":
        right = {row[op["join_key"]]: row for row in op["right"]}
        return [{**right[row[op["left_field"]]], **row} for row in data]
    if kind == "group_by":
        groups: dict[Any, list[Any]] = {}
        for row in data:
            groups.setdefault(row[op["field"]], []).append(row)
        return groups
    if kind == "aggregate":
        values = [row[op["field"]] for row in data]
        return {"average": sum(values) / len(values), "sum": sum(values)}[op["function"]]
    if kind == "map":
        field, mapping = op["field"], op["mapping"]
        return [{**row, field: mapping.get(row[field], row[field])} for row in data]
    raise ValueError(f"unknown operation {kind!r}")


def data_transform(data: Any, operations: list[dict[str, Any]]) -> Any:
    """pipeline_ex's ``data_transform`` step: apply the operations in order."""
    for op in operations:
        data = _apply(data, op)
    return data


def sample_shop(
    orders: list[dict[str, Any]], users: list[dict[str, Any]], products: list[dict[str, Any]]
) -> dict[str, Any]:
    """Stands for the model that generates the sample data: it returns it as one document."""
    return {"orders": orders, "users": users, "products": products}


def bi_report(
    heading: str,
    high_value: list[dict[str, Any]],
    by_tier: dict[str, list[Any]],
    gold_average: float,
    premium: list[dict[str, Any]],
) -> dict[str, Any]:
    """Stands for the model that writes the report: the figures it would discuss."""
    return {
        "heading": heading,
        "top_order": high_value[0]["id"] if high_value else None,
        "orders_per_tier": {tier: len(rows) for tier, rows in sorted(by_tier.items())},
        "gold_average": round(gold_average, 2),
        "premium": [f"{p['name']} ({p['category']})" for p in premium],
    }


# --- nested_processor -----------------------------------------------------------------------


def fields(record: dict[str, Any], names: list[str]) -> tuple[Any, ...]:
    """The values of ``names`` in ``record``, in order (for a step with several outputs)."""
    return tuple(record[name] for name in names)


# --- etl_pipeline ---------------------------------------------------------------------------

_QUERY = re.compile(r"SELECT \* FROM (\w+) WHERE (\w+) >= '([^']*)'")


def query_plan(source: dict[str, Any], query: str) -> dict[str, Any]:
    """Stands for the model that plans the extraction: the driver, table and lower bound.

    Only queries of the form ``SELECT * FROM <table> WHERE <column> >= '<value>'`` are read.
    """
    match = _QUERY.fullmatch(query)
    if match is None:
        raise ValueError(f"cannot plan the query {query!r}")
    table, column, since = match.groups()
    return {"driver": source["type"], "table": table, "column": column, "since": since}


def run_query(plan: dict[str, Any], database: dict[str, list[dict[str, Any]]]) -> list[Any]:
    """The rows of the planned table whose column is at least the plan's bound (as text)."""
    return [row for row in database[plan["table"]] if row[plan["column"]] >= plan["since"]]


def typed_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its ``value`` as a float (when it has one)."""
    value = row.get("value")
    return {**row, "value": float(value)} if value is not None else dict(row)


def validate_records(
    count: int, records: list[dict[str, Any]], rules: dict[str, Any]
) -> dict[str, Any]:
    """Stands for the model that validates the extract: ``{"valid": ..., "issues": [...]}``.

    An issue is too few records, or a record without one of the required fields.
    """
    issues = []
    if count < rules["min_records"]:
        issues.append(f"{count} records, fewer than {rules['min_records']}")
    for record in records:
        for field in rules["required_fields"]:
            if record.get(field) is None:
                issues.append(f"{record.get('id', '?')}: no {field}")
    return {"valid": not issues, "issues": issues}


def rule_options(rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The transformation rules by type: ``[{type: t, k: v}]`` -> ``{t: {k: v}}``."""
    return {rule["type"]: {k: v for k, v in rule.items() if k != "type"} for rule in rules}


def normalize_timestamp(row: dict[str, Any], timezone_name: str) -> dict[str, Any]:
    """The row with its ISO timestamp converted to ``timezone_name``."""
    zone: tzinfo = UTC if timezone_name == "UTC" else ZoneInfo(timezone_name)
    moment = datetime.fromisoformat(row["timestamp"]).astimezone(zone)
    return {**row, "timestamp": moment.isoformat()}


def enrich(row: dict[str, Any], lookup: dict[str, Any]) -> dict[str, Any]:
    """The row with the region of its account from the lookup (``None`` when unknown)."""
    return {**row, "region": lookup["regions"].get(row["account"])}


def calculate_metrics(rows: list[dict[str, Any]], aggregations: list[str]) -> dict[str, Any]:
    """The asked aggregations of the values (``avg`` rounded to 2 places), and a quality
    score: the share of rows that were enriched with a region."""
    values = [row["value"] for row in rows]
    compute = {"sum": sum, "avg": lambda v: round(sum(v) / len(v), 2), "max": max, "min": min}
    metrics: dict[str, Any] = {name: compute[name](values) for name in aggregations}
    enriched = sum(row["region"] is not None for row in rows)
    metrics["quality_score"] = round(enriched / len(rows), 2)
    return metrics


def load_rows(rows: list[dict[str, Any]], table: str, quality_score: float) -> dict[str, Any]:
    """Stands for the load into the warehouse: what was written where."""
    return {
        "table": table,
        "rows": len(rows),
        "ids": [row["id"] for row in rows],
        "quality_score": quality_score,
    }


# --- data_quality_pipeline ------------------------------------------------------------------


def null_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """For every field of any record (sorted), how many records lack it or hold ``None``."""
    names = sorted({name for record in records for name in record})
    return {name: sum(record.get(name) is None for record in records) for name in names}


def _issue(check: str, record: dict[str, Any], field: str, fix: Any) -> dict[str, Any]:
    """One quality issue; ``fix`` is the value to write, or ``None`` when it cannot be fixed
    automatically."""
    return {
        "check": check,
        "id": record["id"],
        "field": field,
        "value": record.get(field),
        "fix": fix,
    }


def completeness_issues(
    records: list[dict[str, Any]], profile: dict[str, Any]
) -> list[dict[str, Any]]:
    """One issue per missing value, in the fields the profile found values missing from.
    Nothing says what the value should be, so none can be fixed automatically."""
    fields = [name for name, count in profile["null_counts"].items() if count]
    return [
        _issue("completeness", record, field, None)
        for record in records
        for field in fields
        if record.get(field) is None
    ]


def consistency_issues(
    records: list[dict[str, Any]], rules: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Issues with the rules ``{field: {case: lower|upper, allowed: [...]}}``.

    A value in the wrong case can be fixed (to the right case) if that value is allowed; a
    value that is not allowed in any case cannot.
    """
    issues = []
    for record in records:
        for field, rule in rules.items():
            value = record.get(field)
            if value is None:
                continue
            fixed = {"lower": str.lower, "upper": str.upper}.get(rule.get("case", ""), str)(value)
            if "allowed" in rule and fixed not in rule["allowed"]:
                issues.append(_issue("consistency", record, field, None))
            elif fixed != value:
                issues.append(_issue("consistency", record, field, fixed))
    return issues


def accuracy_issues(
    records: list[dict[str, Any]], reference: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Values that differ from the reference data (``{id: {field: value}}``), fixed to it."""
    return [
        _issue("accuracy", record, field, expected)
        for record in records
        for field, expected in reference.get(record["id"], {}).items()
        if record.get(field) != expected
    ]


def count_fixable(issues: list[dict[str, Any]]) -> int:
    return sum(issue["fix"] is not None for issue in issues)


def clean_share(row_count: int, issues: list[dict[str, Any]]) -> float:
    """The share of records without any issue, rounded to 2 places."""
    flagged = {issue["id"] for issue in issues}
    return round((row_count - len(flagged)) / row_count, 2) if row_count else 1.0


def planned_fixes(issues: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
    """The fixable issues to fix: all of them (``all``), or only the consistency ones
    (``format_only``)."""
    checks = {"all": {"consistency", "accuracy"}, "format_only": {"consistency"}}[strategy]
    return [issue for issue in issues if issue["fix"] is not None and issue["check"] in checks]


def apply_fixes(records: list[dict[str, Any]], fixes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with every fix written in."""
    fixed = [dict(record) for record in records]
    by_id = {record["id"]: record for record in fixed}
    for fix in fixes:
        by_id[fix["id"]][fix["field"]] = fix["fix"]
    return fixed
