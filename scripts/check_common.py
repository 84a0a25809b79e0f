"""Shared by the structure checks (check_layers.py, check_lengths.py): the repository root they are given, the C++
files they read, and the verdict they print and exit with."""
import os
import sys

SOURCE_SUFFIXES = (".h", ".hpp", ".cpp", ".cc")


def repo_root(argv):
    """The root given on the command line, or the repository this script lives in."""
    return os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))


def source_files(root, top_dirs):
    """Every C++ file under root/<top_dir>/ for each of top_dirs, in a stable order."""
    for top in top_dirs:
        for dirpath, dirnames, names in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for name in sorted(names):
                if name.endswith(SOURCE_SUFFIXES):
                    yield os.path.join(dirpath, name)


def verdict(check_name, failures):
    """Prints each failure and the check's result; returns the exit status."""
    for failure in failures:
        print("FAIL " + failure)
    print(f"{check_name}: {'FAILED, ' + str(len(failures)) + ' problem(s)' if failures else 'ok'}")
    return 1 if failures else 0
