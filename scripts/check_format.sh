#!/usr/bin/env bash
# Fails when a tracked C++ file is not in the shape .clang-format describes
# (clang-format-14, Debian's); prints the files and how to fix them.
set -euo pipefail
cd "$(dirname "$0")/.."
format=${CLANG_FORMAT:-clang-format}
mapfile -t files < <(git ls-files '*.cpp' '*.h')
bad=()
for f in "${files[@]}"; do
  "$format" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ "${#bad[@]}" -ne 0 ]; then
  echo "format: ${#bad[@]} file(s) differ from .clang-format:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "format: fix with: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "format: ${#files[@]} files clean"
