#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real, only those missing.
# mosquitto: MQTT broker; gstreamer + gst-rtsp-server + python3-gi: RTSP server;
# xvfb + x11-utils (xwininfo) + ffmpeg (x11grab): live window test; chromium + chromium-driver:
# web page test; openssl: MQTT TLS certificates; systemd: `systemd-analyze verify` of the unit.
# Under CI=true a missing one fails its tests (tests/conftest.py), so this list is what CI needs.
set -euo pipefail
pkgs=(mosquitto xvfb python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
      gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad
      gstreamer1.0-libav gstreamer1.0-tools chromium chromium-driver ffmpeg x11-utils openssl
      systemd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "system: all packages present"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
echo "system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts mosquitto as a service on install; tests start their own on free ports.
(command -v systemctl >/dev/null && $SUDO systemctl disable --now mosquitto) >/dev/null 2>&1 || true
