# Host tools for building and booting PiNAS images on Debian 12 (bookworm) or 13 (trixie),
# amd64 or arm64.
# (The x86-64 board's pinas is built natively: build it on an amd64 host.)
# `install_host_tools` installs what is missing with apt and registers binfmt_misc for
# arm64 maintainer scripts; it is also what the project setup script calls.

HOST_PACKAGES="mmdebstrap qemu-user-static qemu-system-arm squashfs-tools genimage
dosfstools mtools cpio kmod e2fsprogs fdisk xz-utils zstd u-boot-tools u-boot-qemu file
rustc-web cargo-web gcc-aarch64-linux-gnu libc6-dev-arm64-cross openssl python3 tmux curl
arch-test bc pkg-config libudev-dev grub-common grub-efi-amd64-bin qemu-utils qemu-system-x86 ovmf"
HOST_PACKAGES_ARM64="libstd-rust-web-dev:arm64 libc6:arm64 libudev-dev:arm64"

# Programs each host package provides; checked after the install so a failed install is
# reported by name rather than later as a cryptic build error.
HOST_PROGRAMS="mmdebstrap qemu-aarch64-static qemu-system-aarch64 mksquashfs genimage mkfs.vfat
mcopy cpio depmod mkfs.ext4 sfdisk xz zstd mkimage aarch64-linux-gnu-gcc openssl python3 tmux
grub-mkimage grub-editenv qemu-img qemu-system-x86_64"

install_host_tools() {
    local missing="" p
    if [ "$(dpkg --print-architecture)" != arm64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
        run dpkg --add-architecture arm64
        run apt-get update
    fi
    for p in $HOST_PACKAGES $HOST_PACKAGES_ARM64; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        note "installing host packages:$missing"
        [ -n "$(find /var/lib/apt/lists -name '*_Packages*' -newer /etc/apt/sources.list.d 2>/dev/null | head -1)" ] || run apt-get update
        DEBIAN_FRONTEND=noninteractive run apt-get install -y --no-install-recommends $missing
    fi
    for p in $HOST_PROGRAMS; do
        command -v "$p" >/dev/null || die "host program '$p' is missing after installing host packages; see $LOG"
    done
    [ -x /usr/bin/cargo ] || die "Debian's cargo (/usr/bin/cargo, package cargo-web) is missing"
}

# Register qemu-aarch64 with binfmt_misc so mmdebstrap can run arm64 maintainer scripts.
# Containers often lack the binfmt_misc mount; mount it and register by hand.
setup_binfmt() {
    if [ "$(uname -m)" = aarch64 ]; then return 0; fi
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        run mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf | grep . >/proc/sys/fs/binfmt_misc/register \
            || die "cannot register qemu-aarch64 with binfmt_misc"
    fi
    grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "binfmt_misc entry qemu-aarch64 is not enabled"
}
