# Stage 6 of scripts/build-image: the system root filesystem and its squashfs.
# Its own file so that the squashfs cache key covers exactly this recipe.

# Stage 6: assemble the system root and pack it. Shared by boards with the same base,
# kernel, overlay and pinas build (qemu-virt and rpi3bp).
SQFS=""
build_system_squashfs() {
    local key R units u role_units
    key=$(printf '%s %s %s %s %s %s\n' "$(basename "$BASE_TAR")" "$(basename "$KERNEL_DEB")" "$VERSION" "$SQFS_COMP" \
        "$(hash_inputs "$PINAS_ROOT/rootfs" "$PINAS_ROOT/packages/kernel-trim.list" "${PINAS_BIN:-none}" "${WWW_DIR:-none}" "$PINAS_ROOT/scripts/lib/system.sh")" \
        "$SOURCE_DATE_EPOCH" | sha256sum | cut -c1-16)
    SQFS=$OUT/cache/system-$key.sqfs
    if [ -s "$SQFS" ]; then log "system squashfs cached: $SQFS"; return 0; fi
    R=$OUT/work/rootfs-$key
    rm -rf "$R"; mkdir -p "$R"
    run tar -C "$R" --numeric-owner --xattrs --xattrs-include='*' -xpf "$BASE_TAR"

    # Kernel modules only: the kernel image and dtbs live on the boot partition.
    mkdir -p "$R/usr/lib/modules"
    cp -a "$(kernel_moddir "$KDIR")" "$R/usr/lib/modules/"
    # (a split kernel package keeps its image and device trees there too)
    rm -rf "${R:?}/usr/lib/modules/$KVER/vmlinuz" "$R/usr/lib/modules/$KVER/dtb" "$R/usr/lib/modules/$KVER/System.map"
    local m
    sed 's/#.*//' "$PINAS_ROOT/packages/kernel-trim.list" | grep . | while read -r m; do
        rm -rf "${R:?}/usr/lib/modules/$KVER/kernel/$m"
    done
    run depmod -b "$R" "$KVER"

    # The overlay: units, udev rules, defaults. Owned by root whatever the checkout's owner.
    run tar -C "$PINAS_ROOT/rootfs" --owner=0 --group=0 --mode=u+rw,go-w -cf "$WORK/overlay.tar" .
    run tar -C "$R" --no-same-owner --keep-directory-symlink -xf "$WORK/overlay.tar"
    chmod 0755 "$R"/usr/libexec/pinas/* 2>/dev/null || true

    if [ -n "$PINAS_BIN" ]; then install -m 0755 "$PINAS_BIN" "$R/usr/bin/pinas"; fi
    if [ -n "$WWW_DIR" ]; then mkdir -p "$R/usr/share/pinas"; cp -a "$WWW_DIR" "$R/usr/share/pinas/www"; fi

    # Identity of the system: version, release file, banner.
    cat >"$R/usr/lib/os-release" <<OSR
PRETTY_NAME="PiNAS $VERSION"
NAME="PiNAS"
VERSION_ID="$VERSION"
VERSION="$VERSION"
ID=pinas
ID_LIKE=debian
HOME_URL="https://pinas.local/"
OSR
    ln -sfn ../usr/lib/os-release "$R/etc/os-release"
    mkdir -p "$R/usr/lib/pinas"
    printf '%s\n' "$VERSION" >"$R/usr/lib/pinas/version"
    sed "s/@VERSION@/$VERSION/g" "$PINAS_ROOT/rootfs/etc/issue" >"$R/etc/issue"
    echo pinas >"$R/etc/hostname"
    : >"$R/etc/machine-id"
    rm -f "$R"/var/lib/dbus/machine-id "$R"/etc/ssh/ssh_host_* "$R"/boot/vmlinuz* "$R"/boot/initrd* "$R"/boot/System.map*
    ln -sfn /etc/machine-id "$R/var/lib/dbus/machine-id"
    # systemd-resolved's upstream list; its stub stays off so pinas dns owns port 53.
    ln -sfn ../run/systemd/resolve/resolv.conf "$R/etc/resolv.conf"
    mkdir -p "$R/storage"

    # System users of the roles (sysusers.d/pinas.conf), in the read-only /etc; their
    # files on /storage get their owner from tmpfiles.d at every boot. The serial console
    # needs no account: its getty starts the menu (serial-getty@.service.d/).
    run systemd-sysusers --root="$R" pinas.conf
    sed -i 's/^\(passwd\|group\|shadow\):\s*\(.*\)$/\1: \2 extrausers/' "$R/etc/nsswitch.conf"
    sed -i 's/^hosts:.*/hosts:          files mdns4_minimal [NOTFOUND=return] dns/' "$R/etc/nsswitch.conf"

    # Units: pinas roles the binary has, networking on, file sharing off until configured.
    units="pinas-ssh-keys.service pinas-grow-storage.service pinas-mark-good.service systemd-networkd.service systemd-resolved.service systemd-timesyncd.service avahi-daemon.service ssh.service"
    role_units=$(pinas_roles) || exit 1
    units="$units $role_units"
    log "enabling: $units"
    run systemctl --root="$R" enable $units
    # wsdd2 binds to smbd (BindsTo=): both start when pinas turns file sharing on.
    # smartd fails on boards with no S.M.A.R.T. disks; pinas runs smartctl when it needs data.
    # NFS client parts (nfs-common) are not needed until the NFS server, which pulls in
    # what it uses, is turned on.
    for u in smbd.service nmbd.service wsdd2.service smartmontools.service smartd.service samba-ad-dc.service nfs-server.service rpcbind.service rpcbind.socket nfs-blkmap.service nfs-client.target rpc-statd-notify.service; do
        [ -e "$R/lib/systemd/system/$u" ] && run systemctl --root="$R" disable "$u"
    done
    run systemctl --root="$R" mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service systemd-networkd-wait-online.service systemd-binfmt.service
    run systemctl --root="$R" set-default multi-user.target

    rm -rf "$R"/var/cache/apt/* "$R"/var/lib/apt/lists/* "$R"/var/log/*.log "$R"/var/cache/debconf/*-old "$R"/tmp/* "$R"/usr/share/locale/*/ 
    local comp_opts="-comp zstd -Xcompression-level 19 -b 1M"
    [ "$SQFS_COMP" = xz ] && comp_opts="-comp xz -b 1M"
    # Every file gets the commit's time: mmdebstrap leaves the time of its own run, so
    # two builds of one commit would differ in nothing but that. (mksquashfs refuses
    # SOURCE_DATE_EPOCH together with the explicit times.)
    run env -u SOURCE_DATE_EPOCH mksquashfs "$R" "$SQFS.tmp" -noappend $comp_opts -all-root \
        -all-time "$SOURCE_DATE_EPOCH" -mkfs-time "$SOURCE_DATE_EPOCH"
    mv "$SQFS.tmp" "$SQFS"
    printf '%s\n' "$(du -sb "$R" | cut -f1)" >"$SQFS.unpacked-bytes"
    rm -rf "$R"
}

# pinas_roles: the units of the roles in the binary's registry (`pinas roles --units`,
# run through qemu-user); a test keeps them in step with the rootfs overlay.
pinas_roles() {
    [ -n "$PINAS_BIN" ] || return 0
    "$PINAS_BIN" roles --units ||
        die "cannot run $PINAS_BIN roles --units (an arm64 binary runs here through qemu-user's binfmt handler)"
}

