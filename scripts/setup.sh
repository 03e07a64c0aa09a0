#!/usr/bin/env bash
# Create .venv and install the studio with its test tools.
#
# The embedded model's runtime, llama-cpp-python, compiles llama.cpp from source. Its default build uses
# `-march=native`: the binary then carries every instruction the building CPU advertises (AVX-512, AMX), and it
# dies with SIGILL on a CPU, or a kernel, that lacks one of them (seen: AMX advertised, tile state not enabled by
# the kernel). So we build a fixed x86-64 baseline instead — AVX, AVX2, FMA, F16C, BMI2; no AVX-512, no AMX —
# which every x86-64 CPU of the last decade runs (docs/runtime.md has the reasons and the measured cost).
#
# pip's wheel cache ignores CMAKE_ARGS, so a wheel built once with other flags would be reused silently. The
# wheel is built with --no-cache-dir into a directory of our own keyed by the package version, the flags and the
# Python tag, and installed from there with --no-index: a wheel is only ever reused for the same key.
# LLAMA_CMAKE_ARGS overrides the flags (e.g. "-DGGML_NATIVE=ON" for a machine-specific build); the key follows.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LLAMA_VERSION=0.3.36
BASELINE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF"
LLAMA_CMAKE_ARGS=${LLAMA_CMAKE_ARGS:-$BASELINE_ARGS}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PY=.venv/bin/python
$PY -m pip install --quiet --upgrade pip

PYTAG=$($PY -c 'import sys, platform; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}")')
KEY=$(printf '%s\n%s\n%s\n' "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" "$PYTAG" | sha256sum | cut -c1-16)
WHEELS=${DATAGEN_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/genetic-prompt-studio/wheels}/llama-cpp-python-$LLAMA_VERSION-$KEY
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "Building llama-cpp-python $LLAMA_VERSION for x86-64 ($LLAMA_CMAKE_ARGS); 5-10 minutes, once per machine..."
  mkdir -p "$WHEELS.partial"
  start=$(date +%s)
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" FORCE_CMAKE=1 $PY -m pip wheel --quiet --no-cache-dir --no-deps \
    --wheel-dir "$WHEELS.partial" "llama-cpp-python==$LLAMA_VERSION"
  printf 'version=%s\ncmake_args=%s\npython=%s\nbuilt=%s\nbuild_seconds=%s\n' "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" \
    "$PYTAG" "$(date -u +%FT%TZ)" "$(( $(date +%s) - start ))" > "$WHEELS.partial/BUILD"
  rm -rf "$WHEELS" && mv "$WHEELS.partial" "$WHEELS"   # complete or absent: an interrupted build is redone
fi
# The venv's runtime is replaced unless it is byte for byte the one built for this key: its marker holds the
# key and the hash of the installed libraries, so a build that pip or a user installed over it since is noticed.
installed_hash() {
  $PY - <<'PY'
import hashlib, importlib.util, pathlib
spec = importlib.util.find_spec("llama_cpp")
lib = pathlib.Path(next(iter(spec.submodule_search_locations))) / "lib" if spec else None
files = sorted(p for p in lib.glob("*.so*") if not p.is_symlink()) if lib and lib.is_dir() else []
print(hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest() if files else "none")
PY
}
if [ "$(cat .venv/llama-build-key 2>/dev/null)" != "$KEY $(installed_hash)" ]; then
  $PY -m pip install --quiet --no-index --no-deps --force-reinstall --find-links "$WHEELS" \
    "llama-cpp-python==$LLAMA_VERSION"
  cp "$WHEELS/BUILD" .venv/llama-build
  echo "$KEY $(installed_hash)" > .venv/llama-build-key
fi
$PY -m pip install --quiet -e '.[dev]'
