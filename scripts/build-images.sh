#!/usr/bin/env bash
# Build the rrmbed docker images without any image registry.
#
#   scripts/build-images.sh            # base image (cached), wheelhouse, rrmbed:local
#   scripts/build-images.sh docker     # only: tools installed? daemon up? (exit 1 and why if not)
#
# Steps, each timed:
#   1. tools     install docker.io / docker-compose / debootstrap with apt when missing
#   2. dockerd   start a daemon when none answers; wait for `docker info`
#   3. base      rrmbed-base:bookworm from `debootstrap --variant=minbase` + `docker import`
#                (skipped when the image exists; it carries python3.11 and mosquitto)
#   4. wheels    ./wheelhouse: rrmbed's dependencies as cp311 manylinux wheels
#                (offline when the wheelhouse already satisfies them; torch from $TORCH_WHEEL_DIR)
#   5. image     rrmbed:local, `docker build --build-arg BASE_IMAGE=rrmbed-base:bookworm`
#   6. smoke     `docker run --rm rrmbed:local rrmbed --help`
#
# Environment (all optional):
#   BASE_TAG=rrmbed-base:bookworm  IMAGE_TAG=rrmbed:local  DEPS_TAG=rrmbed-deps:local
#   SUITE=bookworm
#   DEBIAN_MIRROR=<url>            default: the first bookworm URI apt uses on this host
#   WHEELHOUSE=<repo>/wheelhouse   TORCH_WHEEL_DIR=/opt/wheels
#   DOCKERD_LOG=/tmp/dockerd.log   DOCKERD_ARGS="" (e.g. "--iptables=false")
#   DOCKER_WAIT_S=60               REBUILD_BASE=1 forces step 3
#   SKIP_SMOKE=1                   skip step 6
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_TAG="${BASE_TAG:-rrmbed-base:bookworm}"
IMAGE_TAG="${IMAGE_TAG:-rrmbed:local}"
DEPS_TAG="${DEPS_TAG:-rrmbed-deps:local}"
SUITE="${SUITE:-bookworm}"
WHEELHOUSE="${WHEELHOUSE:-$REPO/wheelhouse}"
TORCH_WHEEL_DIR="${TORCH_WHEEL_DIR:-/opt/wheels}"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
DOCKER_WAIT_S="${DOCKER_WAIT_S:-60}"
PYTHON="${PYTHON:-$(command -v python3)}"

log() { printf '[build-images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

TIMINGS=()
step() {  # step NAME FUNCTION
    local name="$1"; shift
    local t0 t1
    t0=$(date +%s.%N)
    log "== $name"
    "$@"
    t1=$(date +%s.%N)
    local dt
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    TIMINGS+=("$(printf '%-8s %7ss' "$name" "$dt")")
    log "== $name done in ${dt}s"
}

# ---------------------------------------------------------------- 1. tools
ensure_tools() {
    local missing=()
    command -v docker >/dev/null || missing+=(docker.io)
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; then
        missing+=(docker-compose)
    fi
    if [ "${#missing[@]}" -eq 0 ]; then
        log "docker, dockerd, debootstrap, compose present"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]} and not root: install them first"
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get"
    log "installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# ---------------------------------------------------------------- 2. dockerd
start_dockerd() {  # start_dockerd EXTRA_ARGS...
    log "starting dockerd $* (log: $DOCKERD_LOG)"
    # setsid: the daemon outlives this script and is not killed with its process group.
    setsid dockerd ${DOCKERD_ARGS:-} "$@" >"$DOCKERD_LOG" 2>&1 < /dev/null &
    DOCKERD_PID=$!
}

wait_docker() {  # -> 0 when `docker info` answers within DOCKER_WAIT_S
    local deadline=$((SECONDS + DOCKER_WAIT_S))
    while [ "$SECONDS" -lt "$deadline" ]; do
        docker info >/dev/null 2>&1 && return 0
        if [ -n "${DOCKERD_PID:-}" ] && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            return 1  # the daemon we started died
        fi
        sleep 1
    done
    return 1
}

