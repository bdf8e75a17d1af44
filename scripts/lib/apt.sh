# A private apt configuration for the image's Debian release (trixie) and the board's
# architecture (BOARD_ARCH, default arm64) under out/apt, used to fetch board packages
# (kernel, firmware, bootloader, busybox) without touching the host's apt state.
# The mirror is taken from the host's own apt sources (whatever release the host runs:
# bookworm or trixie), so no host name is written anywhere.

APT_DIR=$OUT/apt
# The Debian release the image is built from, and its suites: the release, its point
# updates and security fixes, and backports (kernels for newer boards; NotAutomatic, so
# nothing comes from it unless asked for by suite).
TARGET_SUITE=${TARGET_SUITE:-trixie}

# image_arch: the board's Debian architecture (board/<name>/meta ARCH), arm64 if unset.
image_arch() { printf '%s\n' "${BOARD_ARCH:-arm64}"; }

# host_mirrors: print "MAIN_URI SECURITY_URI" from the host's apt sources (deb822 or
# one-line format). The URIs are taken from the entries of any Debian release (a suite
# named by a codename such as bookworm or trixie, or its -security suite), not from a
# fixed release: the suites written for the image are chosen here, not by the host.
host_mirrors() {
    local main="" sec="" f
    for f in "${PINAS_HOST_APT:-/etc/apt}"/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        eval "$(awk '
            BEGIN { RS=""; FS="\n" }
            {
                uris=""; suites=""; types=""; enabled="yes"
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); uris=$i }
                    if ($i ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", $i); suites=$i }
                    if ($i ~ /^Types:/) { sub(/^Types:[ \t]*/, "", $i); types=$i }
                    if ($i ~ /^Enabled:/) { sub(/^Enabled:[ \t]*/, "", $i); enabled=$i }
                }
                if (enabled == "no" || types !~ /(^| )deb( |$)/ || uris == "") next
                split(uris, u, " ")
                if (suites ~ /(^| )[a-z]+-security( |$)/) print "[ -n \"$sec\" ] || sec=" u[1]
                else if (suites ~ /(^| )[a-z]+( |$)/) print "[ -n \"$main\" ] || main=" u[1]
            }' "$f")"
    done
    if [ -z "$main" ] && [ -e "${PINAS_HOST_APT:-/etc/apt}/sources.list" ]; then
        # deb [options] URI SUITE COMPONENTS...
        main=$(awk '$1=="deb" { sub(/^deb[ \t]+(\[[^]]*\][ \t]+)?/, ""); split($0, a, /[ \t]+/); if (a[2] ~ /^[a-z]+$/) { print a[1]; exit } }' "${PINAS_HOST_APT:-/etc/apt}/sources.list")
        sec=$(awk '$1=="deb" { sub(/^deb[ \t]+(\[[^]]*\][ \t]+)?/, ""); split($0, a, /[ \t]+/); if (a[2] ~ /^[a-z]+-security$/) { print a[1]; exit } }' "${PINAS_HOST_APT:-/etc/apt}/sources.list")
    fi
    [ -n "$main" ] || die "no Debian source found in ${PINAS_HOST_APT:-/etc/apt} (a deb822 .sources file or sources.list naming a release such as bookworm or trixie); add one"
    printf '%s %s\n' "$main" "${sec:-}"
}

# write_target_sources FILE: a deb822 sources file for the image's packages: the
# release, its updates, backports and security; main and non-free-firmware (the Pi boot
# firmware).
write_target_sources() {
    local main sec s=$TARGET_SUITE mirrors
    mirrors=$(host_mirrors) || exit 1
    read -r main sec <<<"$mirrors"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates %s-backports\nComponents: main non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$main" "$s" "$s" "$s"
        if [ -n "$sec" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$sec" "$s"
        fi
    } >"$1.tmp"
    mv "$1.tmp" "$1"
}

# apt_prepare: set up out/apt for the board's architecture and update its lists at most
# once an hour (or when the sources change).
apt_prepare() {
    local arch
    arch=$(image_arch)
    APT_DIR=$OUT/apt/$arch
    mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/debs" "$APT_DIR/conf"
    rm -f "$APT_DIR/sources.list.d/backports.sources"
    write_target_sources "$APT_DIR/sources.list.d/target.sources.new"
    if ! cmp -s "$APT_DIR/sources.list.d/target.sources.new" "$APT_DIR/sources.list.d/target.sources"; then
        mv "$APT_DIR/sources.list.d/target.sources.new" "$APT_DIR/sources.list.d/target.sources"
        rm -f "$APT_DIR"/state/lists/*Packages* "$APT_DIR"/state/lists/*Release*
    else
        rm -f "$APT_DIR/sources.list.d/target.sources.new"
    fi
    : >>"$APT_DIR/state/status"
    cat >"$APT_DIR/conf/apt.conf" <<CONF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$APT_DIR/sources.list.d";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State "$APT_DIR/state";
Dir::State::status "$APT_DIR/state/status";
Dir::Cache "$APT_DIR/cache";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Get::AllowUnauthenticated "false";
Acquire::Languages "none";
CONF
    if [ -z "$(find "$APT_DIR/state/lists" -maxdepth 1 -name '*Packages*' -mmin -60 2>/dev/null | head -1)" ]; then
        APT_CONFIG=$APT_DIR/conf/apt.conf run apt-get update
    fi
}

apt_t() { APT_CONFIG=$APT_DIR/conf/apt.conf "$@"; }

# apt_fetch PKG[/SUITE]: download one arm64 .deb into out/apt/debs (once; cached by its
# archive file name, which carries the version) and print its path.
apt_fetch() {
    local spec=$1 line file
    # (asked from an empty folder: apt prints no URI for a file already in the current one)
    mkdir -p "$APT_DIR/empty"
    line=$(cd "$APT_DIR/empty" && APT_CONFIG=$APT_DIR/conf/apt.conf apt-get download --print-uris "$spec" 2>>"$LOG" | tail -1)
    file=$(printf '%s' "$line" | awk '{print $2}')
    [ -n "$file" ] || die "no arm64 package '$spec' in the image's apt sources (see $LOG)"
    if [ ! -s "$APT_DIR/debs/$file" ]; then
        (cd "$APT_DIR/debs" && APT_CONFIG=$APT_DIR/conf/apt.conf apt-get download "$spec" >>"$LOG" 2>&1) \
            || die "cannot download arm64 package '$spec' (see $LOG)"
    fi
    [ -s "$APT_DIR/debs/$file" ] || die "downloaded '$spec' but $file is missing"
    printf '%s\n' "$APT_DIR/debs/$file"
}

# kernel_package META_PKG [SUITE]: resolve a kernel metapackage (linux-image-arm64) to the
# concrete image package it depends on, e.g. linux-image-6.1.0-41-arm64.
kernel_package() {
    local deb dep
    if [ -n "$2" ]; then deb=$(apt_fetch "$1/$2"); else deb=$(apt_fetch "$1"); fi
    dep=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)
    [ -n "$dep" ] || die "cannot resolve kernel metapackage $1 ($2)"
    printf '%s\n' "$dep"
}
