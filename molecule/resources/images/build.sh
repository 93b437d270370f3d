#!/usr/bin/env bash
# Build the local Molecule images fastapi-app-test:{bookworm,trixie}.
# Usage: build.sh bookworm|trixie|all
# Nothing is pulled from a registry: the base is debootstrapped from the Debian
# mirror and imported, so this works where only deb.debian.org is reachable.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_CA=/etc/ssl/certs/ca-certificates.crt
LABEL=fastapi-app.build-inputs
# dbus: logind and hostnamectl/timedatectl (used by Ansible modules) need it.
INCLUDE=systemd,systemd-sysv,dbus,python3,ca-certificates

log() { echo "build.sh: $*" >&2; }

build() {
    local distro=$1 base=fastapi-app-base:$1 image=fastapi-app-test:$1 hash have
    # Distro is part of the hash so the two images never share a label value.
    hash=$(cat "$here/Dockerfile" "$here/build.sh" "$HOST_CA" <(echo "$distro $INCLUDE") | sha256sum | cut -c1-16)
    have=$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$image" 2>/dev/null || true)
    if [[ $have == "$hash" ]]; then
        log "$image is up to date (inputs $hash), nothing to do"
        return
    fi

    if docker image inspect "$base" >/dev/null 2>&1; then
        log "$base exists, skipping debootstrap (docker rmi it to force one)"
    else
        [[ $EUID -eq 0 ]] || { log "debootstrap needs root"; exit 1; }
        if ! command -v debootstrap >/dev/null 2>&1; then
            log "installing debootstrap"
            DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap ||
                { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap; }
        fi
        # bookworm's debootstrap (1.0.128) ships scripts/trixie -> sid; an older
        # one would not, and the sid script is right for any current suite.
        local scripts=/usr/share/debootstrap/scripts
        [[ -e $scripts/$distro ]] || ln -s sid "$scripts/$distro"

        rootfs=$(mktemp -d /var/tmp/fastapi-app-rootfs.XXXXXX)
        trap 'rm -rf "$rootfs"' EXIT
        log "debootstrapping $distro into $rootfs (a few minutes)"
        debootstrap --variant=minbase --include="$INCLUDE" "$distro" "$rootfs" "$MIRROR" >&2
        # Downloaded .debs and lists only bloat the base; the Dockerfile refreshes lists.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        log "importing $base"
        tar --numeric-owner -C "$rootfs" -c . | docker import - "$base" >/dev/null
        rm -rf "$rootfs"
        trap - EXIT
    fi

    # Minimal build context: just the Dockerfile and the CA, never the repo.
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' EXIT
    cp "$here/Dockerfile" "$ctx/"
    cp "$HOST_CA" "$ctx/host-ca-certificates.crt"
    log "building $image (inputs $hash)"
    DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE="$base" --build-arg DISTRO="$distro" \
        --label "$LABEL=$hash" -t "$image" "$ctx" >&2
    rm -rf "$ctx"
    trap - EXIT
    log "built $image"
}

case ${1:-} in
    bookworm | trixie) targets=("$1") ;;
    all) targets=(bookworm trixie) ;;
    *) echo "usage: $0 bookworm|trixie|all" >&2; exit 2 ;;
esac

"$here/../../../scripts/ensure-docker.sh"
for t in "${targets[@]}"; do build "$t"; done