bridge_without_netfilter() {
    # Without docker's iptables rules, bridged packets between containers must not go
    # through iptables: a FORWARD policy of DROP (left by an earlier dockerd, or the
    # host's firewall) would silently cut the compose network.
    local knob=/proc/sys/net/bridge/bridge-nf-call-iptables
    if [ -r "$knob" ] && [ "$(cat "$knob")" != "0" ]; then
        log "setting net.bridge.bridge-nf-call-iptables=0 (bridged traffic bypasses iptables)"
        echo 0 > "$knob" || log "WARNING: could not set $knob; containers may not reach each other"
    fi
}

ensure_dockerd() {
    if docker info >/dev/null 2>&1; then
        log "docker daemon answers ($(docker info --format '{{.ServerVersion}} {{.Driver}}'))"
        return
    fi
    if pgrep -x dockerd >/dev/null; then
        log "a dockerd is running but does not answer yet; waiting"
        wait_docker && return
        die "dockerd is running but 'docker info' fails: $(docker info 2>&1 >/dev/null | tail -n 2)"
    fi
    [ "$(id -u)" -eq 0 ] || die "no docker daemon and not root: cannot start dockerd"
    start_dockerd
    if wait_docker; then
        log "dockerd up ($(docker info --format '{{.ServerVersion}} {{.Driver}}'))"
        return
    fi
    log "dockerd failed; last log lines:"
    tail -n 15 "$DOCKERD_LOG" >&2 || true
    if grep -qiE 'iptables|nat|bridge' "$DOCKERD_LOG"; then
        # Hosts without netfilter: user-defined bridges still connect containers
        # to each other (compose only needs that), just no NAT to the outside.
        kill "$DOCKERD_PID" 2>/dev/null || true
        sleep 1
        start_dockerd --iptables=false --ip-masq=false
        if wait_docker; then
            log "dockerd up with --iptables=false --ip-masq=false"
            bridge_without_netfilter
            return
        fi
        tail -n 15 "$DOCKERD_LOG" >&2 || true
    fi
    die "docker daemon not usable: $(docker info 2>&1 >/dev/null | tail -n 2)"
}

# ---------------------------------------------------------------- 3. base image
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local uri=""
    # deb822 files: first URIs of a stanza whose Suites name the suite (not -security).
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v suite="$SUITE" '
            /^URIs:/ { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) { print u; exit } }
            /^$/ { u = "" }' "$f")
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' \
            /etc/apt/sources.list | sed 's/\[.*\]//')
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
    if [ -z "${REBUILD_BASE:-}" ] && docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
        log "$BASE_TAG exists: skipped (REBUILD_BASE=1 to rebuild)"
        return
    fi
    local mirror root
    mirror=$(debian_mirror)
    root=$(mktemp -d /var/tmp/rrmbed-rootfs.XXXXXX)
    log "debootstrap $SUITE from $mirror into $root"
    # shellcheck disable=SC2064
    trap "umount -R '$root/proc' '$root/sys' 2>/dev/null || true; rm -rf --one-file-system '$root'" EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,mosquitto \
        "$SUITE" "$root" "$mirror" > /var/tmp/rrmbed-debootstrap.log 2>&1 \
        || { tail -n 20 /var/tmp/rrmbed-debootstrap.log >&2; die "debootstrap failed"; }
    # debootstrap unmounts what it mounted; make sure before tar and rm.
    if grep -q " $root/" /proc/mounts; then
        die "something is still mounted under $root"
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
    log "docker import -> $BASE_TAG"
    tar --numeric-owner -C "$root" -c . | docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        - "$BASE_TAG" >/dev/null
    rm -rf --one-file-system "$root"
    trap - EXIT
    docker run --rm "$BASE_TAG" python3 --version >&2
}

# ---------------------------------------------------------------- 4. wheelhouse
requirements() {  # rrmbed's runtime requirements (+ build backend for the in-image build)
    "$PYTHON" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)
print("\n".join(project["project"]["dependencies"]))
print("\n".join(project["build-system"]["requires"]))
EOF
    local torch_whl
    torch_whl=$(ls "$TORCH_WHEEL_DIR"/torch-*cp311*manylinux*x86_64.whl 2>/dev/null | sort | tail -n 1 || true)
    if [ -n "$torch_whl" ]; then
        # Pin the local CPU wheel so no index can offer a bigger (CUDA) torch.
        basename "$torch_whl" | awk -F- '{ print "torch==" $2 }'
    fi
}

