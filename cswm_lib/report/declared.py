"""A chapter's declared budget, read from its parameter file: the values of the chapter's section
and the reasoning written beside them (the comment lines above and at the top of the section), so
that a page's Budget section states what was declared, generated from the file, never retyped."""

from __future__ import annotations

import json
from pathlib import Path

from cswm_lib.errors import CswmError
from cswm_lib.params import load_params
from cswm_lib.tables import format_table
from cswm_lib.utils import project_root


def declaration(chapter: str, scale: str = "cpu", folder: Path | None = None) -> tuple[dict, str]:
    """The section of ``chapter`` in ``book/params/<scale>.yaml``: ``(values, reasoning)``, the
    reasoning being the comment block right above the section's key and at the top of its body,
    joined into one paragraph (empty when the file has none)."""
    path = (folder or project_root() / "book" / "params") / f"{scale}.yaml"
    if not path.is_file():
        raise CswmError(f"no parameter file for the {scale!r} scale: {path}")
    values = (load_params(path).get("chapters") or {}).get(chapter)
    lines = path.read_text(encoding="utf-8").splitlines()
    if values is None:
        return {}, ""
    key = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{chapter}:"))
    above = []
    for line in reversed(lines[:key]):  # the comment block that ends at the key
        if not line.strip().startswith("#"):
            break
        above.insert(0, line)
    inside = []
    for line in lines[key + 1:]:  # the comments before the section's first value
        if not line.strip().startswith("#"):
            break
        inside.append(line)
    text = " ".join(line.strip().lstrip("#").strip() for line in above + inside)
    return values, text


def declaration_markdown(chapter: str, scale: str = "cpu", folder: Path | None = None,
                         record: dict | None = None) -> str:
    """The Budget section's text: the declared values of ``chapter`` at ``scale`` as a table (one row
    per parameter) and the reasoning declared with them; with the recorded ``record`` of that
    scale, which commit of the parameter file it ran (its ``declared`` field)."""
    values, text = declaration(chapter, scale, folder)
    if not values:
        return f"_No `{scale}` parameters are declared for this chapter._"
    rows = [{"parameter": k, "value": json.dumps(v, ensure_ascii=False).replace("|", "\\|")}
            for k, v in values.items()]
    head = f"Declared in `book/params/{scale}.yaml` for the `{scale}` scale"
    ran = (record or {}).get("declared") or {}
    if ran.get("params_commit"):
        head += (f" (the recorded run ran the file of commit {ran['params_commit'][:7]}; its values "
                 "are in the record's specs)")
    return "\n\n".join([f"{head}:", format_table(rows), *([f"Why: {text}"] if text else [])])
