#!/usr/bin/env bash
# Installs the Debian packages shmarray needs (only those missing), then configures and builds.
#   tools/setup.sh [BUILD_DIR] [extra cmake args...]      (default BUILD_DIR: build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
shift || true

PACKAGES=(build-essential cmake ninja-build pkg-config libboost1.81-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libflatbuffers-dev flatbuffers-compiler
  pybind11-dev python3-dev python3-numpy python3-pandas python3-pytest
  clang-16 libclang-rt-16-dev  # fuzz/run_fuzz.sh: clang 14's libFuzzer cannot build std::expected
  systemd  # systemd-socket-activate and systemd-analyze, for the socket activation and unit tests
  help2man dpkg-dev file  # man pages from --help; cpack -G DEB (dpkg-shlibdeps, file)
  python3-venv python3-pip python3-setuptools python3-wheel  # pip install . (docs/python.md)
  libucx-dev ucx-utils libsodium-dev iproute2)  # mirrors across hosts (docs/across-hosts.md)
# PyTorch (tests/python/test_torch.py, examples/python/torch_step.py) is opt-in: 163 more
# packages, about 2 minutes (1:48 measured on the 2-vCPU dev VM, download included); its tests
# skip with the reason when it is missing.
[ "${SHMARRAY_WITH_TORCH:-0}" = 1 ] && PACKAGES+=(python3-torch)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> configuring $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPython3_EXECUTABLE=/usr/bin/python3 "$@" >/dev/null
echo "==> building (this takes a few minutes on 2 cores)"
cmake --build "$BUILD_DIR" -j"$(nproc)"
