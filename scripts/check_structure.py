#!/usr/bin/python3
# check_structure.py: source-structure checks: no dependency cycles between source files, and
# function lengths.
"""Structure checks of bprop's sources (standard library only).

usage: check_structure.py [--build DIR] [--src DIR] [--max-lines N] [--strict]

--build DIR   cycle check: which source files depend on which, judged by the symbols their
              object files in the CMake build DIR define and use (nm). Every object compiled
              from src/ takes part (library, CLI, MPI); tests, benchmarks and fuzz targets do
              not. An object's undefined symbol is resolved first within its own target (a CMake
              X.dir folder), then within the library targets. Each cycle (a strongly connected
              set of files) is printed with the symbols that tie it; any cycle makes the exit
              status 1.
--src DIR     length check: functions defined in DIR's .c and .h files (recursively) whose
              body, the lines strictly between the line of the opening brace and the line of
              the closing brace, is longer than --max-lines (default 60). Reported always; they
              make the exit status 1 only with --strict.
"""
import argparse
import os
import re
import subprocess
import sys

LIBRARY_TARGETS = ("bprop_objects", "bprop_mpi_objects")


# ---- cycles ----------------------------------------------------------------------------------

def source_objects(build):
    """{target: {source path: object path}} for the objects compiled from src/."""
    found = {}
    for folder, _, files in os.walk(build):
        for name in files:
            if not name.endswith(".c.o"):
                continue
            path = os.path.join(folder, name)
            m = re.search(r"CMakeFiles/([^/]+)\.dir/(.*)\.o$", path)
            if not m or not m.group(2).startswith("src/"):
                continue  # tests/, bench/, fuzz targets
            found.setdefault(m.group(1), {})[m.group(2)] = path
    return found


def symbols(obj):
    """(defined, undefined) global symbols of one object file."""
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBRVWCG":
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
    return defined, undefined


def dependency_edges(build):
    """{source: {source it uses: {symbols}}} over every target's objects."""
    targets = source_objects(build)
    syms = {t: {src: symbols(obj) for src, obj in objs.items()} for t, objs in targets.items()}
    defined_in = {}
    for t, per_src in syms.items():
        table = defined_in.setdefault(t, {})
        for src, (defined, _) in per_src.items():
            for s in defined:
                table.setdefault(s, src)
    library = {}
    for t in LIBRARY_TARGETS:
        for s, src in defined_in.get(t, {}).items():
            library.setdefault(s, src)
    edges = {}
    for t, per_src in syms.items():
        for src, (_, undefined) in per_src.items():
            for s in undefined:
                dst = defined_in[t].get(s) or library.get(s)
                if dst and dst != src:
                    edges.setdefault(src, {}).setdefault(dst, set()).add(s)
            edges.setdefault(src, {})
    return edges


def cycles(edges):
    """Strongly connected sets of more than one file (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, {})))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def check_cycles(build):
    edges = dependency_edges(build)
    found = cycles(edges)
    for comp in found:
        ties = [f"{a} -> {b} ({', '.join(sorted(edges[a][b])[:3])})"
                for a in comp for b in comp if b in edges.get(a, {})]
        print("cycle: " + "; ".join(ties))
    print(f"cycles: {len(found)} among {len(edges)} source files")
    return not found


# ---- function lengths ------------------------------------------------------------------------

def code_only(text):
    """text with comments, string and character literals and preprocessor lines blanked, newlines
    kept, so that braces and parentheses can be counted and line numbers still hold."""
    out, i, n = [], 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c in " \t":
            out.append(c)
            i += 1
            continue
        if line_start and c == "#":  # a directive, with its continuation lines
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("\n")
                    i += 2
                    continue
                out.append(" ")
                i += 1
            continue
        line_start = False
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                out.append(" ")
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j + 1]))
            i = j + 1
        else:
            out.append(c)
            if c == "\n":
                line_start = True
            i += 1
    return "".join(out)


def function_name(header):
    """The name of the function whose header (the code before its body's brace) this is, or None
    when the brace opens something else (a struct, an initializer)."""
    h = header.strip()
    if not h.endswith(")") or "=" in h.replace("==", ""):
        return None
    if re.match(r"(typedef|struct|union|enum)\b", h) and "(" not in h.split("{")[0]:
        return None
    # The parameter list is the last balanced group; the name is what stands before it.
    depth, k = 0, len(h) - 1
    while k >= 0:
        depth += h[k] == ")"
        depth -= h[k] == "("
        if depth == 0:
            break
        k -= 1
    before = h[:k].rstrip()
    m = re.search(r"([A-Za-z_]\w*(\s*\([^()]*\))?)$", before)
    return m.group(1) if m else None


def long_functions(path, max_lines):
    code = code_only(open(path, encoding="utf-8", errors="replace").read())
    found, depth, header_start, k = [], 0, 0, 0
    while k < len(code):
        c = code[k]
        if c == "{":
            if depth == 0:
                name = function_name(code[header_start:k])
                open_line = code.count("\n", 0, k) + 1
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                close_line = code.count("\n", 0, k) + 1
                body = close_line - open_line - 1
                if name and body > max_lines:
                    found.append((open_line, name, body))
                header_start = k + 1
        elif c == ";" and depth == 0:
            header_start = k + 1
        k += 1
    return found


def check_lengths(src, max_lines):
    over = []
    for folder, _, files in os.walk(src):
        for name in sorted(files):
            if name.endswith((".c", ".h")):
                path = os.path.join(folder, name)
                over += [(path, line, fn, body) for line, fn, body in long_functions(path, max_lines)]
    for path, line, fn, body in sorted(over):
        print(f"{path}:{line}: {fn}: {body} lines (more than {max_lines})")
    print(f"functions over {max_lines} lines: {len(over)}")
    return not over


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--build", help="CMake build folder whose objects the cycle check reads")
    p.add_argument("--src", help="source folder whose functions the length check reads")
    p.add_argument("--max-lines", type=int, default=60)
    p.add_argument("--strict", action="store_true", help="long functions make the check fail")
    a = p.parse_args()
    if not a.build and not a.src:
        p.error("give --build, --src or both")
    ok = True
    if a.build:
        ok = check_cycles(a.build) and ok
    if a.src:
        ok = (check_lengths(a.src, a.max_lines) or not a.strict) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
