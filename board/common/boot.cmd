# PiNAS U-Boot boot script: A/B slot choice with boot counting, shared by every board
# booted through U-Boot (qemu-virt, rpi3bp). Compiled to boot.scr by scripts/build-image.
#
# State lives in pinas-boot.env on the boot partition (plain "name=value" lines, the same
# variables as RAUC's U-Boot backend): BOOT_ORDER lists slots to try in order; each try
# of a slot decrements BOOT_<slot>_LEFT before booting it, and pinas-mark-good.service
# sets it back to 3 once the system is up. A slot whose counter reaches 0 is skipped, so
# an update that does not come up falls back to the other slot.
# Board settings (console, disk signature, dtb) come from pinas-board.env.

setenv pinas_part 1
if test "x${distro_bootpart}" != "x"; then setenv pinas_part ${distro_bootpart}; fi
setenv pinas_dev "${devtype} ${devnum}:${pinas_part}"
setenv pinas_buf ${kernel_addr_r}

setenv BOOT_ORDER "A B"
setenv BOOT_A_LEFT 3
setenv BOOT_B_LEFT 0
setenv pinas_console ttyAMA0
setenv pinas_disk
setenv pinas_fdtfile
setenv pinas_extra
if load ${pinas_dev} ${pinas_buf} pinas-board.env; then
    env import -t ${pinas_buf} ${filesize} pinas_console pinas_disk pinas_fdtfile pinas_extra
fi
if load ${pinas_dev} ${pinas_buf} pinas-boot.env; then
    env import -t ${pinas_buf} ${filesize} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
fi

setenv slot
for s in ${BOOT_ORDER}; do
    if test "x${slot}" = "x"; then
        if test "${s}" = "A" && test ${BOOT_A_LEFT} -gt 0; then
            setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
            setenv slot A
        fi
        if test "${s}" = "B" && test ${BOOT_B_LEFT} -gt 0; then
            setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
            setenv slot B
        fi
    fi
done
if test "x${slot}" = "x"; then
    echo "PiNAS: no slot has tries left; resetting the counters and booting slot A"
    setenv BOOT_A_LEFT 2
    setenv slot A
fi
echo "PiNAS: booting slot ${slot} (tries left: A=${BOOT_A_LEFT} B=${BOOT_B_LEFT})"

env export -t ${pinas_buf} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
if fatwrite ${pinas_dev} ${pinas_buf} pinas-boot.env ${filesize}; then
    true
else
    echo "PiNAS: cannot write pinas-boot.env; boot counting is off for this boot"
fi

setenv bootargs "console=${pinas_console},115200 pinas.slot=${slot} pinas.disk=${pinas_disk} ro quiet ${pinas_extra}"
load ${pinas_dev} ${kernel_addr_r} slot-${slot}/Image || exit
load ${pinas_dev} ${ramdisk_addr_r} slot-${slot}/initrd.img || exit
setenv pinas_initrd_size ${filesize}
if test "x${pinas_fdtfile}" != "x" && load ${pinas_dev} ${fdt_addr_r} slot-${slot}/${pinas_fdtfile}; then
    booti ${kernel_addr_r} ${ramdisk_addr_r}:${pinas_initrd_size} ${fdt_addr_r}
else
    booti ${kernel_addr_r} ${ramdisk_addr_r}:${pinas_initrd_size} ${fdt_addr}
fi
