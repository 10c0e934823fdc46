#!/usr/bin/env bash
# Build libopus 1.5 (DRED, deep PLC, OSCE) from Debian's source package, cached outside git.
#
# Usage:  scripts/build_opus15.sh            # prints the path of the built libopus.so on stdout
#         SOUNDSPRING_CACHE=/some/dir scripts/build_opus15.sh
#         OPUS15_FORCE=1 scripts/build_opus15.sh   # rebuild even if a build exists
#
# What it does (DESIGN.md section 9):
#   1. Writes a PRIVATE apt sources list with one line
#        deb-src [signed-by=<debian keyring>] <this machine's Debian mirror> trixie main
#      (the mirror URI is copied from /etc/apt/sources.list{,.d/*}; override with
#      SOUNDSPRING_DEBIAN_MIRROR) and runs `apt-get update` + `apt-get source --download-only
#      opus=1.5.2-2` with Dir::Etc::SourceList / SourceParts / State::Lists / Cache all pointing
#      into the cache, so the system's apt configuration and lists stay untouched.
#   2. Unpacks with dpkg-source -x (applies Debian's patches).
#   3. Checks that the tarball carries the DNN weights (dnn/*_data.c), configures with
#      --enable-dred --enable-deep-plc --enable-osce, builds and installs into the cache.
#   4. Prints the absolute path of the shared library (last and only line on stdout).
# Idempotent: if the library and its stamp exist, it only prints the path.
# Needs: apt-get, dpkg-source (dpkg-dev), gcc, make.  No root needed beyond network access.
set -euo pipefail

OPUS_VERSION="1.5.2-2"
UPSTREAM_VERSION="1.5.2"
CACHE_ROOT="${SOUNDSPRING_CACHE:-$HOME/.cache/soundspring}"
ROOT="${CACHE_ROOT}/opus15"
PREFIX="${ROOT}/install"
LIB="${PREFIX}/lib/libopus.so.0"
STAMP="${ROOT}/.built-${OPUS_VERSION}"
CONFIGURE_FLAGS=(--enable-dred --enable-deep-plc --enable-osce
                 --disable-doc --disable-extra-programs --enable-shared --disable-static)

log() { echo "[build_opus15] $*" >&2; }

if [[ -z "${OPUS15_FORCE:-}" && -f "${STAMP}" && -f "${LIB}" ]]; then
    log "already built (${STAMP}); set OPUS15_FORCE=1 to rebuild"
    readlink -f "${LIB}"
    exit 0
fi

for tool in apt-get dpkg-source gcc make; do
    command -v "${tool}" >/dev/null || { log "missing tool: ${tool} (apt-get install dpkg-dev build-essential)"; exit 2; }
done

# ---- 1. private apt configuration ------------------------------------------------------
find_mirror() {
    if [[ -n "${SOUNDSPRING_DEBIAN_MIRROR:-}" ]]; then echo "${SOUNDSPRING_DEBIAN_MIRROR}"; return; fi
    local f uri
    # deb822 files: first URIs: line that is a Debian archive (not the security archive).
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        uri=$(awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) print $i}' "$f" \
              | grep -E '/debian/?$' | grep -v -- '-security' | head -n1 || true)
        if [[ -n "${uri}" ]]; then echo "${uri%/}"; return; fi
    done
    # one-line format: "deb [opts] URI suite components"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        uri=$(sed -E 's/\[[^]]*\]//' "$f" | awk '$1=="deb" || $1=="deb-src" {print $2}' \
              | grep -E '/debian/?$' | grep -v -- '-security' | head -n1 || true)
        if [[ -n "${uri}" ]]; then echo "${uri%/}"; return; fi
    done
    return 1
}
MIRROR=$(find_mirror) || { log "no Debian mirror found in /etc/apt; set SOUNDSPRING_DEBIAN_MIRROR"; exit 2; }
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f "${KEYRING}" ]] || { log "missing ${KEYRING} (apt-get install debian-archive-keyring)"; exit 2; }

APT_DIR="${ROOT}/apt"
mkdir -p "${APT_DIR}/sources.list.d" "${APT_DIR}/lists/partial" "${APT_DIR}/cache/archives/partial" "${ROOT}/src"
echo "deb-src [signed-by=${KEYRING}] ${MIRROR} trixie main" > "${APT_DIR}/sources.list"
log "private sources list: $(cat "${APT_DIR}/sources.list")"
APT_OPTS=(-o "Dir::Etc::SourceList=${APT_DIR}/sources.list"
          -o "Dir::Etc::SourceParts=${APT_DIR}/sources.list.d"
          -o "Dir::State::Lists=${APT_DIR}/lists"
          -o "Dir::Cache=${APT_DIR}/cache"
          -o "Debug::NoLocking=1")
if [[ $(id -u) -eq 0 ]]; then APT_OPTS+=(-o "APT::Sandbox::User=root"); fi

SRC_DIR="${ROOT}/src/opus-${UPSTREAM_VERSION}"
if [[ ! -f "${ROOT}/src/opus_${OPUS_VERSION}.dsc" ]]; then
    log "apt-get update (private lists)"
    apt-get "${APT_OPTS[@]}" -q update >&2
    log "apt-get source --download-only opus=${OPUS_VERSION}"
    (cd "${ROOT}/src" && apt-get "${APT_OPTS[@]}" -q source --download-only "opus=${OPUS_VERSION}" >&2)
fi

# ---- 2. unpack -----------------------------------------------------------------------------
if [[ ! -f "${SRC_DIR}/configure" && ! -f "${SRC_DIR}/configure.ac" ]]; then
    rm -rf "${SRC_DIR}"
    (cd "${ROOT}/src" && dpkg-source -x "opus_${OPUS_VERSION}.dsc" "opus-${UPSTREAM_VERSION}" >&2)
fi

# ---- 3. check weights, configure, build --------------------------------------------------
missing=()
for w in fargan_data.c plc_data.c dred_rdovae_enc_data.c dred_rdovae_dec_data.c pitchdnn_data.c \
         lace_data.c nolace_data.c; do
    [[ -f "${SRC_DIR}/dnn/${w}" ]] || missing+=("dnn/${w}")
done
if (( ${#missing[@]} )); then
    log "the source tarball lacks the DNN weights: ${missing[*]}"
    log "(upstream ships them in opus-${UPSTREAM_VERSION}.tar.gz; dnn/download_model.sh fetches them otherwise)"
    exit 3
fi
if [[ ! -x "${SRC_DIR}/configure" ]]; then
    command -v autoreconf >/dev/null || { log "no configure script and no autoreconf (apt-get install autoconf automake libtool)"; exit 2; }
    (cd "${SRC_DIR}" && autoreconf -fi >&2)
fi
BUILD_DIR="${ROOT}/build"
rm -rf "${BUILD_DIR}" "${PREFIX}"
mkdir -p "${BUILD_DIR}"
start=$(date +%s)
(cd "${BUILD_DIR}" && "${SRC_DIR}/configure" --prefix="${PREFIX}" "${CONFIGURE_FLAGS[@]}" >&2)
make -C "${BUILD_DIR}" -j"$(nproc)" >&2
make -C "${BUILD_DIR}" install >&2
log "configure+build took $(( $(date +%s) - start )) s"
[[ -f "${LIB}" ]] || { log "build finished but ${LIB} is missing"; exit 4; }
printf '%s\n' "${CONFIGURE_FLAGS[*]}" > "${STAMP}"
readlink -f "${LIB}"
