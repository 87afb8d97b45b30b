"""The one atomic write (:func:`tray.paths.write_atomic`) every file codex-pool writes goes through:
a reader sees the old file or the new one; a failure leaves the old file and no temporary file;
Windows' sharing violations are waited out; no ``os.fchmod`` (Windows has it only from 3.13)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tray import paths
from tray.paths import replace_file, write_atomic, write_secret

ROOT = Path(__file__).resolve().parent.parent


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def sharing_violation() -> PermissionError:
    """What Windows raises when another process holds the file open without FILE_SHARE_DELETE."""
    exc = PermissionError(errno.EACCES, "The process cannot access the file because it is being used "
                                        "by another process")
    exc.winerror = 32  # type: ignore[attr-defined]  # set by CPython on Windows only
    return exc


def test_a_new_file_gets_the_mode_asked_for_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "config.toml", "a = 1\n", mode=0o644)
    finally:
        os.umask(old)
    target = tmp_path / "config.toml"
    assert target.read_bytes() == b"a = 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert leftovers(tmp_path) == []


def test_keep_mode_keeps_the_existing_files_permissions(tmp_path: Path) -> None:
    target = tmp_path / "auth.json"
    target.write_text("{}")
    target.chmod(0o640)
    write_atomic(target, b'{"tokens": {}}\n', mode=0o600, keep_mode=True)
    assert target.read_text() == '{"tokens": {}}\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_symlinked_file_stays_a_link_and_its_target_is_replaced(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "config.toml"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    write_atomic(link, "new\n", mode=0o644)
    assert link.is_symlink() and real.read_text() == "new\n"


def test_text_is_written_as_utf8_bytes_with_newlines_untouched(tmp_path: Path) -> None:
    write_atomic(tmp_path / "f", "é\nline\r\n")
    assert (tmp_path / "f").read_bytes() == "é\nline\r\n".encode()


def test_the_windows_branch_works_without_os_fchmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.11/3.12 on Windows has no os.fchmod: writing the user's auth.json must not need it."""
    monkeypatch.delattr(os, "fchmod")
    target = tmp_path / "auth.json"
    target.write_text("{}")
    write_atomic(target, "{\"new\": 1}\n", keep_mode=True, platform="win32")
    assert target.read_text() == "{\"new\": 1}\n"
    assert leftovers(tmp_path) == []


def test_a_sharing_violation_is_waited_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.replace fails three times with winerror 32 (a reader holds the file), then works."""
    real_replace = os.replace
    calls: list[int] = []

    def held_three_times(src: object, dst: object) -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise sharing_violation()
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(paths.os, "replace", held_three_times)
    waits: list[float] = []
    monkeypatch.setattr(paths.time, "sleep", waits.append)
    target = tmp_path / "auth.json"
    target.write_text("old")
    write_atomic(target, "new", platform="win32")
    assert target.read_text() == "new"
    assert len(calls) == 4 and waits == [0.02, 0.04, 0.08]
    assert leftovers(tmp_path) == []


def test_a_violation_that_outlasts_the_tries_fails_and_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def always_held(src: object, dst: object) -> None:
        raise sharing_violation()

    monkeypatch.setattr(paths.os, "replace", always_held)
    waits: list[float] = []
    monkeypatch.setattr(paths.time, "sleep", waits.append)
    target = tmp_path / "auth.json"
    target.write_text("old")
    with pytest.raises(PermissionError):
        write_atomic(target, "new", platform="win32")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []
    assert len(waits) == paths.REPLACE_TRIES - 1 and sum(waits) < 3.0


def test_an_eacces_without_winerror_is_raised_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A POSIX EACCES/EPERM (no ``winerror``) is a real refusal: raised at once, never retried."""
    def denied(src: object, dst: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(paths.os, "replace", denied)
    waits: list[float] = []
    with pytest.raises(PermissionError):
        replace_file(tmp_path / "a", tmp_path / "b", sleep=waits.append)
    assert waits == []


def test_a_file_another_process_holds_open_is_replaced(tmp_path: Path) -> None:
    """A real reader keeps the file open while it is replaced: it still reads the old text to the
    end, and everyone opening it afterwards reads the new one."""
    target = tmp_path / "auth.json"
    target.write_text("old contents\n")
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys
            with open(sys.argv[1]) as fh:
                print("open", flush=True)
                sys.stdin.readline()
                print(fh.read(), end="", flush=True)
        """), str(target)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as reader:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline() == "open\n"
        write_atomic(target, "new contents\n", keep_mode=True)
        reader.stdin.write("go\n")
        reader.stdin.flush()
        assert reader.stdout.read() == "old contents\n"
        assert reader.wait(10) == 0
    assert target.read_text() == "new contents\n"
    assert leftovers(tmp_path) == []


def test_a_failure_midway_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    """A real failure while writing: the file-size limit (RLIMIT_FSIZE) stops the write half way,
    in a process of its own, as a full disk would."""
    target = tmp_path / "config.toml"
    target.write_text("old = true\n")
    script = textwrap.dedent("""
        import resource, signal, sys
        from pathlib import Path
        from tray.paths import write_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_atomic(Path(sys.argv[1]), b"x" * 100_000, mode=0o644)
        except OSError as exc:
            print(exc.errno)
    """)
    run = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True,
                         cwd=ROOT, timeout=30)
    assert run.stdout.strip() == str(errno.EFBIG), run.stderr
    assert target.read_text() == "old = true\n"
    assert leftovers(tmp_path) == []


def test_an_interrupt_while_writing_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(paths.os, "fsync", interrupted)
    target = tmp_path / "api-key"
    target.write_text("cp-old\n")
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "cp-new\n")
    assert target.read_text() == "cp-old\n"
    assert leftovers(tmp_path) == []


def test_write_secret_is_private_and_says_which_file_failed(tmp_path: Path) -> None:
    secret = tmp_path / "data" / "ui-token"
    write_secret(secret, "cpmt-x\n")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(paths.PoolError, match=r"Could not write .*file/key"):
        write_secret(blocked / "key", "x")


def test_no_module_writes_files_its_own_way() -> None:
    """Every in-place write goes through write_atomic: no other module renames files into place or
    calls os.fchmod."""
    found = [f"{path.relative_to(ROOT)}:{n}"
             for path in sorted((ROOT / "tray").rglob("*.py")) if path.name != "paths.py"
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if "os.replace(" in line or "os.rename(" in line or "fchmod" in line]
    assert found == []


def test_a_custom_pool_folder_gets_a_private_acl_on_windows(tmp_path: Path) -> None:
    """Windows has no 0700: files inherit their folder's ACL. %LOCALAPPDATA% is the user's alone, a
    CODEX_POOL_HOME elsewhere may not be, so codex-pool sets one when it creates the folder."""
    assert paths.resolve_paths({"CODEX_POOL_HOME": str(tmp_path / "pool")}).custom
    assert not paths.resolve_paths({"XDG_CONFIG_HOME": str(tmp_path)}).custom
    command = paths.private_acl_command(Path("D:/pool"), r"ACME\ann")
    assert command[:3] == ["icacls", str(Path("D:/pool")), "/inheritance:r"]
    assert command[3:] == ["/grant:r", r"ACME\ann:(OI)(CI)F", "/grant:r", "*S-1-5-18:(OI)(CI)F",
                           "/grant:r", "*S-1-5-32-544:(OI)(CI)F", "/q"]
