#!/usr/bin/env bash
# Set up a fresh Debian machine for fastfax: the system packages the tests use (SpanDSP,
# libtiff, ghostscript, tesseract, efax, tshark, SIPp, kamailio, chromium and its driver,
# PostgreSQL, a C compiler), then fastfax itself with its test extras, built from this checkout
# (editable, so tests and benchmarks run against the compiled extensions in src/).
set -euo pipefail
cd "$(dirname "$0")/.."

packages="gcc libc6-dev libspandsp-dev libtiff-dev libtiff-tools ghostscript tesseract-ocr tesseract-ocr-eng efax tshark sip-tester kamailio chromium chromium-driver postgresql openssl"
if ! dpkg -s $packages >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $packages
fi
python3 -m pip install -q -e ".[test]"
