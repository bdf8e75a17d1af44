# A private apt configuration for arm64 bookworm under out/apt, used to fetch board
# packages (kernel, firmware, bootloader, busybox) without touching the host's apt state.
# The mirror is taken from the host's own apt sources, so no host name is written anywhere.

APT_DIR=$OUT/apt

# host_mirrors: print "MAIN_URI SECURITY_URI" from the host's apt sources (deb822 or
# one-line format).
host_mirrors() {
    local main="" sec="" f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        eval "$(awk '
            BEGIN { RS=""; FS="\n" }
            {
                uris=""; suites=""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); uris=$i }
                    if ($i ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", $i); suites=$i }
                }
                split(uris, u, " ")
                if (suites ~ /(^| )bookworm-security( |$)/) print "sec=" u[1]
                else if (suites ~ /(^| )bookworm( |$)/) print "main=" u[1]
            }' "$f")"
    done
    if [ -z "$main" ] && [ -e /etc/apt/sources.list ]; then
        main=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
        sec=$(awk '$1=="deb" && $3=="bookworm-security" {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$main" ] || die "no Debian bookworm source found in /etc/apt; add one (deb822 .sources or sources.list)"
    printf '%s %s\n' "$main" "${sec:-}"
}

# write_target_sources FILE: a deb822 sources file for the image's packages
# (bookworm + updates + security; main and non-free-firmware for the Pi boot firmware).
write_target_sources() {
    local main sec
    read -r main sec < <(host_mirrors)
    {
        printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$main"
        if [ -n "$sec" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$sec"
        fi
    } >"$1.tmp"
    mv "$1.tmp" "$1"
}

# apt_prepare: set up out/apt (sources incl. bookworm-backports) and update its lists at
# most once an hour.
apt_prepare() {
    local main sec
    mkdir -p "$APT_DIR/sources.list.d" "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/debs" "$APT_DIR/conf"
    write_target_sources "$APT_DIR/sources.list.d/target.sources"
    read -r main sec < <(host_mirrors)
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$main" >"$APT_DIR/sources.list.d/backports.sources"
    : >>"$APT_DIR/state/status"
    cat >"$APT_DIR/conf/apt.conf" <<CONF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$APT_DIR/sources.list.d";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State "$APT_DIR/state";
Dir::State::status "$APT_DIR/state/status";
Dir::Cache "$APT_DIR/cache";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
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
