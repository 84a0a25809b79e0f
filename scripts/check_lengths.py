#!/usr/bin/env python3
"""Length check (ctest `lengths`): prints the 10 longest functions and files in src/ and tools/ and fails when a
function is longer than 80 lines or a source file longer than 600. `--self-test` checks the function finder on a
small sample (ctest `lengths_self_test`).

Functions are found by a heuristic that is enough for this code base: comments, string literals and preprocessor
lines are blanked, then braces are matched. A brace at namespace or class scope whose header (the text since the
previous `;`, `{` or `}`) has a parameter list opens a function body, which runs from the header's first line to
its closing brace; lambdas and local classes count inside their enclosing function. namespace, struct, class,
union and enum braces are scopes, not functions; `= {...}` initializers are skipped.

Usage: check_lengths.py [repo_root] | --self-test
"""
import os
import re
import sys

from check_common import repo_root, source_files, verdict

MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 600

SCANNED_DIRS = ("src", "tools")
SCOPE_KEYWORDS = re.compile(r"\b(namespace|struct|class|union|enum|extern)\b")
FUNCTION_NAME = re.compile(r"(operator\s*[^\s(]+|[A-Za-z_~][\w:~]*(?:<[^()]*>)?)\s*$")


def blank_comments_and_literals(text):
    """The text with comments, string/char literals and preprocessor lines replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            end = i
            while end < n and (text[end] != "\n" or text[end - 1] == "\\"):
                end += 1
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
            continue
        if c in " \t":
            out.append(c)
            i += 1
            continue
        at_line_start = c == "\n"
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
        elif c == 'R' and text.startswith('R"', i):
            delim_end = text.find("(", i + 2)
            closing = ")" + text[i + 2:delim_end] + '"'
            end = text.find(closing, delim_end) + len(closing)
        elif c in "\"'" and not (c == "'" and i > 0 and text[i - 1].isalnum()):  # 1'000 is a digit separator
            end = i + 1
            while end < n and text[end] != c:
                end += 2 if text[end] == "\\" else 1
            end += 1
        else:
            out.append(c)
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", text[i:end]))
        i = end
    return "".join(out)


def matching_brace(text, open_index):
    depth = 0
    for i in range(open_index, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return len(text) - 1


def outside_brackets(header):
    """The header without the contents of (...) and <...>, to look for keywords and `=` at its top level."""
    out, depth = [], 0
    for c in header:
        if c in "(<":
            depth += 1
        elif c in ")>" and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def find_functions(source):
    """[(name, first_line, line_count)] of the function bodies in C++ source text."""
    text = blank_comments_and_literals(source)
    functions = []

    def line_of(index):
        return text.count("\n", 0, index) + 1

    def scan_scope(begin, end):
        header_start = begin
        i = begin
        while i < end:
            c = text[i]
            if c in ";}":
                header_start = i + 1
            elif c == "{":
                header = text[header_start:i]
                top = outside_brackets(header)
                close = matching_brace(text, i)
                if SCOPE_KEYWORDS.search(top) and "(" not in top:
                    if not re.search(r"\benum\b", top):
                        scan_scope(i + 1, close)
                    header_start = close + 1
                    i = close + 1
                    continue
                following = text[close + 1:close + 40].lstrip()
                if following[:1] in (",", "{") and "(" in header:
                    i = close + 1  # a braced member initializer of a constructor: the header goes on
                    continue
                if "(" in header and not re.search(r"(?<![=!<>])=(?!=)", top.replace("operator=", "")):
                    name_part = header[:header.index("(")]
                    match = FUNCTION_NAME.search(name_part)
                    name = match.group(1) if match else "?"
                    first = line_of(header_start + len(header) - len(header.lstrip()))
                    functions.append((name, first, line_of(close) - first + 1))
                header_start = close + 1
                i = close + 1
                continue
            i += 1

    scan_scope(0, len(text))
    return functions


SELF_TEST_SAMPLE = r'''// a comment with { braces }
#include "x.h"
#define BRACE {
namespace outer {
enum class Kind { a, b };
struct Point {
  int x = 0, y{1};
  int sum() const { return x + y; }
};
static const int table[] = {1, 2, 3};
Widget::Widget(int a) : a_(a), b_{a} {
  text_ = "not a } brace";
}
int Point::manhattan() const {
  auto inner = [&](int v) {
    return v < 0 ? -v : v;
  };
  char open = '{';
  return inner(x) + inner(y);
}
template <typename T>
T twice(T v) {
  return 2 * v;
}
}  // namespace outer
'''


def self_test():
    found = find_functions(SELF_TEST_SAMPLE)
    expected = [("sum", 8, 1), ("Widget::Widget", 11, 3), ("Point::manhattan", 14, 7), ("twice", 21, 4)]
    if found != expected:
        print(f"self-test FAILED: found {found}, expected {expected}")
        return 1
    print("self-test ok: " + ", ".join(f"{name} ({lines} lines)" for name, _, lines in found))
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = repo_root(sys.argv)
    files, functions = [], []
    for path in source_files(root, SCANNED_DIRS):
        rel = os.path.relpath(path, root)
        with open(path, encoding="utf-8") as f:
            source = f.read()
        files.append((source.count("\n"), rel))
        functions += [(lines, f"{rel}:{first} {name}") for name, first, lines in find_functions(source)]
    files.sort(reverse=True)
    functions.sort(key=lambda f: -f[0])
    print("longest functions:")
    for lines, where in functions[:10]:
        print(f"  {lines:5d}  {where}")
    print("longest files:")
    for lines, rel in files[:10]:
        print(f"  {lines:5d}  {rel}")
    failures = [f"function {where} has {lines} lines (limit {MAX_FUNCTION_LINES})"
                for lines, where in functions if lines > MAX_FUNCTION_LINES]
    failures += [f"file {rel} has {lines} lines (limit {MAX_FILE_LINES})"
                 for lines, rel in files if lines > MAX_FILE_LINES]
    return verdict("lengths", failures)


if __name__ == "__main__":
    sys.exit(main())
