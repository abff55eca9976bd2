#!/bin/sh
# Prepares a Debian machine to run Strata and its tests: installs the engine and
# tools from Debian's packages when missing, starts dockerd when no engine
# answers, and builds the offline base image the tests use. Idempotent: on a
# machine that already has all of this, it changes nothing.
set -eu

log() { printf 'setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; exit 1; fi
}

# The Debian client lives in /usr/bin; prefer it over any other docker on PATH.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=docker

engine_answers() { "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install_packages() {
  missing=""
  command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
  command -v runsc >/dev/null 2>&1 || missing="$missing runsc"
  command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
  command -v zstd >/dev/null 2>&1 || missing="$missing zstd"
  [ -x /bin/busybox ] || missing="$missing busybox-static"
  if [ -n "$missing" ]; then
    log "installing:$missing"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
}

# Experimental mode (checkpoints) and the gVisor runtime, without network in the
# sandbox kernel. Only written when no config exists, so an operator's own
# daemon.json is never overwritten.
write_daemon_config() {
  if [ ! -f /etc/docker/daemon.json ]; then
    as_root mkdir -p /etc/docker
    cat <<'JSON' | as_root tee /etc/docker/daemon.json >/dev/null
{
  "experimental": true,
  "runtimes": {
    "runsc": { "path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"] }
  }
}
JSON
  fi
}

# Whether a process with exactly this name runs (read from /proc: no procps needed).
running() {
  for comm in /proc/[0-9]*/comm; do
    [ "$(cat "$comm" 2>/dev/null)" = "$1" ] && return 0
  done
  return 1
}

# When the machine's processes ended without the engine's own shutdown (and /run
# is not a tmpfs), dockerd and containerd leave pid files and task state behind
# naming pids that may now belong to any process, this script's parents
# included: dockerd signals the pid in containerd's pid file, and containerd's
# cleanup of a dead task kills the task's recorded pid. With neither daemon
# running, that state is stale: remove it, as a reboot would.
clear_stale_engine_state() {
  if running dockerd || running containerd; then return; fi
  as_root rm -f /var/run/docker.pid /run/docker/containerd/containerd.pid
  as_root rm -rf /run/docker/containerd/daemon /run/docker/runtime-runc /run/docker/runtime-runsc /run/containerd/s
}

start_engine() {
  if engine_answers; then return; fi
  write_daemon_config
  clear_stale_engine_state
  log "starting dockerd"
  as_root mkdir -p /var/log
  # No init system is assumed: start the daemon detached from this shell.
  as_root sh -c 'nohup setsid dockerd >/var/log/strata-dockerd.log 2>&1 </dev/null &'
  i=0
  until engine_answers; do
    i=$((i + 1))
    if [ "$i" -gt 120 ]; then log "dockerd did not answer; see /var/log/strata-dockerd.log"; exit 1; fi
    sleep 0.5
  done
  log "engine ready"
}

BASE_IMAGE=strata-test/busybox:latest

build_base_image() {
  if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  log "building $BASE_IMAGE from busybox-static"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/usr/bin" "$root/sbin" "$root/usr/sbin"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -c . | "$DOCKER" import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/sh"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  trap - EXIT
}

# The engine must offer what Strata and its tests use: the gVisor runtime
# (`runsc`, for isolation "gvisor") and experimental mode (checkpoints, for
# memory snapshots). An engine configured elsewhere may lack them: say
# exactly what is missing and how to add it, rather than fail later with the
# engine's own errors.
check_engine() {
  problems=""
  runtimes=$("$DOCKER" info --format '{{json .Runtimes}}' 2>/dev/null || true)
  case "$runtimes" in
    *'"runsc"'*) ;;
    *) problems="$problems
  - the engine has no 'runsc' runtime (gVisor sandboxes and memory snapshots need it): add
      \"runtimes\": {\"runsc\": {\"path\": \"$(command -v runsc || echo /usr/bin/runsc)\", \"runtimeArgs\": [\"--network=none\"]}}
    to /etc/docker/daemon.json and restart dockerd" ;;
  esac
  experimental=$("$DOCKER" version --format '{{.Server.Experimental}}' 2>/dev/null || true)
  if [ "$experimental" != true ]; then
    problems="$problems
  - the engine runs without experimental mode (checkpoints, for memory snapshots, need it): add
      \"experimental\": true
    to /etc/docker/daemon.json and restart dockerd"
  fi
  if [ -n "$problems" ]; then
    log "the engine at ${DOCKER_HOST:-unix:///var/run/docker.sock} is missing what Strata needs:$problems"
    exit 1
  fi
}

install_packages
start_engine
check_engine
build_base_image
