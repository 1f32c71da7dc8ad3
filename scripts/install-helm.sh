#!/usr/bin/env bash
# Build Helm (the chart tests' `helm lint`, `helm template`, `helm install`) from the Go
# module proxy into .cache/helm/bin (git-ignored).
# Idempotent: the binary's own build info (`go version -m`) says which Helm version it was
# built from; it is rebuilt only when that differs from HELM_VERSION. Warm: ~1 s. Cold: a
# few minutes on 2 cores (Go's module and build caches stay at their defaults, so a fresh
# clone on the same machine rebuilds in seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=${HELM_VERSION:-v4.3.1}
BIN=${DRIFTWARDEN_HELM_BIN:-$PWD/.cache/helm/bin}

log() { printf 'helm-install: %s\n' "$*"; }
command -v go >/dev/null || { log "ERROR: go (>= 1.24) is required to build helm"; exit 1; }
mkdir -p "$BIN"
exec 9>"$BIN/../.lock"
flock 9

built=""
if [[ -x "$BIN/helm" ]]; then
    built=$(go version -m "$BIN/helm" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v4" { print $3 }')
fi
if [[ "$built" == "$HELM_VERSION" ]]; then
    log "helm $HELM_VERSION is current ($BIN/helm)"
    exit 0
fi

log "building helm $HELM_VERSION into $BIN (a few minutes cold)"
start=$SECONDS
GOBIN="$BIN" GOTOOLCHAIN=local go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" &
pid=$!
last=$SECONDS
while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    if kill -0 "$pid" 2>/dev/null && (( SECONDS - last >= 30 )); then
        last=$SECONDS
        log "still building ($((SECONDS - start)) s)"
    fi
done
if ! wait "$pid"; then
    log "ERROR: go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION failed"
    exit 1
fi
log "done in $((SECONDS - start)) s: $("$BIN/helm" version --short)"
