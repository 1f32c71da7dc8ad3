#!/usr/bin/env bash
# Build the Kubernetes control plane the tests run against, from the Go module proxy:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (Kubernetes v1.37.2),
#   etcd (v3.6.16) and kwok (v0.8.0)                                   -> .cache/k8s/bin
# Idempotent: a stamp records the versions; a warm run does nothing (~0 s). Cold: ~14 min on
# 2 cores (Go's module and build caches stay at their defaults, ~/go and ~/.cache/go-build,
# so a fresh clone on the same machine rebuilds in seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-v1.37.2}
STAGING_VERSION=${STAGING_VERSION:-v0.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
BIN=${DRIFTWARDEN_K8S_BIN:-$PWD/.cache/k8s/bin}
WORK=$PWD/.cache/k8s/build
STAMP=$BIN/.versions
want="kubernetes=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION"

log() { printf 'k8s-install: %s\n' "$*"; }
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    log "present in $BIN ($want)"
    exit 0
fi
command -v go >/dev/null || { log "ERROR: go is required (Go >= 1.26) to build the control plane"; exit 1; }
mkdir -p "$BIN" "$WORK"

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
    log "$what: building"
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
STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
    cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice
    externaljwt kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl
    kubelet metrics mount-utils pod-security-admission sample-apiserver streaming)
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
    local ld="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    done
    go build -ldflags "$ld" -o "$BIN/" k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kubectl
}

build_kwok() { GOBIN="$BIN" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"; }

[[ -x "$BIN/etcd" ]] || run_logged etcd build_etcd
[[ -x "$BIN/kwok" ]] || run_logged kwok build_kwok
{ [[ -x "$BIN/kube-apiserver" && -x "$BIN/kubectl" ]]; } || run_logged kubernetes build_kubernetes
printf '%s\n' "$want" >"$STAMP"
log "ready in $BIN: $("$BIN/kube-apiserver" --version 2>&1), $("$BIN/etcd" --version 2>&1 | head -1)"
