#!/bin/sh
# Prints bansd's version from git: the tag without its "v" on a tagged
# commit, "<tag>-N-g<commit>" past it, "0.0.0-dev+<commit>" with no tag
# at all; "-dirty" (or ".dirty" after "+") when the tree has changes.
# Outside a git checkout: 0.0.0-dev.
set -eu
d=$(git describe --tags --always --dirty 2>/dev/null) || { echo 0.0.0-dev; exit 0; }
case $d in
  v[0-9]*) echo "${d#v}" ;;
  [0-9]*.*) echo "$d" ;;
  *) # no tag: describe gave the abbreviated commit (and maybe -dirty)
     c=${d%-dirty}
     if [ "$c" != "$d" ]; then echo "0.0.0-dev+$c.dirty"; else echo "0.0.0-dev+$c"; fi ;;
esac
