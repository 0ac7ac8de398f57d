"""The README is a short map and docs/ holds the rest: every relative link resolves, inside the repository, to a
file (and a link's #anchor to one of that file's headings), and every document in docs/ is reachable."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def without_code_blocks(text):
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def links(path):
    """The relative link targets of a Markdown file (URLs such as https:// and mailto: left out)."""
    return [target for target in LINK.findall(without_code_blocks(path.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def anchors(path):
    """A Markdown file's heading anchors as GitHub makes them: lower case, punctuation dropped, spaces as
    hyphens, a repeated heading numbered -1, -2, ..."""
    found, seen = set(), {}
    for heading in re.findall(r"^#{1,6} +(.+?) *$", without_code_blocks(path.read_text()), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_in_the_repository_and_its_heading(document):
    broken = []
    for target in links(document):
        name, _, anchor = target.partition("#")
        path = (document.parent / name).resolve() if name else document
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(f"{target}: no such file in the repository")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert broken == []


def test_every_document_in_docs_is_linked_from_the_readme():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(README)}
    assert [str(path.relative_to(ROOT)) for path in DOCUMENTS[1:] if path not in linked] == []


def test_the_readme_stays_a_ten_minute_read():
    assert len(README.read_text().splitlines()) <= 250


def test_the_link_checker_sees_a_broken_link_and_a_missing_heading(tmp_path):
    (tmp_path / "a.md").write_text("# A title\n\n## Two words\n\n[ok](#two-words) [gone](b.md) [bad](#nope)\n"
                                   "```\n[in code](ignored.md)\n```\n[web](https://example.org)\n")
    assert links(tmp_path / "a.md") == ["#two-words", "b.md", "#nope"]
    assert anchors(tmp_path / "a.md") == {"a-title", "two-words"}