build_wheelhouse() {
    mkdir -p "$WHEELHOUSE"
    # ~270 MB of wheels must never be committed: the directory ignores itself.
    [ -f "$WHEELHOUSE/.gitignore" ] || printf '*\n' > "$WHEELHOUSE/.gitignore"
    local req
    req=$(mktemp)
    requirements > "$req"
    log "requirements: $(tr '\n' ' ' < "$req")"
    # cp311 manylinux wheels that bookworm's glibc 2.36 accepts (pip does not expand the list).
    local platform=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311)
    local minor
    for minor in $(seq 36 -1 17); do platform+=(--platform "manylinux_2_${minor}_x86_64"); done
    platform+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64
               --platform manylinux1_x86_64)
    # Fast path: the wheelhouse already satisfies everything -> no network at all.
    if "$PYTHON" -m pip download -q --no-index --find-links "$WHEELHOUSE" -d "$WHEELHOUSE" \
            "${platform[@]}" -r "$req" >/dev/null 2>&1; then
        log "wheelhouse complete (offline check): $(ls "$WHEELHOUSE" | wc -l) wheels"
    else
        log "downloading into $WHEELHOUSE"
        "$PYTHON" -m pip download -q --find-links "$TORCH_WHEEL_DIR" --find-links "$WHEELHOUSE" \
            -d "$WHEELHOUSE" "${platform[@]}" -r "$req"
        log "wheelhouse: $(ls "$WHEELHOUSE" | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1)"
    fi
    rm -f "$req"
}

# ---------------------------------------------------------------- 5. image
build_image() {
    # The legacy builder is enough (no buildx on this host); it prints a deprecation note.
    # The deps stage is tagged so that its layers (the ~1.2 GB venv) stay cached when the
    # dangling images of earlier builds are pruned below.
    local args=(--build-arg BASE_IMAGE="$BASE_TAG")
    DOCKER_BUILDKIT=0 docker build -q "${args[@]}" --target deps -t "$DEPS_TAG" "$REPO" >&2
    DOCKER_BUILDKIT=0 docker build -q "${args[@]}" -t "$IMAGE_TAG" "$REPO" >&2
    # Only untagged images from this Dockerfile (label set in every stage).
    docker image prune -f --filter label=org.rrmbed.stage >/dev/null
}

smoke() {
    docker run --rm "$IMAGE_TAG" rrmbed --help >/dev/null \
        || die "'docker run --rm $IMAGE_TAG rrmbed --help' failed"
    log "docker run --rm $IMAGE_TAG rrmbed --help: ok"
}

usage() {
    echo "usage: $0 [all|docker|base|wheels|image]..." >&2
    echo "  all (default): every step; docker: tools + dockerd only (is docker usable here?)" >&2
    exit 2
}
want=("$@")
[ "${#want[@]}" -gt 0 ] || want=(all)
steps=()
for w in "${want[@]}"; do
    case "$w" in
        all) steps+=(tools dockerd base wheels image smoke) ;;
        docker) steps+=(tools dockerd) ;;
        base) steps+=(tools dockerd base) ;;
        wheels) steps+=(wheels) ;;
        image) steps+=(tools dockerd base wheels image smoke) ;;
        -h|--help) usage ;;
        *) usage ;;
    esac
done
[ -z "${SKIP_SMOKE:-}" ] || steps=("${steps[@]/smoke}")

t_start=$SECONDS
declare -A done_steps=()
for s in "${steps[@]}"; do
    [ -n "$s" ] || continue
    [ -z "${done_steps[$s]:-}" ] || continue
    done_steps[$s]=1
    case "$s" in
        tools) step tools ensure_tools ;;
        dockerd) step dockerd ensure_dockerd ;;
        base) step base build_base ;;
        wheels) step wheels build_wheelhouse ;;
        image) step image build_image ;;
        smoke) step smoke smoke ;;
    esac
done
log "timings:"
for t in "${TIMINGS[@]}"; do log "  $t"; done
log "  total    $((SECONDS - t_start))s"
