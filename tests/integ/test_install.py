"""`make install` and `make uninstall`: PREFIX, DESTDIR and the other
directories are honoured, exactly the expected files are installed with
the expected modes, the units point at the installed daemon, a real
otasdird.yaml is never touched, and uninstall leaves only (empty)
directories behind."""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from otasenv import BUILD

TOP = Path(__file__).resolve().parents[2]


def make(*args, timeout=600):
    r = subprocess.run(["make", "--no-print-directory", "-C", str(TOP),
                        f"BUILD={BUILD}", *args], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def files_under(root):
    """{relative path: mode} of every file (not directory) below root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def docs():
    return sorted(["README.md"] if (TOP / "README.md").exists() else []) + \
        sorted(p.name for p in (TOP / "docs").glob("*.md"))


def expected(prefix="usr/local", etc="etc", units="lib/systemd/system",
             sysusers="usr/lib/sysusers.d"):
    want = {
        f"{prefix}/sbin/otasdird": 0o755,
        f"{prefix}/bin/otasctl": 0o755,
        f"{etc}/otasdir/otasdird.yaml.example": 0o644,
        f"{etc}/logrotate.d/otasdird": 0o644,
        f"{units}/otasdird.service": 0o644,
        f"{units}/otasdird.socket": 0o644,
        f"{sysusers}/otasdird.conf": 0o644,
        f"{prefix}/share/man/man1/otasctl.1": 0o644,
        f"{prefix}/share/man/man5/otasdird.yaml.5": 0o644,
        f"{prefix}/share/man/man8/otasdird.8": 0o644,
    }
    for s in ("otasdir.schema", "otasdir.ldif", "otasdir-access.conf",
              "otasdir-access.ldif"):
        want[f"{prefix}/share/otasdir/schema/{s}"] = 0o644
    for d in docs():
        want[f"{prefix}/share/doc/otasdir/{d}"] = 0o644
    return want


def test_install_into_destdir_and_uninstall(tmp_path):
    dest = tmp_path / "dest"
    make("install", f"DESTDIR={dest}")
    assert files_under(dest) == expected()
    root = dest
    # The copies are the built and shipped files.
    assert (root / "usr/local/sbin/otasdird").read_bytes() == \
        (BUILD / "otasdird").read_bytes()
    assert (root / "etc/otasdir/otasdird.yaml.example").read_text() == \
        (TOP / "conf/otasdird.yaml").read_text()
    # The units name the installed daemon, without DESTDIR.
    svc = (root / "lib/systemd/system/otasdird.service").read_text()
    assert re.search(r"^ExecStart=/usr/local/sbin/otasdird --config "
                     r"/etc/otasdir/otasdird.yaml$", svc, re.M)
    assert str(dest) not in svc

    # A real config (and secret) next to the example survive a reinstall
    # and an uninstall.
    real = root / "etc/otasdir/otasdird.yaml"
    real.write_text("# the operator's\n")
    secret = root / "etc/otasdir/bind.secret"
    secret.write_text("s3cret")
    make("install", f"DESTDIR={dest}")
    assert real.read_text() == "# the operator's\n"

    make("uninstall", f"DESTDIR={dest}")
    assert files_under(dest) == {"etc/otasdir/otasdird.yaml": 0o644,
                                 "etc/otasdir/bind.secret": 0o644}
    real.unlink()
    secret.unlink()
    assert files_under(dest) == {}
    assert any(p.is_dir() for p in dest.rglob("*"))     # only directories


def test_prefix_and_directories(tmp_path):
    dest = tmp_path / "dest"
    make("install", f"DESTDIR={dest}", "PREFIX=/opt/otasdir",
         "SYSCONFDIR=/etc/opt/otasdir", "UNITDIR=/etc/systemd/system",
         "SYSUSERSDIR=/etc/sysusers.d")
    want = expected(prefix="opt/otasdir", etc="etc/opt/otasdir",
                    units="etc/systemd/system", sysusers="etc/sysusers.d")
    # LOGROTATEDIR follows SYSCONFDIR.
    assert files_under(dest) == want
    svc = (dest / "etc/systemd/system/otasdird.service").read_text()
    assert "ExecStart=/opt/otasdir/sbin/otasdird --config " \
        "/etc/opt/otasdir/otasdir/otasdird.yaml" in svc
    assert "LoadCredential=bind.secret:/etc/opt/otasdir/otasdir/" \
        "bind.secret" in svc
    assert "/usr/local" not in svc and "/etc/otasdir/" not in svc
    make("uninstall", f"DESTDIR={dest}", "PREFIX=/opt/otasdir",
         "SYSCONFDIR=/etc/opt/otasdir", "UNITDIR=/etc/systemd/system",
         "SYSUSERSDIR=/etc/sysusers.d")
    assert files_under(dest) == {}


def test_installed_units_verify_clean(tmp_path):
    """Installed (without DESTDIR) into a scratch tree, the units name a
    daemon that exists and man pages that man(1) finds:
    `systemd-analyze verify` has nothing to say about them."""
    p = tmp_path / "p"
    args = [f"PREFIX={p}", f"SYSCONFDIR={p}/etc", f"UNITDIR={p}/units",
            f"SYSUSERSDIR={p}/sysusers.d"]
    make("install", *args)
    env = dict(os.environ, MANPATH=str(p / "share/man"))
    r = subprocess.run(["systemd-analyze", "verify",
                        str(p / "units/otasdird.socket"),
                        str(p / "units/otasdird.service")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
        r.stdout + r.stderr
    r = subprocess.run([str(p / "sbin/otasdird"), "--version"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("otasdird ")
    make("uninstall", *args)
    assert files_under(p) == {}
    shutil.rmtree(p)
