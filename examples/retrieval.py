"""A small text-retrieval pipeline: test with one passage, scale to a corpus.

A per-passage pipeline (clean -> tokenize -> embed) is written and checked on one
passage, then nested into the retrieval pipeline and mapped over every passage with
``as_node(map_over=...)``. The outer pipeline builds an index and answers a query.

Run it with ``make demo`` (or ``python examples/retrieval.py``).
"""

from __future__ import annotations

import math
import re
import tempfile
from collections import Counter
from pathlib import Path

from nestflow import DiskCache, Pipeline, ProgressCallback, capture, node

DOCUMENTS = {
    "caching": "Content-addressed caching skips work whose code and inputs did not change.",
    "nesting": "A pipeline is a node too: nest it, rename its inputs, map it over items.",
    "backends": "Backends decide how work runs: threads, processes, asyncio or a cluster.",
    "errors": "Errors keep their type and gain notes with the exact nested path.",
}


# --- the per-passage pipeline ----------------------------------------------------------------


@node(output_name="cleaned")
def clean(passage: str) -> str:
    """Lower-case and collapse whitespace."""
    return " ".join(passage.split()).casefold()


STOPWORDS = frozenset(
    "a an and are as do does how is it its of or the their too whose with".split()  # noqa: SIM905
)


@node(output_name="tokens")
def tokenize(cleaned: str) -> list[str]:
    """Words of two letters or more, without stop words."""
    return [w for w in re.findall(r"[a-z][a-z-]+", cleaned) if w not in STOPWORDS]


@node(output_name="vector")
def embed(tokens: list[str]) -> dict[str, float]:
    """A unit-length bag-of-words vector."""
    counts = Counter(tokens)
    norm = math.sqrt(sum(c * c for c in counts.values())) or 1.0
    return {word: count / norm for word, count in counts.items()}


passage_pipeline = Pipeline([clean, tokenize, embed], name="encode_passage")


# --- the retrieval pipeline ------------------------------------------------------------------


@node(output_name=("titles", "passages"))
def load_documents(documents: dict[str, str]) -> tuple[list[str], list[str]]:
    """Split the corpus into titles and passages."""
    return list(documents), list(documents.values())


@node(output_name="index")
def build_index(titles: list[str], vectors: list[dict[str, float]]) -> list[tuple[str, dict]]:
    """Pair each title with its passage vector."""
    return list(zip(titles, vectors, strict=True))


@node(output_name="answer")
def answer(index: list[tuple[str, dict]], query_vector: dict[str, float], top_k: int = 2):
    """The ``top_k`` titles by cosine similarity to the query."""
    scored = [
        (round(sum(w * vector.get(t, 0.0) for t, w in query_vector.items()), 3), title)
        for title, vector in index
    ]
    return sorted(scored, reverse=True)[:top_k]


encode_corpus = passage_pipeline.as_node(
    name="encode_corpus",
    map_over="passages",
    input_mapping={"passages": "passage"},
    output_mapping={"vector": "vectors"},
)
encode_query = passage_pipeline.as_node(
    name="encode_query",
    input_mapping={"query": "passage"},
    output_mapping={"vector": "query_vector"},
)
retrieval = Pipeline(
    [load_documents, encode_corpus, build_index, encode_query, answer], name="retrieval"
)


OUTPUT = Path(__file__).resolve().parent / "output"


def main() -> dict[str, object]:
    """Run the example: progress, a warm re-run from the cache, the tree and a picture."""
    one = passage_pipeline.run(passage="Test  with ONE passage")
    print("one passage  :", one["tokens"])

    with tempfile.TemporaryDirectory() as folder:
        cached = retrieval.with_cache(DiskCache(folder)).with_callbacks([ProgressCallback()])
        print("\nfirst run (cold cache):")
        with capture() as cap:
            result = cached.run(documents=DOCUMENTS, query="how does caching skip work?")
        print("\nsecond run (every node a cache hit):")
        again = cached.run(documents=DOCUMENTS, query="how does caching skip work?")
        assert again == result
    print("\nanswer       :", result["answer"])
    print("passages     :", len(result["vectors"]), "encoded by the nested, mapped pipeline")

    print("\nexecution order:")
    for record in cap.last.records:
        item = f" [item {record.item_path[-1]}]" if record.item_path else ""
        print(f"  {'  ' * record.depth}{record.path}{item}")
    print("\nexecution tree of the first run:")
    print(cap.last.tree())
    print("\nconfiguration:")
    print(retrieval.describe_config())
    OUTPUT.mkdir(exist_ok=True)
    picture = OUTPUT / "retrieval.png"
    retrieval.visualize(depth=2, filename=str(picture))
    print(f"\npicture      : {picture}")
    return result


if __name__ == "__main__":
    main()
