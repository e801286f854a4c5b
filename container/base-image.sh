#!/usr/bin/env bash
# A stand-in for python:3.11-slim-bookworm, made from Debian bookworm's own packages, for hosts
# that reach Debian's archive and PyPI but no image registry. Tags it (default
# localhost/python:3.11-slim-bookworm) so `--build-arg PYTHON_IMAGE=...` points the project's
# Dockerfile at it; the Dockerfile itself stays as users build it on a normal host.
#
# What the Dockerfile needs from its base, and how the stand-in provides it:
#   `python` and `pip` first on PATH, pip-managed (not dpkg-managed) so that the serving stage
#   can `python -m pip uninstall pip setuptools wheel`: a venv at /usr/local over Debian's
#   python3.11, which is where the official image keeps its own build of CPython;
#   `python -m venv`, groupadd/useradd, ldconfig, find: python3-venv, passwd, libc-bin,
#   findutils (minbase has the last three);
#   no compiler, no docs, no apt lists: minbase, and the clean-up debian:bookworm-slim does.
#
# Usage: container/base-image.sh [TAG]   (root; debootstrap and podman installed)
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), BASE_PIP (the pip release
# put in /usr/local; >= 24.2 so that pip trusts the system CA store, see README), PIP (the
# host's pip that fetches it, default python3 -m pip), WORK_DIR.
set -euo pipefail

tag=${1:-localhost/python:3.11-slim-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
base_pip=${BASE_PIP:-pip==26.3}
pip=${PIP:-python3 -m pip}
work=${WORK_DIR:-$(mktemp -d /var/tmp/alexnet-base.XXXXXX)}
rootfs=$work/rootfs
trap 'umount -R "$rootfs/proc" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "base: debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }

# pip from PyPI (fetched by the host's pip: the chroot has no network set-up of its own).
mkdir -p "$rootfs/tmp/wheels"
$pip download --quiet --no-deps --dest "$rootfs/tmp/wheels" "$base_pip"

mount -t proc proc "$rootfs/proc"
chroot "$rootfs" /bin/sh -eu <<'CHROOT'
python3 -m venv /usr/local
/usr/local/bin/python -m pip install --quiet --no-index --upgrade /tmp/wheels/pip-*.whl
rm -rf /tmp/wheels /root/.cache
# What debian:bookworm-slim leaves out, now and for any later apt-get install.
cat > /etc/dpkg/dpkg.cfg.d/slim <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
find /usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/info/* /var/lib/apt/lists/* /var/cache/apt/* /var/log/*
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find /usr/local -depth -type d -name __pycache__ -exec rm -rf {} +
CHROOT
umount "$rootfs/proc"

version=$(chroot "$rootfs" /usr/local/bin/python -c 'import platform; print(platform.python_version())')
echo "base: python $version, $(chroot "$rootfs" /usr/local/bin/pip --version | cut -d' ' -f1-2)"
tar --numeric-owner -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PYTHON_VERSION=$version" \
    --change "LABEL org.opencontainers.image.description=stand-in-for-python:3.11-slim-bookworm,debootstrap-minbase" \
    --change 'CMD ["python3"]' \
    - "$tag" >/dev/null
echo "base: tagged $tag ($(podman image inspect --format '{{.Size}}' "$tag") bytes)"
