#!/usr/bin/env bash
# The one prepared command for an offline GPU host (docs/gpu.md): checks and unpacks the pieces
# that bench/gpu/prepare.sh made (carried into bench/gpu/pieces/ beforehand), puts the PyTorch
# environment's CUDA 13 and cuDNN libraries on LD_LIBRARY_PATH, runs a preflight on the tiny model
# (does the CUDA provider load?), then `deno task bench gpu` on full-size SVD-XT. Logs and the JSON
# line go to $OUT (the device tool's folder) or bench/gpu/out/.
#
# Usage: bash bench/gpu/run.sh [--no-preflight] [bench gpu options, e.g. --steps 25 --runs 2]
#        bash bench/gpu/run.sh --dry-run   (any machine: the pieces and the tiny model on the CPU)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-bench/gpu/out}
mkdir -p "$out"
exec > >(tee "$out/run.log") 2>&1
preflight=1 dry=0
if [[ "${1:-}" == "--no-preflight" ]]; then preflight=0; shift; fi
if [[ "${1:-}" == "--dry-run" ]]; then dry=1; shift; fi

# 1. The pieces: all there, intact, unpacked once into .gpu/ (git-ignored).
pieces=bench/gpu/pieces
(cd "$pieces" && sha256sum --quiet -c SHA256SUMS)
stamp=$(sha256sum "$pieces/SHA256SUMS" | cut -c1-16)
if [[ ! -f .gpu/$stamp ]]; then
  rm -rf .gpu bench/gpu/node_modules
  mkdir -p .gpu
  cat "$pieces"/part-* | xz -dc | tar -x -C .gpu
  mv .gpu/node_modules bench/gpu/node_modules
  touch ".gpu/$stamp"
fi

# 2. The environment: Deno and ffmpeg from the pieces, CUDA and cuDNN from PyTorch's wheels.
export PATH="$PWD/.gpu:$PATH" FFMPEG_PATH="$PWD/.gpu/ffmpeg" DENO_DIR="$PWD/.gpu/deno_dir"
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
deno --version | head -1
if [[ $dry == 1 ]]; then
  deno run --cached-only --config bench/gpu/deno.json --allow-all tests/bench/main.ts gpu \
    --provider cpu --deno-config bench/gpu/deno.json --cached-only --config configs/tiny.yaml --frames 4 --steps 2 \
    --width 128 --height 64 --runs 1 | tee "$out/dry-run.json"
  exit 0
fi
site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cuda_libs=$(ls -d "$site"/nvidia/*/lib 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="${cuda_libs}${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
bench=(deno run --cached-only --config bench/gpu/deno.json --allow-all tests/bench/main.ts gpu
  --provider cuda --deno-config bench/gpu/deno.json --cached-only)

# 3. Preflight: the tiny model on CUDA, seconds (a missing library fails here, not after the
#    full-size conversion).
if [[ $preflight == 1 ]]; then
  "${bench[@]}" --config configs/tiny.yaml --frames 4 --steps 2 --width 128 --height 64 --runs 1 |
    tee "$out/preflight.json"
fi

# 4. The benchmark: full-size SVD-XT, fp16, 576×1024, 25 frames, 25 steps, cold and warm runs.
"${bench[@]}" --config configs/svd_xt.yaml --frames 25 --steps 25 --width 1024 --height 576 \
  --log "$out/generation.log" "$@" |
  tee "$out/bench-gpu.json"
