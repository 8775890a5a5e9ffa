#!/usr/bin/env bash
# Before a GPU run: put what the GPU machine cannot reach into .gpu-carry/ (git-ignored):
# the DeZero suite from ../shared and DeZero's snapshot exported from $DEZERO_REPO.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${DEZERO_REPO:?set DEZERO_REPO to the DeZero snapshot (the bare git dir fetch returned)}"
rm -rf .gpu-carry && mkdir -p .gpu-carry/dezero-src
cp -r ../shared/dezero-suite .gpu-carry/dezero-suite
git --git-dir="$DEZERO_REPO" archive HEAD tests dezero steps examples | tar -x -C .gpu-carry/dezero-src
du -sh .gpu-carry
