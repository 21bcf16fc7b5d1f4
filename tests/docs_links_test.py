#!/usr/bin/env python3
"""docs_links_test.py — the documentation stands on its own.

    docs_links_test.py SOURCE_DIR

Checks, over README.md, docs/*.md and every README.md under examples/ and
tests/:
  - every docs/*.md and every such README.md is linked from README.md;
  - every relative link (a Markdown [text](target), anchors dropped) in
    README.md and docs/*.md names a file or directory that exists;
  - no page names a document that is not in the repository (DESIGN.md,
    REFERENCE.md, LEGACY_API.md, an "issue 12" or the "issue notes" of a
    tracker) or an absolute path of a build machine (/work/..., /home/...).
Prints every problem found, then exits 1 if there was one.
"""
import glob
import os
import re
import sys

if len(sys.argv) != 2:
    print("usage: docs_links_test.py SOURCE_DIR", file=sys.stderr)
    sys.exit(2)
src = os.path.abspath(sys.argv[1])
os.chdir(src)

FENCE = re.compile(r"^\s*```")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FORBIDDEN = re.compile(r"\b(DESIGN\.md|REFERENCE\.md|LEGACY_API\.md)\b|(?<![\w.~-])/(work|home)/"
                       r"|\b[Ii]ssue (\d+|notes)\b")

pages = sorted(glob.glob("docs/*.md"))
readmes = sorted(p for top in ("examples", "tests")
                 for p in glob.glob(top + "/**/README.md", recursive=True))
problems = []


def links(path):
    """(line number, target) of every Markdown link outside code blocks."""
    in_code = False
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        # inline code spans are not links
        for m in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            yield n, m.group(1)


def is_relative(target):
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")


# 1. every page is linked from README.md
linked = set()
for _, target in links("README.md"):
    if is_relative(target):
        linked.add(os.path.normpath(target.split("#", 1)[0]))
for page in pages + readmes:
    if os.path.normpath(page) not in linked:
        problems.append("README.md does not link %s" % page)

# 2. every relative link resolves
for page in ["README.md"] + pages:
    for n, target in links(page):
        if not is_relative(target):
            continue
        path = target.split("#", 1)[0]
        if not path:
            continue
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path))
        if resolved.startswith("..") or not os.path.exists(resolved):
            problems.append("%s:%d: link to %s: no such file in the repository"
                            % (page, n, target))

# 3. nothing outside the repository
for page in ["README.md"] + pages + readmes:
    for n, line in enumerate(open(page, encoding="utf-8"), 1):
        m = FORBIDDEN.search(line)
        if m:
            problems.append("%s:%d: names %s, which is not in the repository: "
                            "state the fact instead" % (page, n, m.group(0)))

for p in problems:
    print("docs_links: " + p, file=sys.stderr)
if problems:
    sys.exit(1)
print("docs_links: %d pages, all linked from README.md; links resolve; "
      "nothing outside the repository" % (1 + len(pages) + len(readmes)))
