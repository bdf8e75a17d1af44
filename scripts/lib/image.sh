# Build stages of scripts/build-image. Each stage reads board data (BOARD_* from
# board/<name>/meta) and writes into $WORK (per board) or $OUT/cache (shared, keyed by a
# hash of its inputs so boards with equal inputs share one build).

pinas_version() {
    local v=""
    if [ -f "$PINAS_ROOT/services/pinas/Cargo.toml" ]; then
        v=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$PINAS_ROOT/services/pinas/Cargo.toml" | head -1)
    fi
    if [ -z "$v" ] && [ -f "$PINAS_ROOT/Cargo.toml" ]; then
        v=$(awk '/^\[workspace.package\]/{w=1;next} /^\[/{w=0} w && /^version/{gsub(/.*= *"|".*/,"");print;exit}' "$PINAS_ROOT/Cargo.toml")
    fi
    printf '%s\n' "${v:-0.1.0}"
}

# rust_target: the Rust target triple of the board's architecture (meta ARCH).
rust_target() {
    case "$(image_arch)" in
        arm64) echo aarch64-unknown-linux-gnu ;;
        amd64) echo x86_64-unknown-linux-gnu ;;
        *) die "board/$BOARD/meta: ARCH '${BOARD_ARCH}' is not arm64 or amd64" ;;
    esac
}

# Stage 3a: build pinas (from $SRC: the working tree, or a commit's export) with Debian's
# Rust (rustc-web) for the board: cross-compiled for aarch64, native for x86_64 on an
# x86_64 host.
PINAS_BIN=""
build_pinas() {
    if [ ! -f "$SRC/services/pinas/Cargo.toml" ]; then
        note "warning: services/pinas is not in this tree: the image ships without pinas"
        return 0
    fi
    local triple; triple=$(rust_target) || exit 1
    local target_dir flags_var
    target_dir=$(realpath -m "$OUT/cargo-${triple%%-*}")
    flags_var=CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUSTFLAGS
    (
        cd "$SRC"
        export CARGO_TARGET_DIR=$target_dir RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
            CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
            CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
            AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
            CARGO_PROFILE_RELEASE_STRIP=symbols
        if [ "$triple" = aarch64-unknown-linux-gnu ] && [ "$(uname -m)" != aarch64 ]; then
            export PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_PATH=/usr/lib/aarch64-linux-gnu/pkgconfig
        fi
        # Panic messages name source files: name them relative to fixed roots, so the
        # binary carries no path of the build machine and two builds can match.
        # (build scripts' generated sources live in the target folder, which is another
        # path in another out/; an explicit --target keeps these flags off the build
        # scripts, also when native)
        export "$flags_var=--remap-path-prefix=$SRC=/pinas --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$target_dir=/target"
        # A changing SOURCE_DATE_EPOCH would make C build scripts (ring, SQLite) rerun.
        unset SOURCE_DATE_EPOCH
        run /usr/bin/cargo build --release --target "$triple" -p pinas
    ) || exit 1
    PINAS_BIN=$target_dir/$triple/release/pinas
    [ -x "$PINAS_BIN" ] || die "cargo finished but $PINAS_BIN is missing"
    log "pinas: $(file -b "$PINAS_BIN" 2>/dev/null || true)"
}

# Stage 3b: the web UI, built once per content hash of web/.
WWW_DIR=""
build_web() {
    local web=$SRC/web key
    if [ ! -f "$web/package.json" ]; then
        note "warning: web/package.json is not in this tree: the image ships without the web UI"
        return 0
    fi
    command -v npm >/dev/null || die "web/ needs npm to build (install nodejs and npm)"
    key=$(cd "$web" && find . \( -name node_modules -o -name build -o -name .svelte-kit -o -name test-results \) -prune -o -type f -print \
        | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -c1-16)
    WWW_DIR=$OUT/cache/www-$key
    if [ -d "$WWW_DIR" ]; then log "web UI cached: $WWW_DIR"; return 0; fi
    # A broken web build must not hold back the system image: it ships without the UI
    # (the API and the serial console still work) and the build says so.
    # The content key names the build (SvelteKit's version.json), not the build time, so
    # the same sources give the same files.
    if ! (cd "$web" && npm ci --no-audit --no-fund >>"$LOG" 2>&1 && PINAS_UI_VERSION=$key npm run build >>"$LOG" 2>&1) || [ ! -d "$web/build" ]; then
        note "WARNING: the web UI did not build (npm ci / npm run build failed, see $LOG): the image ships without the web UI"
        WWW_DIR=""
        return 0
    fi
    rm -rf "$WWW_DIR.tmp"; cp -a "$web/build" "$WWW_DIR.tmp"; mv "$WWW_DIR.tmp" "$WWW_DIR"
}

