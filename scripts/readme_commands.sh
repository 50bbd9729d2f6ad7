#!/usr/bin/env bash
# Runs a README command block as written, so that CI proves it works: the ```sh block that follows the line
# `<!-- readme-commands: NAME -->` in README.md, from the repository root, stopping at the first failure.
# Usage: scripts/readme_commands.sh NAME   (as root without sudo, `sudo` runs the command itself)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/readme_commands.sh NAME}
block=$(awk -v marker="<!-- readme-commands: $name -->" '
  $0 == marker { found = 1; next }
  found && /^```sh$/ { inside = 1; next }
  inside && /^```$/ { exit }
  inside { print }' README.md)
[ -n "$block" ] || { echo "README.md has no sh block after <!-- readme-commands: $name -->" >&2; exit 1; }
echo "README commands '$name':"
echo "$block"
prelude='set -euo pipefail -x'
if [ "$(id -u)" -eq 0 ] && ! command -v sudo >/dev/null; then
  prelude+=$'\nsudo() { "$@"; }'
fi
bash -c "$prelude"$'\n'"$block"
