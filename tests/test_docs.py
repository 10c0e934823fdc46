"""The README's Python examples and the coding/transport docstring examples run as written."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest
import soundspring.coding
import soundspring.transport.container

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})  # noqa: S102 (running the docs is the test)


@pytest.mark.parametrize("module", [soundspring.coding, soundspring.transport.container])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