package_list() {
    local s f
    for s in $BOARD_PACKAGE_SETS; do
        f=$PINAS_ROOT/packages/$s.list
        [ -f "$f" ] || die "board $BOARD names package set '$s' but packages/$s.list does not exist"
        sed 's/#.*//' "$f"
    done | tr -s ' \t' '\n' | grep . | LC_ALL=C sort -u
}

# Stage 4: the Debian root (TARGET_SUITE, the board's architecture) from binary packages
# (mmdebstrap), docs, man pages and locales left out at unpack time. Cached by the
# architecture, package sets and apt sources.
BASE_TAR=""
base_rootfs_path() {
    local key
    # The recipe is part of the key: a changed mmdebstrap option builds a new root.
    key=$(printf '%s\n%s\n%s\n%s\n' "$(image_arch)" "$(package_list | paste -sd, -)" "$(cat "$APT_DIR/sources.list.d/target.sources")" \
        "$(declare -f build_base_rootfs)" | sha256sum | cut -c1-16)
    BASE_TAR=$OUT/cache/rootfs-$key.tar
}
build_base_rootfs() {
    local pkgs src=$APT_DIR/sources.list.d/target.sources
    pkgs=$(package_list | paste -sd, -)
    base_rootfs_path
    if [ -s "$BASE_TAR" ]; then log "root filesystem cached: $BASE_TAR"; return 0; fi
    log "packages: $pkgs"
    run mmdebstrap --arch="$(image_arch)" --variant=minbase --include="$pkgs" \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --dpkgopt='path-exclude=/usr/share/bug/*' \
        --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
        "$TARGET_SUITE" "${BASE_TAR%.tar}.tmp.tar" "$src"
    mv "${BASE_TAR%.tar}.tmp.tar" "$BASE_TAR"
}

# Stage 5: the kernel (board's or --kernel-deb), busybox for the initramfs, boot firmware
# and bootloader packages, unpacked under $WORK/pkgs.
#
# Debian's kernel comes either as one package (linux-image-<ver>: boot/vmlinuz-<ver>,
# the modules, device trees under usr/lib/linux-image-<ver>/) or, from 7.x on, split in
# linux-image-<ver> (empty) depending on linux-binary-<ver> (usr/lib/modules/<ver>/vmlinuz),
# linux-modules-<ver> and linux-base-<ver> (device trees under usr/lib/modules/<ver>/dtb/).
# Both are unpacked into one folder, $KDIR; KIMAGE is the kernel image in it.
KVER="" KDIR="" KIMAGE=""
fetch_board_packages() {
    local kpkg deb p parts="" part
    if [ -z "$KERNEL_DEB" ]; then
        kpkg=$(kernel_package "$BOARD_KERNEL_PACKAGE" "${BOARD_KERNEL_SUITE:-}")
        KERNEL_DEB=$(apt_fetch "$kpkg${BOARD_KERNEL_SUITE:+/$BOARD_KERNEL_SUITE}")
        # The parts of a split kernel package: same version, same suite.
        for part in $(dpkg-deb -f "$KERNEL_DEB" Depends | tr ',|' '\n\n' | sed -n 's/^ *\(linux-\(binary\|modules\|base\)-[0-9][^ ]*\).*/\1/p'); do
            parts="$parts $(apt_fetch "$part${BOARD_KERNEL_SUITE:+/$BOARD_KERNEL_SUITE}")"
        done
    fi
    log "kernel package: $KERNEL_DEB$parts"
    KDIR=$OUT/cache/kernel-$(basename "$KERNEL_DEB" .deb)
    # (a split kernel's folder is named by all its parts' files, which carry the version)
    [ -z "$parts" ] || KDIR=$KDIR+$(for deb in $parts; do basename "$deb"; done | sha256sum | cut -c1-8)
    if [ ! -d "$KDIR" ]; then
        rm -rf "$KDIR.tmp"; mkdir -p "$KDIR.tmp"
        for deb in "$KERNEL_DEB" $parts; do run dpkg-deb -x "$deb" "$KDIR.tmp"; done
        local v
        v=$(ls "$KDIR.tmp/usr/lib/modules" 2>/dev/null || ls "$KDIR.tmp/lib/modules")
        if [ -d "$KDIR.tmp/lib/modules/$v" ]; then run depmod -b "$KDIR.tmp" "$v"; else run depmod -b "$KDIR.tmp/usr" "$v"; fi
        mv "$KDIR.tmp" "$KDIR"
    fi
    # (trixie's packages put modules under usr/lib, older ones under lib)
    KVER=$(ls "$KDIR/usr/lib/modules" "$KDIR/lib/modules" 2>/dev/null | grep -v -e '^$' -e ':$' | head -1 || true)
    [ -n "$KVER" ] || die "kernel package $(basename "$KERNEL_DEB") has no lib/modules/<version>"
    KIMAGE=$KDIR/boot/vmlinuz-$KVER
    [ -f "$KIMAGE" ] || KIMAGE=$KDIR/usr/lib/modules/$KVER/vmlinuz
    [ -f "$KIMAGE" ] || die "kernel package has neither boot/vmlinuz-$KVER nor usr/lib/modules/$KVER/vmlinuz"
    log "kernel version: $KVER"
    rm -rf "$WORK/pkgs"; mkdir -p "$WORK/pkgs"
    for p in busybox-static ${BOARD_FIRMWARE_PACKAGES:-} ${BOARD_BOOTLOADER_PACKAGE:-}; do
        deb=$(apt_fetch "$p")
        run dpkg-deb -x "$deb" "$WORK/pkgs"
    done
}

