#!/usr/bin/env bash
# Format check: every C++ file under src include tools tests bench must already be as clang-format 14 writes it
# with the repository's .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
clang_format=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$clang_format" ] || ! "$clang_format" --version | grep -q "version 14\."; then
  echo "check_format: needs clang-format 14 (apt-get install clang-format-14)" >&2
  exit 1
fi
# (npm packages' sources under node_modules, e.g. node-llama-cpp's in bench/llama, are not ours)
mapfile -t files < <(find src include tools tests bench -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' \) \
  -not -path '*/node_modules/*' | sort)
report=$("$clang_format" --dry-run --Werror "${files[@]}" 2>&1) && status=0 || status=$?
if [ "$status" -eq 0 ]; then
  echo "check_format: ${#files[@]} files formatted"
  exit 0
fi
unformatted=$(grep -oE '^[^:]+\.(h|hpp|cpp):[0-9]+:[0-9]+: error' <<< "$report" | cut -d: -f1 | sort -u)
echo "check_format: $(wc -l <<< "$unformatted") of ${#files[@]} files differ from .clang-format (run clang-format -i):"
sed 's/^/  /' <<< "$unformatted"
exit 1
