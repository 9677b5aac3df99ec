#!/usr/bin/env bash
# Fails if the tests, fuzz scripts, helper scripts, benchmarks or the Makefile refer to a path
# outside the repository: a fresh clone in any directory, with nothing beside it, must test.
#
#   scripts/check-standalone.sh [ROOT]   (default: this repository)
#
# What counts as "outside" (the patterns below): a walk up to a sibling folder named shared
# (its fixtures, notes or hooks), an absolute path under a user's or a workplace's folder (the
# work, home, Users and root folders, the Swift package mirror), and the absolute path of the
# checkout itself (a copy of it would break in any other directory). System paths (temporary
# files, proc, usr, etc, dev) are fine.
set -euo pipefail

root=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)
cd "$root"

paths=(Tests Fuzz scripts bench Makefile)
existing=()
for p in "${paths[@]}"; do [[ -e $p ]] && existing+=("$p"); done

pattern='(\.\./shared\b|\bshared/(fixtures|notes|hooks)\b|(^|[^A-Za-z0-9_.~-])/(work|home|Users|root|opt/swift-packages)/)'
root_pattern=$(printf '%s' "$root" | sed 's/[.[\*^$]/\\&/g')
# This script names the patterns it looks for; it is the one file allowed to. In a git checkout
# only the files git would commit are read (bench results and build output are ignored).
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    found=$(git -C "$root" ls-files -z --cached --others --exclude-standard -- "${existing[@]}" |
        grep -zv 'scripts/check-standalone.sh$' |
        xargs -0 -r grep -HnIE -e "$pattern" -e "$root_pattern" -- 2>/dev/null || true)
else
    found=$(grep -rnIE --exclude=check-standalone.sh --exclude-dir=__pycache__ --exclude-dir=.build \
        -e "$pattern" -e "$root_pattern" "${existing[@]}" || true)
fi

if [[ -n $found ]]; then
    echo "check-standalone: these lines refer to paths outside the repository:" >&2
    echo "$found" >&2
    echo "Put what they need under Tests/Fixtures/ (with its origin in its README) and find it relative to the file." >&2
    exit 1
fi
echo "check-standalone: no test, fuzz, script, bench or Makefile line refers outside the repository"
