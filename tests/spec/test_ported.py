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
