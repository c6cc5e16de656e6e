"""The docs' landing page leads to every reference page."""

import pathlib
import re

DOCS = pathlib.Path(__file__).parent.parent / "docs"


def test_every_reference_page_is_in_the_index():
    """Each page of docs/reference is in the index's toctree and in its list of references."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    toctree = re.search(r":caption: Reference\n:hidden:\n\n(.*?)```", index, re.DOTALL)
    listed = set(re.findall(r"\{doc\}`(reference/[\w-]+)`", index))
    pages = {f"reference/{page.stem}" for page in (DOCS / "reference").glob("*.md")}
    assert toctree is not None
    assert (set(toctree.group(1).split()), listed) == (pages, pages)