# kernel_dtb PATH: the device tree PATH (e.g. broadcom/bcm2712-rpi-5-b.dtb) of the kernel
# in $KDIR, wherever its packaging put it; empty if it has none.
# (the one-package 6.x layout or the split 7.x one; never a failing pipeline, which
# would end the build with no message under pipefail)
kernel_dtb() {
    local p
    for p in "$KDIR/usr/lib/linux-image-$KVER/$1" "$KDIR/usr/lib/modules/$KVER/dtb/$1"; do
        if [ -e "$p" ]; then echo "$p"; return 0; fi
    done
}

kernel_moddir() {
    if [ -d "$1/lib/modules/$KVER" ]; then echo "$1/lib/modules/$KVER"; else echo "$1/usr/lib/modules/$KVER"; fi
}

# Stage 7: busybox initramfs with the board's storage modules (in dependency order) and
# image/initramfs/init.
INITRD=""
build_initramfs() {
    local I=$WORK/initramfs m line path
    rm -rf "$I"; mkdir -p "$I"/{bin,dev,proc,sys,run,newroot,etc,lib/modules}
    local bb
    bb=$(ls "$WORK/pkgs/usr/bin/busybox" "$WORK/pkgs/bin/busybox" 2>/dev/null | head -1 || true)
    [ -n "$bb" ] || die "busybox-static has no usr/bin/busybox or bin/busybox"
    install -m 0755 "$bb" "$I/bin/busybox"
    ln -s busybox "$I/bin/sh"
    install -m 0755 "$PINAS_ROOT/image/initramfs/init" "$I/init"
    : >"$I/etc/modules"
    # A module written as ?name is optional: boards whose usual kernel lacks it still build
    # (with a warning), and a kernel given with --kernel-deb that has it gets it.
    local optional
    for m in ${BOARD_INITRAMFS_MODULES:-}; do
        optional=""
        case "$m" in '?'*) optional=1; m=${m#?} ;; esac
        if ! modprobe -d "$KDIR" -S "$KVER" --show-depends "$m" >"$WORK/deps" 2>>"$LOG" \
            && ! modprobe -d "$KDIR/usr" -S "$KVER" --show-depends "$m" >"$WORK/deps" 2>>"$LOG"; then
            [ -n "$optional" ] || die "kernel $KVER has no module '$m' (board/$BOARD/meta INITRAMFS_MODULES)"
            note "WARNING: kernel $KVER has no module '$m': this image cannot use what it drives"
            continue
        fi
        while read -r line; do
            case "$line" in insmod*) ;; *) continue ;; esac  # "builtin NAME": nothing to load
            path=$(echo "$line" | awk '{print $2}')
            local name; name=$(basename "$path"); name=${name%.xz}; name=${name%.zst}
            grep -qx "$name" "$I/etc/modules" && continue
            case "$path" in
                *.xz) xz -dc "$path" >"$I/lib/modules/$name" ;;
                *.zst) zstd -qdc "$path" >"$I/lib/modules/$name" ;;
                *) cp "$path" "$I/lib/modules/$name" ;;
            esac
            echo "$name" >>"$I/etc/modules"
        done <"$WORK/deps"
    done
    log "initramfs modules: $(tr '\n' ' ' <"$I/etc/modules")"
    INITRD=$WORK/initrd.img
    find "$I" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    (cd "$I" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible 2>>"$LOG" | gzip -n -9) >"$INITRD"
}

