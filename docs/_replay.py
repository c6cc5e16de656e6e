"""
Let a tutorial page continue where the earlier pages stopped.

Sphinx runs each page's doctests in a namespace of its own, but the tutorial tells one
story across pages. A page that continues the story starts with a hidden setup block:

.. code-block:: markdown

    ```{testsetup}
    from _replay import replay
    replay(globals(), "events", "aggregate")
    ```

`replay` runs the ``>>>`` examples of those pages, in order, into the page's namespace.
The earlier pages stay the only copy of the code, so the pages cannot drift apart.
Examples that expect an exception are skipped (their pages check them), and output is
discarded (their pages check it too).

`run_readme_teaser` runs the Python example of the README's teaser, which the landing
page includes, so that the first code a reader sees is checked like the rest.
"""

# docs/ is a Sphinx source folder, not a package.
# ruff: noqa: INP001

from __future__ import annotations

import contextlib
import doctest
import io
import re
from pathlib import Path
from typing import Any

_DOCS = Path(__file__).parent
_TUTORIAL = _DOCS / "tutorial"
_README = _DOCS.parent / "README.md"


def replay(namespace: dict[str, Any], *pages: str) -> None:
    """Run the doctest examples of the tutorial *pages* (names without ``.md``) in *namespace*."""
    parser = doctest.DocTestParser()
    for page in pages:
        path = _TUTORIAL / f"{page}.md"
        for example in parser.get_examples(path.read_text(encoding="utf-8"), str(path)):
            if example.exc_msg is not None:
                continue
            # dont_inherit: this module's `from __future__ import annotations` must not leak
            # into the pages, where attrs and cattrs need real annotations.
            code = compile(
                example.source, f"{path}:{example.lineno + 1}", "exec", dont_inherit=True
            )
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, namespace)  # noqa: S102 (the project's own doc pages)


def run_readme_teaser() -> None:
    """Run the Python code blocks between the README's teaser markers."""
    readme = _README.read_text(encoding="utf-8")
    teaser = readme.split("<!-- teaser-start -->", 1)[1].split("<!-- teaser-end -->", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```", teaser, flags=re.MULTILINE | re.DOTALL)
    if not blocks:
        raise AssertionError("the README teaser has no Python example to check")
    for block in blocks:
        exec(compile(block, str(_README), "exec", dont_inherit=True), {})  # noqa: S102
