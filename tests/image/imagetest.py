#!/usr/bin/env python3
"""Checks of built PiNAS images: structure of each board's image, and boots in QEMU
driven from outside (serial console and the forwarded web ports).

Used by tests/image/run; each check prints `ok - NAME` or `not ok - NAME: DETAIL` and the
results are appended as JSON lines to --results.
"""
import argparse
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Results:
    def __init__(self, path, prefix):
        self.path, self.prefix = path, prefix
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        name = f"{self.prefix}: {name}"
        if ok:
            self.passed += 1
            print(f"ok - {name}", flush=True)
        else:
            self.failed += 1
            print(f"not ok - {name}: {detail}", flush=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"name": name, "ok": bool(ok), "detail": str(detail)[:2000]}) + "\n")
        return ok


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)


# ---------------------------------------------------------------- structure

def partitions(img):
    t = json.loads(sh(["sfdisk", "-J", img]).stdout)["partitiontable"]
    return t


def mtools_read(img, offset, path):
    r = subprocess.run(["mtype", "-i", f"{img}@@{offset}", f"::{path}"], capture_output=True,
                       env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return r.stdout.decode(errors="replace") if r.returncode == 0 else None


def mtools_list(img, offset):
    r = sh(["mdir", "-/", "-b", "-i", f"{img}@@{offset}", "::/"], env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return {line.strip()[2:] if line.strip().startswith("::") else line.strip() for line in r.stdout.splitlines()}


BOOT_FILES = {
    "qemu-virt": ["boot.scr", "pinas-boot.env", "pinas-board.env", "slot-A/Image", "slot-A/initrd.img"],
    "rpi3bp": ["bootcode.bin", "start.elf", "fixup.dat", "u-boot.bin", "config.txt", "boot.scr",
               "pinas-boot.env", "pinas-board.env", "slot-A/Image", "slot-A/initrd.img",
               "slot-A/bcm2837-rpi-3-b-plus.dtb"],
    "rpi5": ["config.txt", "tryboot.txt", "slot-A/Image", "slot-A/initrd.img", "slot-A/cmdline.txt",
             "slot-A/bcm2712-rpi-5-b.dtb"],
}
TEXT_EXPECT = {
    "rpi3bp": {"config.txt": ["arm_64bit=1", "kernel=u-boot.bin", "enable_uart=1"],
               "pinas-board.env": ["pinas_console=ttyS1", "pinas_disk=50494e41"]},
    "qemu-virt": {"pinas-board.env": ["pinas_console=ttyAMA0", "pinas_disk=50494e41"],
                  "pinas-boot.env": ["BOOT_ORDER=A B", "BOOT_A_LEFT=3"]},
    "rpi5": {"config.txt": ["os_prefix=slot-A/", "kernel=Image", "initramfs initrd.img followkernel"],
             "tryboot.txt": ["os_prefix=slot-B/"],
             "slot-A/cmdline.txt": ["console=ttyAMA10,115200", "pinas.slot=A", "pinas.disk=50494e41"]},
}


def structure(board, img, version, res):
    t = partitions(img)
    parts = t["partitions"]
    res.check("MBR partition table with 4 partitions", t["label"] == "dos" and len(parts) == 4,
              f"label={t['label']} n={len(parts)}")
    res.check("disk signature 0x50494e41", t.get("id") == "0x50494e41", t.get("id"))
    types = [p["type"] for p in parts]
    res.check("partition types boot FAT32 LBA, then 3 Linux", types == ["c", "83", "83", "83"], types)
    res.check("boot partition is marked bootable", parts[0].get("bootable", False), parts[0])
    ss = t.get("sectorsize", 512)
    boot_off = parts[0]["start"] * ss
    missing = [f for f in BOOT_FILES[board] if mtools_read(img, boot_off, f) is None]
    res.check("boot files and dtbs present", not missing, f"missing: {missing}")
    for f, needles in TEXT_EXPECT.get(board, {}).items():
        text = mtools_read(img, boot_off, f) or ""
        lacking = [n for n in needles if n not in text]
        res.check(f"{f} contents", not lacking, f"lacks {lacking} in {text!r}")
    if board != "rpi5":
        with tempfile.TemporaryDirectory() as d:
            scr = os.path.join(d, "boot.scr")
            subprocess.run(["mcopy", "-n", "-i", f"{img}@@{boot_off}", "::boot.scr", scr],
                           env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}, check=False)
            r = sh(["mkimage", "-l", scr])
            res.check("boot.scr is a U-Boot script image", "Script" in r.stdout, r.stdout + r.stderr)
    # The system squashfs: mountable, and pinas in it runs (arm64, through qemu-user).
    sys_off = parts[1]["start"] * ss
    with tempfile.TemporaryDirectory() as mnt:
        r = sh(["mount", "-t", "squashfs", "-o", f"ro,loop,offset={sys_off}", img, mnt])
        if not res.check("system A squashfs mounts", r.returncode == 0, r.stderr):
            return
        try:
            res.check("/usr/bin/pinas is in the system", os.path.exists(f"{mnt}/usr/bin/pinas"))
            r = sh(["chroot", mnt, "/usr/bin/pinas", "--version"], timeout=120)
            res.check("pinas --version runs under qemu-user", r.returncode == 0 and version in r.stdout,
                      r.stdout + r.stderr)
            r = sh(["chroot", mnt, "/usr/bin/pinas", "console", "--help"], timeout=120)
            res.check("pinas console is built in", r.returncode == 0, r.stdout + r.stderr)
            with open(f"{mnt}/usr/bin/pinas", "rb") as f:
                binary = f.read()
            res.check("the web UI is in the system", os.path.isfile(f"{mnt}/usr/share/pinas/www/index.html"))
            res.check("pinas names no path of the build machine", ROOT.encode() not in binary
                      and os.path.expanduser("~/.cargo").encode() not in binary)
            units = [u for u in ("pinas-web.service",) if not os.path.lexists(
                f"{mnt}/etc/systemd/system/multi-user.target.wants/{u}")]
            res.check("pinas-web.service enabled", not units, units)
            enabled = os.listdir(f"{mnt}/etc/systemd/system/multi-user.target.wants")
            res.check("smbd and nmbd off by default", "smbd.service" not in enabled and "nmbd.service" not in enabled,
                      enabled)
            issue = open(f"{mnt}/etc/issue").read()
            res.check("serial banner names PiNAS and its version", f"PiNAS {version}" in issue, issue)
            kmods = os.listdir(f"{mnt}/usr/lib/modules")
            res.check("kernel modules present", len(kmods) == 1, kmods)
            leftovers = [p for p in ("usr/share/man/man1", "usr/share/locale/de") if os.path.isdir(f"{mnt}/{p}")]
            res.check("man pages and locales stripped", not leftovers, leftovers)
            hostkeys = [f for f in os.listdir(f"{mnt}/etc/ssh") if f.startswith("ssh_host_")]
            res.check("no SSH host keys baked into the image", not hostkeys, hostkeys)
        finally:
            sh(["umount", mnt])


# ---------------------------------------------------------------- QEMU

class Serial:
    """QEMU with its serial console on pipes; output collected and logged."""

    def __init__(self, cmd, log_path):
        self.log = open(log_path, "ab")
        self.buf = b""
        self.pos = 0
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=0)
        self.started = time.monotonic()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            chunk = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") else self.proc.stdout.read(1)
            if not chunk:
                return
            self.log.write(chunk)
            self.log.flush()
            with self.lock:
                self.buf += chunk

    def expect(self, pattern, timeout):
        """Waits for regex `pattern` after the current position; returns the match or None."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
            if self.proc.poll() is not None:
                time.sleep(0.2)
                with self.lock:
                    m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                return None
            time.sleep(0.1)
        return None

    def send(self, text):
        data = text.encode()
        # Small chunks: the Pi's mini UART has a tiny receive FIFO.
        for i in range(0, len(data), 8):
            self.proc.stdin.write(data[i:i + 8])
            self.proc.stdin.flush()
            time.sleep(0.02)

    seq = 0

    def run(self, command, timeout=60):
        """Runs a shell command on the console; returns (exit status, output) or (None, partial)."""
        Serial.seq += 1
        n = Serial.seq
        self.send(f"printf '%s%s\\n' '<<B' '{n}>>'; {command}; printf '%s%s:%s\\n' '<<E' '{n}>>' \"$?\"\n")
        if not self.expect(rf"<<B{n}>>\r?\n", timeout):
            return None, ""
        start = self.pos
        m = self.expect(rf"<<E{n}>>:(\d+)", timeout)
        if not m:
            return None, self.buf[start:].decode(errors="replace")
        out = self.buf[start:m.start()].decode(errors="replace").replace("\r", "")
        out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
        return int(m.group(1)), out.strip()

    def elapsed(self):
        return time.monotonic() - self.started

    def stop(self, timeout=60):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def http(url, data=None, headers=None, timeout=10, method=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")


def wait_health(port, timeout):
    end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < end:
        try:
            st, _, body = http(f"http://127.0.0.1:{port}/api/system/health", timeout=5)
            if st == 200:
                return True, body
            last = f"status {st}: {body[:200]}"
        except Exception as e:  # connection refused / reset while booting
            last = repr(e)
        time.sleep(2)
    return False, last


def qemu_cmd(board, image, http_port, https_port, ssh_port):
    out = sh([os.path.join(ROOT, "scripts", "run-qemu"), "--board", board, "--image", image,
              "--http-port", str(http_port), "--https-port", str(https_port), "--ssh-port", str(ssh_port),
              "--print-cmd"])
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return shlex.split(out.stdout)


def console_login(q, res, version, name_suffix=""):
    """Logs in as `console` on the serial port; expects the menu; opens the root shell."""
    q.send("\n")
    if not q.expect(r"login: ?$|login:", 30):
        return res.check(f"login prompt again{name_suffix}", False, "no prompt")
    q.send("console\n")
    m = q.expect(r"Choose \[0-7\]", 60)
    text = q.buf[max(0, q.pos - 3000):q.pos].decode(errors="replace")
    res.check(f"console menu after logging in as console{name_suffix}", m is not None, text[-500:])
    if not m:
        return False
    res.check(f"menu status shows version and web unit{name_suffix}",
              f"PiNAS {version}" in text and "pinas-web.service" in text, text[-1500:])
    q.send("7\n")
    time.sleep(2)
    q.send("export PS1='# '; stty -echo\n")
    time.sleep(1)
    st, out = q.run("echo shell-ready", 30)
    return res.check(f"root shell from the menu{name_suffix}", st == 0 and "shell-ready" in out, out)


def boot_virt(image, version, res, logdir, ports):
    http_port, https_port, ssh_port = ports
    q = Serial(qemu_cmd("qemu-virt", image, http_port, https_port, ssh_port), os.path.join(logdir, "qemu-virt-serial.log"))
    try:
        m = q.expect(r"PiNAS: booting slot A", 120)
        res.check("U-Boot runs boot.scr from the image and picks slot A", m is not None, "no slot message")
        t0 = q.elapsed()
        m = q.expect(r"login:", 600)
        text = q.buf.decode(errors="replace")
        res.check("serial console shows the login prompt", m is not None, text[-2000:])
        if not m:
            return
        res.check("serial console shows the PiNAS banner", re.search(rf"PiNAS {re.escape(version)} on", text) is not None,
                  text[-1500:])
        print(f"# qemu-virt: login prompt {q.elapsed():.0f} s after QEMU start ({t0:.0f} s in firmware)", flush=True)
        ok, body = wait_health(http_port, 240)
        res.check("/api/system/health answers through the forwarded port", ok, body)
        print(f"# qemu-virt: health answered {q.elapsed():.0f} s after QEMU start", flush=True)
        st, hdr, _ = http(f"http://127.0.0.1:{http_port}/")
        loc = {k.lower(): v for k, v in hdr.items()}.get("location", "")
        res.check("plain HTTP redirects to HTTPS", st in (301, 302, 307, 308) and loc.startswith("https://"),
                  f"{st} {loc}")
        try:
            st, _, body = http(f"https://127.0.0.1:{https_port}/api/system/health")
            res.check("HTTPS answers with the first-boot certificate", st == 200, f"{st} {body[:200]}")
        except Exception as e:
            res.check("HTTPS answers with the first-boot certificate", False, repr(e))
        # Setup through the API (the first-boot wizard's calls).
        base = f"https://127.0.0.1:{https_port}"
        st, _, body = http(f"{base}/api/setup")
        res.check("setup not done on a fresh image", st == 200 and json.loads(body).get("done") is False, body)
        st, _, body = http(f"{base}/api/setup", {
            "admin": {"username": "admin", "password": "image-test-pass-1"},
            "hostname": "nas-lab", "timezone": "Europe/Paris", "roles": ["nas"]})
        res.check("setup through the API", st == 200, f"{st} {body[:300]}")
        st, _, body = http(f"{base}/api/auth/login", {"username": "admin", "password": "image-test-pass-1"})
        res.check("admin logs in after setup", st == 200, f"{st} {body[:300]}")

        if not console_login(q, res, version):
            return
        st, out = q.run("touch /pinas-write-test")
        res.check("/ is read-only (a write fails)", st not in (0, None), out)
        st, out = q.run("findmnt -no FSTYPE,OPTIONS /")
        res.check("/ is the squashfs, mounted ro", st == 0 and out.startswith("squashfs") and "ro" in out, out)
        st, out = q.run("echo kept-$(cat /etc/machine-id) > /storage/image-test && sync && cat /storage/image-test")
        res.check("/storage is writable", st == 0 and out.startswith("kept-"), out)
        kept = out.strip()
        # storage-grown holds "sectors before, sectors after"; the partition must now end
        # within 1 MiB of the end of the (2 GiB) disk, and ext4 must fill it.
        st, out = q.run("cat /storage/.system/storage-grown; cat /sys/class/block/vda4/start /sys/class/block/vda4/size "
                        "/sys/class/block/vda/size; df -k --output=size /storage | tail -1")
        nums = [int(x) for x in re.findall(r"\d+", out)]
        ok = (st == 0 and len(nums) == 6 and nums[1] > nums[0] and nums[3] == nums[1]
              and nums[2] + nums[3] >= nums[4] - 2048)
        res.check("storage partition was grown on first boot", ok, out)
        res.check("storage filesystem fills the grown partition",
                  ok and nums[5] * 2 > nums[3] * 0.9, out)
        # The SSH host keys come after the web UI, at low priority: wait for them.
        st, out = q.run("systemctl start pinas-ssh-keys.service", 600)
        res.check("SSH host keys made after the web UI", st == 0, out)
        st, out = q.run("for u in $(systemctl list-unit-files 'pinas-*' --state=enabled --no-legend | awk '{print $1}'); "
                        "do echo \"$u $(systemctl is-active $u)\"; done")
        lines = [l for l in out.splitlines() if l.strip()]
        bad = [l for l in lines if not l.endswith(" active")]
        res.check("every pinas unit is active", st == 0 and len(lines) >= 3 and not bad, out)
        st, out = q.run("systemctl --failed --no-legend --plain")
        res.check("no failed units", st == 0 and out.strip() == "", out)
        st, out = q.run("systemctl is-active systemd-networkd systemd-timesyncd avahi-daemon ssh; "
                        "systemctl is-active smbd nmbd wsdd2")
        res.check("networkd, timesyncd, avahi, ssh active; smbd, nmbd, wsdd2 off until shares are on",
                  out.split() == ["active"] * 4 + ["inactive"] * 3, out)
        st, out = q.run("hostname; cat /etc/hostname; getent hosts nas-lab.local | awk '{print $2}'")
        res.check("setup's host name is applied (kernel, /etc/hostname, mDNS)",
                  out.split() == ["nas-lab", "nas-lab", "nas-lab.local"], out)
        st, out = q.run("readlink -f /etc/localtime; date +%Z")
        res.check("setup's time zone is applied", out.split()[:1] == ["/usr/share/zoneinfo/Europe/Paris"]
                  and out.split()[-1:] in (["CET"], ["CEST"]), out)
        st, out = q.run("mount -o ro /dev/disk/pinas/boot /mnt && tr -d '\\000' < /mnt/pinas-boot.env; umount /mnt")
        res.check("slot marked good (boot counter back to 3)", "BOOT_A_LEFT=3" in out, out)
        st, out = q.run("ls /storage/.pinas/tls/ /storage/.system/ssh/ | tr '\\n' ' '")
        res.check("first boot made the TLS certificate and SSH host keys",
                  "cert.pem" in out and "key.pem" in out and "ssh_host_ed25519_key" in out, out)

        # Reboot: /storage survives, setup stays done.
        q.send("systemctl reboot\n")
        m = q.expect(r"PiNAS: booting slot A", 180)
        res.check("reboot goes through U-Boot again", m is not None, "")
        m = q.expect(r"login:", 600)
        res.check("login prompt after reboot", m is not None, "")
        ok, body = wait_health(http_port, 240)
        res.check("health answers after reboot", ok, body)
        st, _, body = http(f"{base}/api/setup")
        res.check("setup still done after reboot", st == 200 and json.loads(body).get("done") is True, body)
        if console_login(q, res, version, " (after reboot)"):
            st, out = q.run("cat /storage/image-test")
            res.check("/storage survives a reboot", st == 0 and out.strip() == kept, f"{out!r} vs {kept!r}")
            st, out = q.run("hostname; date +%Z")
            res.check("host name and time zone kept after reboot",
                      out.split()[:1] == ["nas-lab"] and out.split()[-1:] in (["CET"], ["CEST"]), out)
            q.send("systemctl poweroff\n")
        q.stop(120)
    finally:
        if q.proc.poll() is None:
            q.proc.kill()
            q.proc.wait()


def boot_rpi3(image, version, res, logdir, ports):
    http_port, https_port, ssh_port = ports
    q = Serial(qemu_cmd("rpi3bp", image, http_port, https_port, ssh_port), os.path.join(logdir, "rpi3bp-serial.log"))
    try:
        m = q.expect(r"login:", 900)
        text = q.buf.decode(errors="replace")
        res.check("raspi3b: serial login prompt on the mini UART", m is not None, text[-2000:])
        if m:
            res.check("raspi3b: PiNAS banner", f"PiNAS {version}" in text, text[-1000:])
            print(f"# rpi3bp: login prompt {q.elapsed():.0f} s after QEMU start", flush=True)
        ok, body = wait_health(http_port, 300)
        res.check("raspi3b: /api/system/health over USB networking", ok, body)
        print(f"# rpi3bp: health answered {q.elapsed():.0f} s after QEMU start", flush=True)
    finally:
        q.proc.kill()
        q.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("what", choices=["structure", "boot-virt", "boot-rpi3"])
    ap.add_argument("--board", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--logdir", required=True)
    ap.add_argument("--ports", default="18080,18443,12222")
    a = ap.parse_args()
    res = Results(a.results, a.board)
    ports = [int(p) for p in a.ports.split(",")]
    img = a.image
    if a.what == "structure":
        if img.endswith((".xz", ".zst")):
            raw = os.path.join(a.logdir, f"{a.board}-structure.img")
            dec = ["xz", "-dc"] if img.endswith(".xz") else ["zstd", "-qdc"]
            with open(raw, "wb") as f:
                subprocess.run(dec + [img], stdout=f, check=True)
            img = raw
        try:
            structure(a.board, img, a.version, res)
        finally:
            if img != a.image:
                os.unlink(img)
    elif a.what == "boot-virt":
        boot_virt(img, a.version, res, a.logdir, ports)
    else:
        boot_rpi3(img, a.version, res, a.logdir, ports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
