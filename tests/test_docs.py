"""The documentation kept in step with the code: the module map, the configuration reference, the HTTP
API reference, and the README's size and links."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path

from appliance.config import SECTIONS, Config, build_config
from appliance.paths import REPO_ROOT

DOCS = REPO_ROOT / "docs"
LISTED_INITS = {"appliance/__init__.py", "appliance/assets/__init__.py",
                "appliance/vision/backends/__init__.py"}


def package_modules() -> set[str]:
    out = set()
    for path in (REPO_ROOT / "appliance").rglob("*.py"):
        rel = path.relative_to(REPO_ROOT).as_posix()
        if path.name not in ("__init__.py", "__main__.py") or rel in LISTED_INITS:
            out.add(rel)
    return out


def test_architecture_module_map_lists_exactly_the_packages_modules():
    text = (DOCS / "ARCHITECTURE.md").read_text()
    rows = re.findall(r"^\| `(appliance/[^`]+)` \| (.+) \|$", text, re.M)
    listed = [module for module, _ in rows]
    assert len(listed) == len(set(listed)), "a module is listed twice"
    modules = package_modules()
    assert set(listed) == modules, (f"missing from the map: {sorted(modules - set(listed))}; "
                                    f"listed but not in the package: {sorted(set(listed) - modules)}")
    assert "../shared" not in text.split("## Module map")[0], "the map links a file outside the repo"


def _toml_block(markdown: str) -> dict:
    blocks = re.findall(r"```toml\n(.*?)```", markdown, re.S)
    assert len(blocks) == 1, f"expected one ```toml block, found {len(blocks)}"
    return tomllib.loads(blocks[0])


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.compare}


def test_configuration_md_documents_every_key_with_the_codes_default():
    raw = _toml_block((DOCS / "configuration.md").read_text())
    assert set(raw) == _fields(Config), "top-level keys and sections"
    for section, cls in SECTIONS.items():
        assert set(raw[section]) == _fields(cls), f"[{section}] keys"
    assert build_config(raw) == Config(), "a documented default differs from the code's"
    for section, cls in SECTIONS.items():  # each value as written, not only after conversion
        defaults = cls()
        for key, value in raw[section].items():
            expected = getattr(defaults, key)
            assert (list(expected) if isinstance(expected, tuple) else expected) == value, (section, key)


def test_configuration_md_web_table_defaults():
    text = (DOCS / "configuration.md").read_text()
    table = text.split("### The web page (`[web]`)")[1]
    web = SECTIONS["web"]()
    rows = re.findall(r"^\| ((?:`\w+`(?:, )?)+) \| ((?:`[^`]*`(?:, )?)+) \|", table, re.M)
    seen = set()
    for keys, values in rows:
        keys, values = re.findall(r"`(\w+)`", keys), re.findall(r"`([^`]*)`", values)
        for key, value in zip(keys, values, strict=True):
            default = getattr(web, key)
            default = list(default) if isinstance(default, tuple) else default  # TOML writes a list
            assert str(default).lower().strip('"') == value.strip('"').lower(), key
            seen.add(key)
    assert seen == _fields(SECTIONS["web"]), seen


def test_http_api_md_lists_exactly_the_openapi_routes():
    spec = json.loads((REPO_ROOT / "appliance" / "web" / "openapi.json").read_text())
    served = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops
              if method != "parameters"}
    text = (DOCS / "http-api.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| `")]
    documented = set()
    for line in table:
        first_cell = line.split(" | ")[0]
        for method, path in re.findall(r"`(GET|POST|PATCH|PUT|DELETE) (/[^` ]*)`", first_cell):
            documented.add((method, re.sub(r"<(\w+)>", r"{\1}", path)))
    assert documented == served, (f"not documented: {sorted(served - documented)}; "
                                  f"documented but not in openapi.json: {sorted(documented - served)}")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_every_docs_link_and_anchor_resolves():
    """Links between README.md and docs/*.md reach a file, and a #section in it (a moved or renamed
    section otherwise leaves a dead link)."""
    pages = [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    anchors = {page.resolve(): {anchor(h) for h in re.findall(r"^#+ (.+)$", page.read_text(), re.M)}
               for page in pages}
    dead = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # not links inside code blocks
        for target, section in re.findall(r"\]\(((?!https?:|mailto:)[^)#\s]*)(?:#([^)\s]+))?\)", text):
            where = (page.parent / target).resolve() if target else page.resolve()
            if not where.exists():
                dead.append(f"{page.name} -> {target} (no such file)")
            elif section and where.suffix == ".md" and section not in anchors.get(where, set()):
                dead.append(f"{page.name} -> {target}#{section} (no such section)")
    assert not dead, "dead links:\n" + "\n".join(dead)


def test_readme_is_short_and_its_links_resolve():
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for section in ("Quick start", "Teaching in the demo", "Install on a Raspberry Pi", "Wiring",
                    "Everyday use", "Troubleshooting", "Documentation"):
        assert re.search(rf"^## {section}", text, re.M), section
    assert ".venv/bin/appliance" in text and "source .venv/bin/activate" in text
    for target in re.findall(r"\]\(((?!https?:|#)[^)#]+)", text):
        assert (REPO_ROOT / target).exists(), f"README links {target}, which does not exist"
    moved = ("install", "configuration", "cli", "http-api", "recognition", "benchmarks", "development",
             "troubleshooting", "fleet", "CHANGELOG", "ARCHITECTURE")
    for doc in (DOCS / f"{name}.md" for name in moved):
        for target in re.findall(r"\]\(((?!https?:|#)[^)#]+)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links {target}, which does not exist"


def test_no_code_in_the_package_looks_beside_the_checkout():
    """The dev machines' ../shared is reached only through APPLIANCE_MODELS_FROM / --from or a tool's own
    arguments, never by path: not by the appliance, not by its benchmarks."""
    for path in sorted((REPO_ROOT / "appliance").rglob("*.py")):
        code = path.read_text()
        assert not re.search(r"""["']shared["']|REPO_ROOT\.parent""", code), path.relative_to(REPO_ROOT)
    assert Path(REPO_ROOT / "appliance" / "assets" / "ATTRIBUTION.md").is_file()
