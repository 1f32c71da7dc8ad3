#!/usr/bin/env bash
# Install the real services the integration tests, e2e tests and `make demo` run against:
#   - Prometheus + promtool, Alertmanager + amtool  (Debian packages; java and mvn too if absent)
#   - Apache Kafka jars (Maven Central, via driftwarden/services/pom.xml) -> .cache/kafka/libs
#   - class-data-sharing archives for the Kafka JVMs            -> .cache/kafka/cds
# Idempotent: each step checks first and does nothing when already done (warm run ~1 s).
# Maven's local repository stays at its default (~/.m2), so a fresh clone re-copies quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'services-install: %s\n' "$*"; }

# --- 1. Debian packages: prometheus, prometheus-alertmanager (+ JRE, maven when missing) ----
have() { command -v "$1" >/dev/null 2>&1; }
packages=()
{ have prometheus && have promtool; } || packages+=(prometheus)
{ have prometheus-alertmanager && have amtool; } || packages+=(prometheus-alertmanager)
have java || packages+=(default-jre-headless)
have mvn || packages+=(maven)
if ((${#packages[@]} == 0)); then
    log "prometheus, promtool, prometheus-alertmanager, amtool, java, mvn: present"
else
    log "apt-get install ${packages[*]}"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        have sudo || { log "ERROR: need root or sudo for apt-get"; exit 1; }
        SUDO=(sudo)
    fi
    # The packages' maintainer scripts would start system-wide daemons on :9090/:9093;
    # the tests start their own, so forbid service starts for the duration of the install.
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup_policy() { if ((created_policy)); then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi; }
    trap cleanup_policy EXIT
    apt_log=$(mktemp)
    if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends "${packages[@]}"; } >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        log "ERROR: apt-get install failed (full log: $apt_log)"
        exit 1
    fi
    rm -f "$apt_log"
    for b in prometheus promtool prometheus-alertmanager amtool java mvn; do
        have "$b" || { log "ERROR: $b still missing after apt-get install"; exit 1; }
    done
    log "installed: $(prometheus --version 2>&1 | head -1)"
    log "installed: $(prometheus-alertmanager --version 2>&1 | head -1)"
fi

# --- 2. Kafka jars from Maven Central --------------------------------------------------------
POM=driftwarden/services/pom.xml
LIBS=.cache/kafka/libs
STAMP="$LIBS/.pom.sha256"
want=$(sha256sum "$POM" | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
    log "kafka jars: present in $LIBS ($(ls "$LIBS"/*.jar | wc -l) jars)"
else
    log "kafka jars: mvn dependency:copy-dependencies -> $LIBS"
    rm -rf "$LIBS" .cache/kafka/cds
    mkdir -p "$LIBS"
    mvn_log=$(mktemp)
    if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$PWD/$LIBS" >"$mvn_log" 2>&1; then
        tail -n 30 "$mvn_log" >&2
        log "ERROR: mvn dependency:copy-dependencies failed (full log: $mvn_log)"
        exit 1
    fi
    rm -f "$mvn_log"
    compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null || { log "ERROR: no kafka_2.13 jar in $LIBS"; exit 1; }
    printf '%s\n' "$want" >"$STAMP"
    log "kafka jars: $(ls "$LIBS"/*.jar | wc -l) jars in $LIBS"
fi

# --- 3. Class-data-sharing archives for the Kafka JVMs (about half the start-up time) -------
if [[ -x .venv/bin/python ]] && .venv/bin/python -c 'import driftwarden.services' 2>/dev/null; then
    .venv/bin/python -m driftwarden.services prepare
else
    log "kafka class-data-sharing archives: skipped (no virtualenv yet; run make install)"
fi
