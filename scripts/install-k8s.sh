#!/usr/bin/env bash
# Build the Kubernetes control plane the tests run against, from the Go module proxy:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (Kubernetes v1.37.2),
#   etcd (v3.7.3, the series 1.37 pairs with) and kwok (v0.8.0)       -> .cache/k8s/bin
# Idempotent: each binary's own build info (`go version -m`) says which module version it
# was built from; a component is rebuilt only when that differs from the wanted version, so
# the binaries and this script cannot disagree. Warm: ~1 s. Cold: ~15 min on 2 cores (Go's
# module and build caches stay at their defaults, ~/go/pkg/mod and ~/.cache/go-build, so a
# fresh clone on the same machine rebuilds in seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-v1.37.2}
STAGING_VERSION=${STAGING_VERSION:-v0.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
BIN=${DRIFTWARDEN_K8S_BIN:-$PWD/.cache/k8s/bin}
WORK=$PWD/.cache/k8s/build

log() { printf 'k8s-install: %s\n' "$*"; }
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

command -v go >/dev/null || { log "ERROR: go (>= 1.26) is required to build the control plane"; exit 1; }
mkdir -p "$BIN" "$WORK"
# One build at a time (two `make test` in one checkout would otherwise race on go.mod).
exec 9>"$WORK/.lock"
flock 9

# The version of `module` that binary `bin` was built from ('' when absent or not Go).
built_version() {
    [[ -x "$1" ]] || return 0
    go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
}
current() { [[ "$(built_version "$BIN/$1" "$2")" == "$3" ]]; }

# Print a line every 30 s so a long cold build shows it is alive.
heartbeat() {
    local what=$1 pid=$2 start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        sleep 30
        kill -0 "$pid" 2>/dev/null && log "$what: still building ($((SECONDS - start)) s)"
    done
}
run_logged() {
    local what=$1; shift
    local out="$WORK/$what.log" start=$SECONDS
    log "$what: building (log: $out)"
    "$@" >"$out" 2>&1 &
    local pid=$!
    heartbeat "$what" "$pid" &
    local hb=$!
    if ! wait "$pid"; then
        kill "$hb" 2>/dev/null || true
        tail -n 40 "$out" >&2
        log "ERROR: $what failed (full log: $out)"
        exit 1
    fi
    kill "$hb" 2>/dev/null || true
    log "$what: done in $((SECONDS - start)) s"
}

# --- etcd ---------------------------------------------------------------------------------
build_etcd() {
    local dir="$WORK/etcd"
    mkdir -p "$dir" && cd "$dir"
    [[ -f go.mod ]] || go mod init driftwarden.local/etcd-build
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -o "$BIN/etcd" go.etcd.io/etcd/server/v3
}

# --- kube-apiserver, controller-manager, scheduler, kubectl -------------------------------
# `go install k8s.io/kubernetes/cmd/...@v` refuses kubernetes' own replace directives, so a
# throw-away module requires k8s.io/kubernetes and replaces every staging module by its
# published tag (sample-cli-plugin and sample-controller are refused by the proxy and unused).
STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
    cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice
    externaljwt kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl
    kubelet metrics mount-utils pod-security-admission sample-apiserver streaming)
KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
build_kubernetes() {
    local dir="$WORK/kubernetes"
    mkdir -p "$dir" && cd "$dir"
    [[ -f go.mod ]] || go mod init driftwarden.local/k8s-build
    go mod edit -go=1.26.0 -require="k8s.io/kubernetes@$K8S_VERSION"
    local m
    for m in "${STAGING[@]}"; do
        go mod edit -replace="k8s.io/$m=k8s.io/$m@$STAGING_VERSION"
    done
    local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    # Without the version stamps the binaries report v0.0.0-master, which clients dislike.
    # No -trimpath: it would force a full recompile of the build cache.
    local ld="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    done
    local cmds=() c
    for c in "${KUBE_CMDS[@]}"; do cmds+=("k8s.io/kubernetes/cmd/$c"); done
    go build -ldflags "$ld" -o "$BIN/" "${cmds[@]}"
}

build_kwok() { GOBIN="$BIN" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"; }

kube_current() {
    local c
    for c in "${KUBE_CMDS[@]}"; do current "$c" k8s.io/kubernetes "$K8S_VERSION" || return 1; done
}

current etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" || run_logged etcd build_etcd
current kwok sigs.k8s.io/kwok "$KWOK_VERSION" || run_logged kwok build_kwok
kube_current || run_logged kubernetes build_kubernetes
current etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" && current kwok sigs.k8s.io/kwok "$KWOK_VERSION" \
    && kube_current || { log "ERROR: built binaries in $BIN do not report the wanted versions"; exit 1; }
log "ready in $BIN: kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION"
