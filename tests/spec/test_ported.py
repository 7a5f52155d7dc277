"""Workflows ported from pipeline_ex to nestflow's YAML format, run end to end.

Each folder under ``ported/`` holds one workflow (its main file and its sub-pipeline files);
the LLM and tool calls of the originals are the deterministic functions of ``ported/stubs.py``.
Every expected value below is worked out by hand from those functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import nestflow
from nestflow import DiskCache, Pipeline

PORTED = Path(__file__).resolve().parent / "ported"


def executed_and_cached(report: Any, path: str) -> tuple[int, int]:
    """How many executions of the node at ``path`` ran, and how many came from the cache."""
    row = report.stats()[path]
    return int(row["executed"]), int(row["cached"])


# --- blog_post_generator --------------------------------------------------------------------

BLOG = {
    "blog_topic": "Caching",
    "allowed_sources": ["docs", "blog", "forum"],
    "target_audience": "data engineers",
    "writing_style": "casual",
    "code_preferences": {"language": "Python"},
    "target_keywords": ["caching", "python", "latency"],
}


def section(heading: str) -> str:
    return f"## {heading}\nCasual prose, 100 words citing 2 findings."


def test_the_blog_post_generator_researches_outlines_and_writes_every_section() -> None:
    flow = nestflow.load_yaml(PORTED / "blog_post_generator" / "main.yaml")
    out = flow.run(**BLOG)

    # research: research_depth defaults to 2, so two of the three sources are used
    assert out["selected_sources"] == ["docs", "blog"]
    assert out["findings"] == ["What docs says about Caching.", "What blog says about Caching."]
    # outline: intro + one section per finding + takeaways, 400 // 4 words each
    assert out["sections"] == [
        {"id": "s1", "title": "Why Caching for data engineers", "words": 100},
        {"id": "s2", "title": "What docs says about Caching.", "words": 100},
        {"id": "s3", "title": "What blog says about Caching.", "words": 100},
        {"id": "s4", "title": "Takeaways", "words": 100},
    ]
    assert out["create_outline"]["brief"] == "Caching for data engineers"
    texts = [
        section("s1. Why Caching for data engineers"),
        section("s2. What docs says about Caching."),
        section("s3. What blog says about Caching."),
        section("s4. Takeaways"),
    ]
    assert out["section_text"] == texts
    examples = [f"{text}\n[example: python on Caching]" for text in texts]
    assert out["with_examples"] == examples
    assert out["article"] == "\n\n".join(examples)
    # "caching": 3 headings + 4 examples; "python": 4 examples
    assert out["keyword_hits"] == {"caching": 7, "python": 4, "latency": 0}
    assert out["final_review"] == {
        "title": "CACHING: a guide for data engineers (4 sections)",
        "lines": 15,  # 4 sections of 3 lines, 3 blank lines between them
        "missing_keywords": ["latency"],
    }


def test_the_blog_post_generator_is_cached_per_section(tmp_path: Path) -> None:
    flow = Pipeline.from_yaml(PORTED / "blog_post_generator" / "main.yaml")
    flow = flow.with_cache(DiskCache(tmp_path / "cache"))
    first = flow.run(**BLOG)
    assert first.report.cache_hits == 0
    again = flow.run(**BLOG)
    assert again.report.cache_misses == 0
    assert dict(again) == dict(first)

    # Another audience changes the first section's title only.
    other = flow.run(**{**BLOG, "target_audience": "analysts"})
    assert other["section_text"][0] == section("s1. Why Caching for analysts")
    assert other["section_text"][1:] == first["section_text"][1:]
    assert executed_and_cached(
        other.report, "blog_post_generator > research_topic > findings > findings"
    ) == (0, 2)
    heading = "blog_post_generator > write_sections > write_sections > heading"
    assert executed_and_cached(other.report, heading) == (1, 3)
    examples = "blog_post_generator > add_examples > with_examples > with_examples"
    assert executed_and_cached(other.report, examples) == (1, 3)


# --- codebase_analyzer ----------------------------------------------------------------------

REPO = {
    "app/api.py": "import os\nfrom app import db\n\n\ndef handler(q):\n    return eval(q)\n",
    "app/db.py": "import pickle\npassword = 'hunter2'\nROWS = [" + "0, " * 30 + "]\n",
    "lib/util.py": "import hashlib\n\ndigest = hashlib.md5(b'x').hexdigest()\n",
    "scripts/migrate.py": "import telnetlib\n",
    "tests/test_api.py": "from app.api import handler\nassert handler('1') == eval('1')\n",
    "README.md": "Never call eval( on user input.\n",
}

AUDIT = {
    "repo": REPO,
    "exclude_patterns": ["tests/*"],
    "security_config": {
        "patterns": {"eval(": "critical", "password =": "critical", "md5": "warning"}
    },
    "quality_config": {"max_line_length": 79},
    "architecture_patterns": {"layers": ["app", "lib"]},
}

EVAL = {"file": "app/api.py", "line": 6, "pattern": "eval(", "severity": "critical"}
PASSWORD = {"file": "app/db.py", "line": 2, "pattern": "password =", "severity": "critical"}
MD5 = {"file": "lib/util.py", "line": 3, "pattern": "md5", "severity": "warning"}


def test_the_codebase_analyzer_runs_four_analyses_and_looks_closer_at_critical_issues() -> None:
    out = nestflow.load_yaml(PORTED / "codebase_analyzer" / "main.yaml").run(**AUDIT)

    # scan: *.py files outside tests/
    assert out["files"] == ["app/api.py", "app/db.py", "lib/util.py", "scripts/migrate.py"]
    assert out["tree"] == {
        "app": ["api.py", "db.py"],
        "lib": ["util.py"],
        "scripts": ["migrate.py"],
    }
    assert out["stats"] == {"files": 4, "lines": 6 + 3 + 3 + 1}
    # the four analyses
    assert out["findings_per_file"] == [[EVAL], [PASSWORD], [MD5], []]
    assert out["critical_issues"] == [EVAL, PASSWORD]
    assert out["long_lines"] == {
        "app/api.py": 0,
        "app/db.py": 1,
        "lib/util.py": 0,
        "scripts/migrate.py": 0,
    }
    assert out["quality_score"] == 0.75
    # imports come from the whole repository, tests included
    assert out["imports"] == ["app", "hashlib", "os", "pickle", "telnetlib"]
    assert out["vulnerable_imports"] == ["pickle", "telnetlib"]
    assert out["layering"] == {"layers": ["app", "lib"], "unknown": ["scripts"]}
    # one deep dive per critical issue: a sub-pipeline with two outputs gives a list of each
    assert out["explanation"] == [
        "CRITICAL: `eval(` in app/api.py line 6",
        "CRITICAL: `password =` in app/db.py line 2",
    ]
    assert out["fix"] == ["parse with ast.literal_eval", "read it from the environment"]
    assert out["summary"] == {
        "files": 4,
        "critical": 2,
        "quality": 0.75,
        "vulnerable": ["pickle", "telnetlib"],
        "unknown_folders": ["scripts"],
        "fixes": ["parse with ast.literal_eval", "read it from the environment"],
    }
    assert out["headline"] == (
        "4 files, 2 critical, quality 75%: CRITICAL: `eval(` in app/api.py line 6; "
        "CRITICAL: `password =` in app/db.py line 2"
    )


def test_the_codebase_analyzer_bounds_the_deep_dives() -> None:
    out = nestflow.load_yaml(PORTED / "codebase_analyzer" / "main.yaml").run(
        **AUDIT, max_deep_dives=1
    )
    assert out["critical_issues"] == [EVAL, PASSWORD]
    assert out["fix"] == ["parse with ast.literal_eval"]
    assert (
        out["headline"]
        == "4 files, 2 critical, quality 75%: CRITICAL: `eval(` in app/api.py line 6"
    )


def test_the_codebase_analyzer_is_cached_per_file(tmp_path: Path) -> None:
    flow = nestflow.load_yaml(PORTED / "codebase_analyzer" / "main.yaml")
    flow = flow.with_cache(DiskCache(tmp_path / "cache"))
    first = flow.run(**AUDIT)
    again = flow.run(**AUDIT)
    assert again.report.cache_misses == 0
    assert dict(again) == dict(first)

    changed = {
        **REPO,
        "lib/util.py": "import hashlib\n\ndigest = hashlib.sha256(b'x').hexdigest()\n",
    }
    other = flow.run(**{**AUDIT, "repo": changed})
    assert other["findings_per_file"] == [[EVAL], [PASSWORD], [], []]
    scan = " > ".join(
        ["codebase_analyzer", "parallel_analysis", "security_analysis", *["findings_per_file"] * 2]
    )
    assert executed_and_cached(other.report, scan) == (1, 3)
    # the critical issues did not change: the deep dives come from the cache
    assert executed_and_cached(
        other.report, "codebase_analyzer > deep_dive_issues > deep_dive_issues > fix"
    ) == (0, 2)


# --- microservices_generator ----------------------------------------------------------------

SYSTEM = {
    "business_requirements": [
        "Customers list their Orders",
        "Nightly Invoice export",
        "Orders can be cancelled",
        "Customers update their profile",
    ],
    "domain_model": {"entities": ["order", "invoice", "customer", "shipment"]},
    "technical_constraints": {"max_services": 5},
    "technology_choices": {
        "api": {"language": "python", "framework": "fastapi"},
        "worker": {"language": "go", "framework": "temporal"},
    },
    "security_requirements": {"auth": "oauth2"},
    "scaling_requirements": {"order-service": 3},
    "alerting_config": ["latency", "errors"],
}


def test_the_microservices_generator_designs_and_generates_every_service() -> None:
    out = nestflow.load_yaml(PORTED / "microservices_generator" / "main.yaml").run(**SYSTEM)

    assert out["contexts"] == {
        "order": ["Customers list their Orders", "Orders can be cancelled"],
        "invoice": ["Nightly Invoice export"],
        "customer": ["Customers list their Orders", "Customers update their profile"],
        "shipment": [],
    }
    assert out["services"] == [
        {"name": "order-service", "entity": "order", "type": "api"},
        {"name": "invoice-service", "entity": "invoice", "type": "worker"},
        {"name": "customer-service", "entity": "customer", "type": "api"},
    ]
    assert out["contracts"] == {
        "order-service": "order.v1",
        "invoice-service": "invoice.v1",
        "customer-service": "customer.v1",
    }
    assert out["routing"] == {"/orders": "order-service", "/customers": "customer-service"}
    # each service gets the stack of its type
    assert out["service"] == [
        {"name": "order-service", "language": "python", "code": "fastapi api serving order.v1"},
        {"name": "invoice-service", "language": "go", "code": "temporal worker serving invoice.v1"},
        {
            "name": "customer-service",
            "language": "python",
            "code": "fastapi api serving customer.v1",
        },
    ]
    assert out["gateway"] == {
        "auth": "OAUTH2",
        "routes": ["/customers -> customer-service", "/orders -> order-service"],
    }
    # no scaling policy: one replica (`| default(1)`)
    assert out["manifests"] == [
        "kubernetes/order-service: 3 x python",
        "kubernetes/invoice-service: 1 x go",
        "kubernetes/customer-service: 1 x python",
    ]
    # every service with every rule (mode: product), services first
    assert out["alerts"] == [
        "order-service:latency",
        "order-service:errors",
        "invoice-service:latency",
        "invoice-service:errors",
        "customer-service:latency",
        "customer-service:errors",
    ]


def test_the_microservices_generator_respects_the_service_limit_and_platform() -> None:
    flow = nestflow.load_yaml(PORTED / "microservices_generator" / "main.yaml")
    out = flow.run(
        **{
            **SYSTEM,
            "technical_constraints": {"max_services": 2},
            "orchestration_platform": "nomad",
        }
    )
    assert [service["name"] for service in out["service"]] == ["order-service", "invoice-service"]
    assert out["gateway"]["routes"] == ["/orders -> order-service"]
    assert out["manifests"] == ["nomad/order-service: 3 x python", "nomad/invoice-service: 1 x go"]


def test_the_microservices_generator_is_cached_per_alert(tmp_path: Path) -> None:
    flow = nestflow.load_yaml(PORTED / "microservices_generator" / "main.yaml")
    flow = flow.with_cache(DiskCache(tmp_path / "cache"))
    first = flow.run(**SYSTEM)
    again = flow.run(**SYSTEM)
    assert again.report.cache_misses == 0
    assert dict(again) == dict(first)

    other = flow.run(**{**SYSTEM, "alerting_config": ["latency", "errors", "saturation"]})
    assert other["alerts"][-1] == "customer-service:saturation"
    alerts = "microservices_generator > generate_monitoring > alerts > alerts"
    assert executed_and_cached(other.report, alerts) == (3, 6)
    service = "microservices_generator > generate_services > generate_services > service"
    assert executed_and_cached(other.report, service) == (0, 3)


# --- data_transform_example -----------------------------------------------------------------

ORDERS = [
    {"id": "o1", "user_id": "u1", "total": 250.0, "status": "completed"},
    {"id": "o2", "user_id": "u2", "total": 80.0, "status": "completed"},
    {"id": "o3", "user_id": "u1", "total": 120.0, "status": "pending"},
    {"id": "o4", "user_id": "u3", "total": 410.0, "status": "completed"},
    {"id": "o5", "user_id": "u2", "total": 150.0, "status": "completed"},
    {"id": "o6", "user_id": "u1", "total": 101.0, "status": "completed"},
    {"id": "o7", "user_id": "u3", "total": 99.0, "status": "cancelled"},
]
USERS = [
    {"id": "u1", "name": "Ada", "tier": "gold"},
    {"id": "u2", "name": "Ben", "tier": "silver"},
    {"id": "u3", "name": "Cy", "tier": "gold"},
]
PRODUCTS = [
    {"id": "p1", "name": "Laptop", "category": "electronics", "rating": 4.6},
    {"id": "p2", "name": "Novel", "category": "books", "rating": 4.1},
    {"id": "p3", "name": "Socks", "category": "clothing", "rating": 3.9},
    {"id": "p4", "name": "Lamp", "category": "home", "rating": 4.8},
]
SHOP = {"orders": ORDERS, "users": USERS, "products": PRODUCTS}


def test_the_data_transform_example_filters_joins_groups_and_reports() -> None:
    out = nestflow.load_yaml(PORTED / "data_transform" / "main.yaml").run(**SHOP)

    o1, _, _, o4, o5, o6, _ = ORDERS
    # completed and over 100, largest first
    assert out["filter_high_value_orders"] == [o4, o1, o5, o6]
    # the join keeps the order's own id over the user's
    ada, ben, cy = ({"name": u["name"], "tier": u["tier"]} for u in USERS)
    enriched = [{**cy, **o4}, {**ada, **o1}, {**ben, **o5}, {**ada, **o6}]
    assert out["enrich_orders_with_users"] == enriched
    assert out["group_by_user_tier"] == {
        "gold": [enriched[0], enriched[1], enriched[3]],
        "silver": [enriched[2]],
    }
    assert out["calculate_tier_stats"] == pytest.approx((410 + 250 + 101) / 3)
    # rated over 4.0, categories renamed (home has no mapping), best first
    laptop, novel, _, lamp = PRODUCTS
    assert out["categorize_products"] == [
        lamp,
        {**laptop, "category": "tech"},
        {**novel, "category": "media"},
    ]
    assert out["generate_report"] == {
        "heading": "Business report: 4 high-value orders, 3 premium products",
        "top_order": "o4",
        "orders_per_tier": {"gold": 3, "silver": 1},
        "gold_average": 253.67,
        "premium": ["Lamp (home)", "Laptop (tech)", "Novel (media)"],
    }


def test_the_data_transform_example_takes_its_thresholds_as_inputs(tmp_path: Path) -> None:
    flow = nestflow.load_yaml(PORTED / "data_transform" / "main.yaml")
    flow = flow.with_cache(DiskCache(tmp_path / "cache"))
    first = flow.run(**SHOP)
    assert flow.run(**SHOP).report.cache_misses == 0

    stricter = flow.run(**SHOP, min_total=200, min_rating=4.5)
    assert [order["id"] for order in stricter["filter_high_value_orders"]] == ["o4", "o1"]
    assert stricter["calculate_tier_stats"] == 330.0
    assert stricter["generate_report"]["orders_per_tier"] == {"gold": 2}
    assert stricter["generate_report"]["premium"] == ["Lamp (home)", "Laptop (tech)"]
    assert stricter["generate_sample_data"] == first["generate_sample_data"]
    assert executed_and_cached(
        stricter.report, "data_transformation_example > generate_sample_data"
    ) == (0, 1)


# --- nested_processor -----------------------------------------------------------------------


def test_the_nested_processor_receives_the_parents_values(tmp_path: Path) -> None:
    flow = nestflow.load_yaml(PORTED / "nested_processor" / "main.yaml")
    out = flow.run(name="test_item", count=42)
    assert out["prepare_data"] == {"name": "test_item", "count": 42}
    assert out["process_input"] == "Processing test_item with count 42"
    assert out["multiply_count"] == 84  # a whole template keeps the int
    assert out["final_count"] == 84
    assert out["analysis"] == {
        "summary": "Processed test_item successfully",
        "details": "Final count: 84",
        "metrics": {"accuracy": 0.95, "precision": 0.88},
    }
    assert out["verify"] == "Processed test_item successfully (84 = 84)"

    cached = flow.with_cache(DiskCache(tmp_path / "cache"))
    cached.run(name="widget", count=5)
    again = cached.run(name="widget", count=5)
    assert again.report.cache_misses == 0
    assert again["verify"] == "Processed widget successfully (10 = 10)"


# --- etl_pipeline ---------------------------------------------------------------------------


def transaction(number: int, date: str, timestamp: str, value: str | None, account: str) -> Any:
    return {
        "id": f"t{number}",
        "date": date,
        "timestamp": timestamp,
        "value": value,
        "account": account,
    }


T1 = transaction(1, "2024-02-28", "2024-02-28T23:10:00+01:00", "12.5", "acme")
T2 = transaction(2, "2024-03-01", "2024-03-01T00:30:00+02:00", "40", "acme")
T3 = transaction(3, "2024-03-02", "2024-03-02T12:00:00-05:00", "7.25", "globex")
T4 = transaction(4, "2024-03-03", "2024-03-03T08:15:00+00:00", "100", "initech")
SALES = {"transactions": [T1, T2, T3, T4]}
ETL_SKIP = "skipped: its condition `{{steps.validate_extracted.result.valid == true}}` is false"
# what nothing may run inside when the condition is false: the steps and their workflows
INNER = ("transform_data", "data_transformer", "load_data", "data_loader")


def test_the_etl_pipeline_transforms_and_loads_a_valid_extract() -> None:
    out = nestflow.load_yaml(PORTED / "etl_pipeline" / "main.yaml").run(
        start_date="2024-03-01", database=SALES
    )

    # from 2024-03-01 on: t2, t3, t4, their values as floats
    typed = [{**T2, "value": 40.0}, {**T3, "value": 7.25}, {**T4, "value": 100.0}]
    assert out["extracted_data"] == typed
    assert out["extract_count"] == 3
    assert out["validate_extracted"] == {"valid": True, "issues": []}  # 3 >= min_records 3
    # the condition holds: timestamps in UTC (2024 is a leap year), regions from the lookup
    assert out["transformed_data"] == [
        {**typed[0], "timestamp": "2024-02-29T22:30:00+00:00", "region": "EMEA"},
        {**typed[1], "timestamp": "2024-03-02T17:00:00+00:00", "region": "AMER"},
        {**typed[2], "timestamp": "2024-03-03T08:15:00+00:00", "region": None},
    ]
    # 40 + 7.25 + 100; 147.25 / 3 = 49.083; two of the three rows have a region
    assert out["metrics"] == {"sum": 147.25, "avg": 49.08, "max": 100.0, "quality_score": 0.67}
    assert out["quality_score"] == 0.67
    assert out["loaded"] == {
        "table": "analytics.transactions",
        "rows": 3,
        "ids": ["t2", "t3", "t4"],
        "quality_score": 0.67,
    }
    assert out.report.status == "ok"
    assert not [r for r in out.report.records if r.status == "skipped"]


def test_the_etl_pipeline_skips_the_transform_and_the_load_of_an_invalid_extract() -> None:
    flow = nestflow.load_yaml(PORTED / "etl_pipeline" / "main.yaml")

    late = flow.run(start_date="2024-03-02", database=SALES)
    assert [row["id"] for row in late["extracted_data"]] == ["t3", "t4"]
    assert late["extract_count"] == 2
    assert late["validate_extracted"] == {"valid": False, "issues": ["2 records, fewer than 3"]}
    # transform_data is skipped, and load_data with it: it reads transform_data's outputs
    for name in ("transformed_data", "metrics", "quality_score", "loaded"):
        assert late[name] is None
    assert late.report.status == "ok"  # a skipped step is not an error
    records = late.report.records
    assert ETL_SKIP in [r.error for r in records if r.status == "skipped"]
    assert not [r for r in records if any(f"{name} >" in r.path for name in INNER)]

    # enough records, but one without a value
    gap = flow.run(
        start_date="2024-03-01", database={"transactions": [T1, T2, {**T3, "value": None}, T4]}
    )
    assert gap["extract_count"] == 3
    assert gap["validate_extracted"] == {"valid": False, "issues": ["t3: no value"]}
    assert gap["loaded"] is None


def test_the_etl_pipeline_is_cached_per_row(tmp_path: Path) -> None:
    flow = nestflow.load_yaml(PORTED / "etl_pipeline" / "main.yaml")
    flow = flow.with_cache(DiskCache(tmp_path / "cache"))
    for start_date in ("2024-03-01", "2024-03-02"):  # the condition true, then false
        first = flow.run(start_date=start_date, database=SALES)
        again = flow.run(start_date=start_date, database=SALES)
        assert again.report.cache_misses == 0
        assert dict(again) == dict(first)

    # A new row: only it is typed, normalized and enriched; the others come from the cache.
    t5 = transaction(5, "2024-03-04", "2024-03-04T01:00:00+09:00", "3", "globex")
    more = flow.run(start_date="2024-03-01", database={"transactions": [T1, T2, T3, T4, t5]})
    assert more["transformed_data"][-1] == {
        **t5,
        "value": 3.0,
        "timestamp": "2024-03-03T16:00:00+00:00",
        "region": "AMER",
    }
    assert more["metrics"] == {"sum": 150.25, "avg": 37.56, "max": 100.0, "quality_score": 0.75}
    for path in (
        "etl_pipeline > extract_data > raw_data > raw_data",
        "etl_pipeline > transform_data > normalized > normalized",
        "etl_pipeline > transform_data > transformed_data > transformed_data",
    ):
        assert executed_and_cached(more.report, path) == (1, 3)


# --- data_quality_pipeline ------------------------------------------------------------------

C1 = {"id": "c1", "email": "ada@example.com", "country": "DE", "age": 36}
C2 = {"id": "c2", "email": "Ben@Example.com", "country": "fr", "age": 41}
C3 = {"id": "c3", "email": None, "country": "US", "age": 29}
C4 = {"id": "c4", "email": "cy@example.com", "country": "XX", "age": 52}
C5 = {"id": "c5", "email": "dee@example.com", "country": "FR", "age": 23}
CUSTOMERS = {
    "data": [C1, C2, C3, C4, C5],
    "consistency_rules": {
        "email": {"case": "lower"},
        "country": {"case": "upper", "allowed": ["DE", "FR", "US"]},
    },
    "reference": {"c1": {"age": 37}},
}


def issue(check: str, record: dict[str, Any], field: str, fix: Any) -> dict[str, Any]:
    return {"check": check, "id": record["id"], "field": field, "value": record[field], "fix": fix}


NO_EMAIL = issue("completeness", C3, "email", None)
BEN_EMAIL = issue("consistency", C2, "email", "ben@example.com")
BEN_COUNTRY = issue("consistency", C2, "country", "FR")
UNKNOWN_COUNTRY = issue("consistency", C4, "country", None)
ADA_AGE = issue("accuracy", C1, "age", 37)
DQ_SKIP = (
    "skipped: its condition `{{steps.generate_quality_report.result.auto_fixable_count > 0}}` "
    "is false"
)


def test_the_data_quality_pipeline_remediates_the_issues_it_can_fix() -> None:
    out = nestflow.load_yaml(PORTED / "data_quality" / "main.yaml").run(**CUSTOMERS)

    assert out["row_count"] == 5
    assert out["null_counts"] == {"age": 0, "country": 0, "email": 1, "id": 0}
    assert out["completeness_issues"] == [NO_EMAIL]
    # Ben's email and country are in the wrong case; XX is not an allowed country at all
    assert out["consistency_issues"] == [BEN_EMAIL, BEN_COUNTRY, UNKNOWN_COUNTRY]
    assert out["accuracy_issues"] == [ADA_AGE]
    assert out["issues"] == [NO_EMAIL, BEN_EMAIL, BEN_COUNTRY, UNKNOWN_COUNTRY, ADA_AGE]
    assert out["auto_fixable_count"] == 3
    assert out["quality_score"] == 0.2  # only c5 has no issue
    # the condition holds: the remediation runs
    assert out["fixes"] == [BEN_EMAIL, BEN_COUNTRY, ADA_AGE]
    assert out["fixed_data"] == [
        {**C1, "age": 37},
        {**C2, "email": "ben@example.com", "country": "FR"},
        C3,
        C4,
        C5,
    ]
    assert out["fix_log"] == [
        "[all] c2.email: Ben@Example.com -> ben@example.com",
        "[all] c2.country: fr -> FR",
        "[all] c1.age: 36 -> 37",
    ]
    assert out.report.status == "ok"

    formats = nestflow.load_yaml(PORTED / "data_quality" / "main.yaml").run(
        **CUSTOMERS, remediation_strategy="format_only"
    )
    assert formats["fixes"] == [BEN_EMAIL, BEN_COUNTRY]
    assert formats["fixed_data"][:2] == [C1, {**C2, "email": "ben@example.com", "country": "FR"}]
    assert formats["fix_log"] == [
        "[format_only] c2.email: Ben@Example.com -> ben@example.com",
        "[format_only] c2.country: fr -> FR",
    ]


def test_the_data_quality_pipeline_skips_remediation_when_nothing_can_be_fixed() -> None:
    out = nestflow.load_yaml(PORTED / "data_quality" / "main.yaml").run(
        **{**CUSTOMERS, "data": [C3, C4, C5], "reference": {}}
    )
    assert out["issues"] == [NO_EMAIL, UNKNOWN_COUNTRY]
    assert out["auto_fixable_count"] == 0  # issues, but none fixable
    assert out["quality_score"] == 0.33  # 1 of 3 records
    assert (out["fixes"], out["fixed_data"], out["fix_log"]) == (None, None, None)
    assert out.report.status == "ok"
    records = out.report.records
    assert DQ_SKIP in [r.error for r in records if r.status == "skipped"]
    assert not [r for r in records if "auto_fix >" in r.path or "remediate_issues >" in r.path]


def test_the_data_quality_pipeline_is_cached_per_check(tmp_path: Path) -> None:
    flow = nestflow.load_yaml(PORTED / "data_quality" / "main.yaml")
    flow = flow.with_cache(DiskCache(tmp_path / "cache"))
    clean = {**CUSTOMERS, "data": [C3, C4, C5], "reference": {}}
    for inputs in (CUSTOMERS, clean):  # the condition true, then false
        first = flow.run(**inputs)
        again = flow.run(**inputs)
        assert again.report.cache_misses == 0
        assert dict(again) == dict(first)

    # Other reference data: only the accuracy check and what follows it run again.
    other = flow.run(**{**CUSTOMERS, "reference": {"c1": {"age": 36}}})
    assert other["accuracy_issues"] == []
    assert other["auto_fixable_count"] == 2
    assert other["fix_log"] == [
        "[all] c2.email: Ben@Example.com -> ben@example.com",
        "[all] c2.country: fr -> FR",
    ]
    for check, expected in (
        ("check_completeness", (0, 1)),
        ("check_consistency", (0, 1)),
        ("check_accuracy", (1, 0)),
    ):
        assert executed_and_cached(other.report, f"data_quality_pipeline > {check} > issues") == (
            expected
        )
