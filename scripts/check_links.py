#!/usr/bin/python3
"""check_links.py: every relative link and #anchor in the repository's tracked Markdown files resolves.

Usage: /usr/bin/python3 scripts/check_links.py [FILE.md ...]
Without arguments it checks every *.md file git tracks or would track (not ignored), or, outside
a git checkout, every *.md file under the repository root except build folders. A link [text](target) or ![alt](target),
or a reference definition [label]: target, is relative when it names no scheme (http:, mailto:
...) and does not start with '/'. Its path must exist, relative to the file that holds it; its
#anchor, when the target is a Markdown file (or the file itself), must be the slug of one of
that file's headings, as GitHub makes them, or an explicit <a id/name="...">. Links inside
fenced code blocks and inline code are not links. Prints one line per broken link
(FILE:LINE: target: what is wrong) and exits 1 when there is any, 0 otherwise. Standard
library only.
"""
import os
import re
import subprocess
import sys
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:id|name)=\"([^\"]+)\"", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def tracked_markdown():
    try:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard", "--", "*.md"],
                             capture_output=True, check=True).stdout
        files = [f for f in out.decode().split("\0") if f]
        paths = [os.path.join(ROOT, f) for f in files]
        return [p for p in paths if os.path.isfile(p)]  # not a file deleted from the tree
    except (OSError, subprocess.CalledProcessError):
        found = []
        for d, dirs, names in os.walk(ROOT):
            dirs[:] = [x for x in dirs if not x.startswith(("build", ".git", "out"))]
            found += [os.path.join(d, n) for n in names if n.endswith(".md")]
        return sorted(found)


def lines_outside_code(text):
    """(line number, line) of every line outside fenced code blocks."""
    fence = None
    for no, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark[0] * len(mark)
                continue
            if mark[0] == fence[0] and len(mark) >= len(fence):
                fence = None
                continue
        if fence is None:
            yield no, line


def slug(heading):
    """GitHub's anchor for a heading's text: markup dropped, lower case, punctuation removed
    (letters, digits, '_' and '-' stay), spaces made hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


_anchor_cache = {}


def anchors_of(path):
    if path not in _anchor_cache:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        seen, anchors = {}, set()
        for _, line in lines_outside_code(text):
            m = HEADING.match(line)
            if m:
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                anchors.add(base if n == 0 else f"{base}-{n}")
            anchors.update(HTML_ANCHOR.findall(line))
        _anchor_cache[path] = anchors
    return _anchor_cache[path]


def targets(text):
    for no, line in lines_outside_code(text):
        m = REF_DEF.match(line)
        if m:
            yield no, m.group(1)
            continue
        for m in INLINE_LINK.finditer(INLINE_CODE.sub("", line)):
            yield no, m.group(1)


def check_file(md):
    problems = []
    with open(md, encoding="utf-8") as f:
        text = f.read()
    rel_md = os.path.relpath(md, ROOT)
    for no, target in targets(text):
        if not target or SCHEME.match(target) or target.startswith("/"):
            continue
        path_part, _, anchor = target.partition("#")
        path_part = urllib.parse.unquote(path_part)
        dest = md if not path_part else os.path.normpath(os.path.join(os.path.dirname(md), path_part))
        where = f"{rel_md}:{no}: {target}"
        if not os.path.exists(dest):
            problems.append(f"{where}: no such file {os.path.relpath(dest, ROOT)}")
            continue
        if anchor and dest.endswith(".md") and os.path.isfile(dest):
            if urllib.parse.unquote(anchor) not in anchors_of(dest):
                problems.append(f"{where}: no heading with anchor #{anchor} in "
                                f"{os.path.relpath(dest, ROOT)}")
    return problems


def main(argv):
    files = [os.path.abspath(a) for a in argv[1:]] or tracked_markdown()
    problems = []
    for md in files:
        problems += check_file(md)
    for p in problems:
        print(f"check_links: {p}")
    print(f"check_links: {len(files)} Markdown files, "
          f"{'no broken links' if not problems else f'{len(problems)} broken links'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