# Stage 8: the FAT boot partition: bootloader/firmware, board config, and per slot the
# kernel, initramfs and dtbs.
BOOT_VFAT=""
build_boot_partition() {
    local B=$WORK/boot d f slot
    rm -rf "$B"; mkdir -p "$B"
    for slot in A B; do
        mkdir -p "$B/slot-$slot"
    done
    # Slot A gets this build; slot B stays empty until the first update installs it.
    zcat "$KIMAGE" >"$B/slot-A/Image" 2>/dev/null || cp "$KIMAGE" "$B/slot-A/Image"
    cp "$INITRD" "$B/slot-A/initrd.img"
    for d in ${BOARD_DTBS:-}; do
        f=$(kernel_dtb "$d")
        [ -n "$f" ] || die "kernel $KVER has no device tree $d (board/$BOARD/meta DTBS)"
        cp "$f" "$B/slot-A/"
    done
    for f in ${BOARD_BOOT_FILES:-}; do
        [ -e "$WORK/pkgs/$f" ] || die "boot file $f not found in the board's firmware/bootloader packages"
        cp "$WORK/pkgs/$f" "$B/"
    done
    for f in "$PINAS_ROOT/board/$BOARD"/boot/*; do
        [ -e "$f" ] || continue
        sed -e "s/@VERSION@/$VERSION/g" -e "s/@DISK_SIG@/$BOARD_DISK_SIGNATURE/g" -e "s/@CONSOLE@/$BOARD_CONSOLE/g" "$f" >"$B/$(basename "$f")"
    done
    case "$BOARD_BOOT_SCHEME" in
        uboot)
            run mkimage -A arm64 -O linux -T script -C none -n "PiNAS boot" -d "$PINAS_ROOT/board/common/boot.cmd" "$B/boot.scr"
            printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n' >"$B/pinas-boot.env"
            {
                printf 'pinas_console=%s\n' "$BOARD_CONSOLE"
                printf 'pinas_disk=%s\n' "${BOARD_DISK_SIGNATURE#0x}"
                printf 'pinas_fdtfile=%s\n' "${BOARD_UBOOT_FDTFILE:-}"
                printf 'pinas_extra=%s\n' "${BOARD_CMDLINE_EXTRA:-}"
            } >"$B/pinas-board.env"
            ;;
        grub)
            build_grub_efi "$B"
            ;;
        rpi-tryboot)
            # Each slot's cmdline.txt is read from its os_prefix folder.
            printf 'console=%s,115200 pinas.slot=A pinas.disk=%s %s ro quiet\n' "$BOARD_CONSOLE" "${BOARD_DISK_SIGNATURE#0x}" "${BOARD_CMDLINE_EXTRA:-}" \
                | tr -s ' ' >"$B/slot-A/cmdline.txt"
            ;;
        *) die "board/$BOARD/meta: unknown BOOT_SCHEME '$BOARD_BOOT_SCHEME'" ;;
    esac
    printf '%s\n' "$VERSION" >"$B/slot-A/version"
    find "$B" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    BOOT_VFAT=$WORK/boot.vfat
    rm -f "$BOOT_VFAT"
    run mkfs.vfat -C "$BOOT_VFAT" $((BOARD_BOOT_SIZE_MB * 1024)) -F 32 -n PINAS-BOOT -i "${BOARD_DISK_SIGNATURE#0x}" --invariant
    (cd "$B" && for f in $(find . -mindepth 1 -maxdepth 1 | LC_ALL=C sort); do
        MTOOLS_SKIP_CHECK=1 run mcopy -i "$BOOT_VFAT" -s -m -p "$f" "::/"
    done)
}

# GRUB modules built into the EFI program: everything board/common/grub.cfg uses, so
# no module folder is needed on the boot partition.
GRUB_MODULES="normal configfile echo test loadenv linux gzio part_msdos part_gpt fat sleep reboot halt efi_gop all_video"

# build_grub_efi DIR: the UEFI boot files in DIR: GRUB as the removable-media program
# (EFI/BOOT/BOOTX64.EFI, found by the firmware with no NVRAM entry), grub.cfg with the
# board's console and disk, and grubenv with slot A bootable and no tries made.
build_grub_efi() {
    local B=$1 fmt efi
    case "$(image_arch)" in
        amd64) fmt=x86_64-efi efi=BOOTX64.EFI ;;
        arm64) fmt=arm64-efi efi=BOOTAA64.EFI ;;
    esac
    [ -d "/usr/lib/grub/$fmt" ] || die "GRUB modules for $fmt are missing (/usr/lib/grub/$fmt; install grub-efi-${BOARD_ARCH}-bin)"
    mkdir -p "$B/EFI/BOOT"
    run grub-mkimage -O "$fmt" -p /EFI/BOOT -o "$B/EFI/BOOT/$efi" $GRUB_MODULES
    sed -e "s|@CONSOLE@|$BOARD_CONSOLE|g" -e "s|@DISK@|${BOARD_DISK_SIGNATURE#0x}|g" \
        -e "s|@CMDLINE_EXTRA@|${BOARD_CMDLINE_EXTRA:-}|g" "$PINAS_ROOT/board/common/grub.cfg" >"$B/EFI/BOOT/grub.cfg"
    run grub-editenv "$B/EFI/BOOT/grubenv" create
    run grub-editenv "$B/EFI/BOOT/grubenv" set "ORDER=A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
}

# Stage 9: the storage partition (empty ext4, grown on first boot) and the whole disk.
IMG=""
build_disk_image() {
    local G=$WORK/genimage st=$WORK/storage.ext4
    rm -f "$st"
    E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH run mkfs.ext4 -q -F -L pinas-storage -U 50494e41-0000-4000-8000-000000000004 \
        -E root_owner=0:0,hash_seed=50494e41-0000-4000-8000-000000000004 "$st" "${BOARD_STORAGE_SIZE_MB}M"
    rm -rf "$G"; mkdir -p "$G"/{in,out,tmp,root}
    ln -sf "$BOOT_VFAT" "$G/in/boot.vfat"
    ln -sf "$SQFS" "$G/in/system.sqfs"
    ln -sf "$st" "$G/in/storage.ext4"
    sed -e "s/@DISK_SIG@/$BOARD_DISK_SIGNATURE/g" -e "s/@BOOT_SIZE@/${BOARD_BOOT_SIZE_MB}M/g" \
        -e "s/@SYSTEM_SIZE@/${BOARD_SYSTEM_SIZE_MB}M/g" -e "s/@STORAGE_SIZE@/${BOARD_STORAGE_SIZE_MB}M/g" \
        "$PINAS_ROOT/image/${BOARD_LAYOUT:-genimage-sd.cfg}" >"$G/genimage.cfg"
    local sq; sq=$(stat -c %s "$SQFS")
    [ "$sq" -le $((BOARD_SYSTEM_SIZE_MB * 1024 * 1024)) ] || die "system squashfs ($sq bytes) does not fit the ${BOARD_SYSTEM_SIZE_MB} MB slot"
    run genimage --config "$G/genimage.cfg" --rootpath "$G/root" --tmppath "$G/tmp" --inputpath "$G/in" --outputpath "$G/out"
    IMG=$WORK/pinas.img
    mv "$G/out/pinas.img" "$IMG"
}

FINAL=""
compress_image() {
    local base=$OUT/pinas-$BOARD-$VERSION.img
    rm -f "$base" "$base.xz" "$base.zst" "${base%.img}.qcow2"
    case "$COMPRESS" in
        xz) FINAL=$base.xz; run sh -c "xz -T0 -6 -c '$IMG' >'$FINAL.tmp'" ;;
        zstd) FINAL=$base.zst; run sh -c "zstd -T0 -10 -q -c '$IMG' >'$FINAL.tmp'" ;;
        none) FINAL=$base; run cp --sparse=always "$IMG" "$FINAL.tmp" ;;
    esac
    mv "$FINAL.tmp" "$FINAL"
    (cd "$OUT" && sha256sum "$(basename "$FINAL")" >"$FINAL.sha256.tmp" && mv "$FINAL.sha256.tmp" "$FINAL.sha256")
    local fmt
    for fmt in ${BOARD_EXTRA_FORMATS:-}; do
        case "$fmt" in
            # Compressed clusters: about the size of the .img.zst, and still a disk any
            # qcow2 reader (Proxmox, virt-manager, QEMU) opens and writes to.
            qcow2) local q=${base%.img}.qcow2
                run qemu-img convert -f raw -O qcow2 -c -o compression_type=zlib "$IMG" "$q.tmp"
                mv "$q.tmp" "$q"
                (cd "$OUT" && sha256sum "$(basename "$q")" >"$q.sha256.tmp" && mv "$q.sha256.tmp" "$q.sha256") ;;
            *) die "board/$BOARD/meta EXTRA_FORMATS: unknown format '$fmt' (known: qcow2)" ;;
        esac
    done
}
