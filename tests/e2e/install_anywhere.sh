#!/usr/bin/env bash
# `cmake --install BUILD --prefix P` gives an oss4 that runs from any folder: installed into a temporary prefix, it
# tokenizes, writes a tiny model and generates from it in another folder. As root, the source tree's data folder
# is also hidden behind an empty one (a private mount namespace), so nothing is read from the source tree.
# usage: install_anywhere.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d /tmp/oss4-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > /dev/null
bin=$work/prefix/bin/oss4
[ -x "$bin" ] || { echo "no $bin after cmake --install"; exit 1; }
want=$("$build/oss4" tokenize --text "Hello from oss4!")
mkdir "$work/elsewhere" "$work/empty"
body="cd '$work/elsewhere' && '$bin' tokenize --text 'Hello from oss4!' && '$bin' synth --config tiny --out m/tiny > /dev/null && '$bin' generate -m m/tiny -n 4 --prompt 'Hi' -q > /dev/null"
if [ "$(id -u)" = 0 ] && unshare -m true 2> /dev/null; then
  got=$(unshare -m bash -c "mount --bind '$work/empty' '$src/data' && $body")
  echo "ran with $src/data hidden"
else
  got=$(bash -c "$body")
  echo "not root: ran without hiding $src/data"
fi
[ "$got" = "$want" ] || { echo "installed oss4 tokenized differently: '$got' vs '$want'"; exit 1; }
echo "install-anywhere: ok ($got)"
