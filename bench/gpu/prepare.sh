#!/usr/bin/env bash
# Prepares, on a machine that reaches the npm registry, everything `bench/gpu/run.sh` needs on an
# offline GPU host with CUDA 13 libraries in a PyTorch environment (docs/gpu.md):
#
#   deno      Deno 2.9.6 (npm @deno/linux-x64-glibc)
#   node_modules  the npm packages of bench/gpu/deno.json: onnxruntime-node 1.29.0, the version the
#             CUDA provider below was built for (core and provider must match exactly), and the
#             pipeline's few others; linux-x64 binaries only
#   the CUDA execution provider of ONNX Runtime 1.29.0 for CUDA 13
#             (npm com.github.asus4.onnxruntime.linux-x64-gpu 0.4.9), placed beside
#             onnxruntime-node's libonnxruntime.so.1
#   ffmpeg    a static ffmpeg for the mp4 (npm @ffmpeg-installer/linux-x64 4.1.0)
#
# packed as one tar.xz split into pieces of at most PIECE_MIB MiB (default 28: a device call
# carries at most 64 MiB, and the checkout travels with each piece) in bench/gpu/pieces/
# (git-ignored), with SHA256SUMS. Usage: bash bench/gpu/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
PIECE_MIB=${PIECE_MIB:-28}
DENO_VERSION=2.9.6
ORT_VERSION=1.29.0
CUDA_PROVIDER=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
FFMPEG=@ffmpeg-installer/linux-x64@4.1.0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
mkdir -p "$stage"

echo "1/4 npm packages: @deno/linux-x64-glibc@$DENO_VERSION $CUDA_PROVIDER $FFMPEG" >&2
(cd "$work" && npm pack --silent "@deno/linux-x64-glibc@$DENO_VERSION" "$CUDA_PROVIDER" "$FFMPEG" >/dev/null)
tar -xzf "$work"/deno-linux-x64-glibc-*.tgz -C "$work" package/deno
mv "$work/package/deno" "$stage/deno"
tar -xzf "$work"/ffmpeg-installer-linux-x64-*.tgz -C "$work" package/ffmpeg
mv "$work/package/ffmpeg" "$stage/ffmpeg"
tar -xzf "$work"/com.github.asus4.onnxruntime.linux-x64-gpu-*.tgz -C "$work" \
  package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so \
  package/Plugins/Linux/x64/libonnxruntime_providers_shared.so

echo "2/4 node_modules for bench/gpu/deno.json (onnxruntime-node@$ORT_VERSION)" >&2
rm -rf bench/gpu/node_modules
DENO_DIR="$work/deno_dir" "$stage/deno" install --config bench/gpu/deno.json \
  --entrypoint tests/bench/gpu.ts tests/bench/gpu_generation.ts >&2
# The registry metadata Deno consults before it trusts node_modules (no network on the host).
mkdir -p "$stage/deno_dir"
(cd "$work/deno_dir" && find npm -name registry.json -print0 | tar --null -T - -cf -) |
  tar -xf - -C "$stage/deno_dir"
ort=$(ls -d bench/gpu/node_modules/.deno/onnxruntime-node@"$ORT_VERSION"/node_modules/onnxruntime-node)
# Only the linux-x64 native binaries travel.
find "$ort/bin/napi-v6" -mindepth 1 -maxdepth 2 -type d ! -path "*/linux" ! -path "*/linux/x64" \
  -exec rm -rf {} +
cp "$work"/package/Plugins/Linux/x64/libonnxruntime_providers_*.so "$ort/bin/napi-v6/linux/x64/"
ls "$ort/bin/napi-v6/linux/x64/" >&2

echo "3/4 pack (xz)" >&2
cp -a bench/gpu/node_modules "$stage/node_modules"
tar -C "$stage" -cf - . | xz -T0 -6 > "$work/bundle.tar.xz"

echo "4/4 pieces of at most $PIECE_MIB MiB" >&2
rm -rf bench/gpu/pieces
mkdir -p bench/gpu/pieces
split -b "${PIECE_MIB}m" -d -a 2 "$work/bundle.tar.xz" bench/gpu/pieces/part-
(cd bench/gpu/pieces && sha256sum part-* > SHA256SUMS)
ls -l bench/gpu/pieces >&2
echo "Carry each piece to the GPU host in its own call (docs/gpu.md), SHA256SUMS with the first;" >&2
echo "then run: bash bench/gpu/run.sh" >&2
