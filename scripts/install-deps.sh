#!/usr/bin/env bash
# install-deps.sh - Debian packages needed to build and test zimage
# (libmicrohttpd: `zimage serve`; chromium, chromium-driver, python3-selenium: its web page test).
set -euo pipefail
PKGS="build-essential pkg-config libjansson-dev libpng-dev zlib1g-dev libutf8proc-dev libpcre2-dev libjpeg62-turbo-dev python3-pil clang libclang-rt-dev
      libmicrohttpd-dev chromium chromium-driver python3-selenium"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
