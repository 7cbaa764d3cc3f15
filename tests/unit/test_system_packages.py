"""scripts/system-packages.sh: install what `make test` needs, or stop at once with one line.

Every case runs the script in a sandbox: the checked paths point into tmp_path, PATH holds only
stand-ins (``id``, ``apt-get``, ``sudo``) written here, so nothing is ever installed; the stand-in
``apt-get`` records its calls and "installs" by creating the checked files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system-packages.sh"
SHELLS = [shell for shell in ("sh", "bash") if shutil.which(shell)]
QUICK_SECONDS = 10.0
"""Well inside the minute the script may take before it stops."""
ALL = "chromium postgresql prometheus prometheus-alertmanager"
ALL_SPOKEN = "chromium, postgresql, prometheus and prometheus-alertmanager"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Sandbox:
    """A PATH of stand-ins and where the checks look."""

    root: Path
    bin: Path
    chromium: Path
    pg_glob: str
    pg_bin: Path
    apt_log: Path

    @property
    def executables(self) -> dict[str, Path]:
        """Each checked executable by its SYSTEM_PACKAGES_* variable (Chromium and the rest)."""
        usr_bin = self.root / "usr" / "bin"
        return {
            "SYSTEM_PACKAGES_CHROMIUM": self.chromium,
            "SYSTEM_PACKAGES_PROMETHEUS": usr_bin / "prometheus",
            "SYSTEM_PACKAGES_PROMTOOL": usr_bin / "promtool",
            "SYSTEM_PACKAGES_ALERTMANAGER": usr_bin / "prometheus-alertmanager",
            "SYSTEM_PACKAGES_AMTOOL": usr_bin / "amtool",
        }

    def files(self) -> list[Path]:
        """Every file the checks look for."""
        return [*self.executables.values(), self.pg_bin / "pg_ctl", self.pg_bin / "initdb"]

    def tool(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)

    def as_uid(self, uid: int) -> None:
        self.tool("id", f'[ "$1" = -u ] && echo {uid}\n')

    def with_apt_get(self, *, fail: str = "", creates: bool = True) -> None:
        """A stand-in apt-get: records each call; "install" creates the checked files."""
        files = " ".join(f"'{path}'" for path in self.files())
        make = (
            f"mkdir -p '{self.chromium.parent}' '{self.pg_bin}'\ntouch {files}\nchmod +x {files}\n"
            if creates
            else ":\n"
        )
        self.tool(
            "apt-get",
            f"PATH='{os.environ['PATH']}'\n"
            f"echo \"DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*\" >> '{self.apt_log}'\n"
            + (f'[ "$1" = {fail} ] && exit 100\n' if fail else "")
            + f'if [ "$1" = install ]; then\n{make}fi\n',
        )

    def with_sudo(self, *, passwordless: bool) -> None:
        """A stand-in sudo: `-n` fails when a password would be asked, else runs the command."""
        env = shutil.which("env")
        assert env is not None
        if passwordless:
            body = (
                '[ "$1" = -n ] || exit 1\nshift\n[ "$1" = true ] && exit 0\n'
                f"PATH='{self.bin}' exec {env} \"$@\"\n"
            )
        else:
            body = "echo 'sudo: a password is required' >&2\nexit 1\n"
        self.tool("sudo", body)

    def present(self) -> None:
        """Every checked file is where the checks look."""
        for path in self.files():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)

    def apt_calls(self) -> list[str]:
        return self.apt_log.read_text().splitlines() if self.apt_log.exists() else []

    def run(self, shell: str = "sh", **env: str) -> Result:
        executable = shutil.which(shell)
        assert executable is not None
        environment = {
            "PATH": str(self.bin),
            "HOME": str(self.root),
            "LC_ALL": "C",
            **{name: str(path) for name, path in self.executables.items()},
            "SYSTEM_PACKAGES_PG_BINDIRS": self.pg_glob,
            **env,
        }
        started = time.monotonic()
        done = subprocess.run(
            [executable, str(SCRIPT)],
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    (tmp_path / "bin").mkdir()
    box = Sandbox(
        root=tmp_path,
        bin=tmp_path / "bin",
        chromium=tmp_path / "usr" / "bin" / "chromium",
        pg_glob=str(tmp_path / "usr" / "lib" / "postgresql" / "*" / "bin"),
        pg_bin=tmp_path / "usr" / "lib" / "postgresql" / "15" / "bin",
        apt_log=tmp_path / "apt-get.log",
    )
    box.as_uid(1000)
    return box


def assert_stops_with(result: Result, line: str) -> None:
    assert result.returncode != 0
    assert result.seconds < QUICK_SECONDS
    assert result.stdout == ""
    assert result.stderr.splitlines() == [line]


@pytest.mark.parametrize("shell", SHELLS)
def test_install_forbidden_stops_at_once_naming_the_command(sandbox: Sandbox, shell: str) -> None:
    """All missing, installing forbidden: one line naming every package, apt-get never run."""
    sandbox.as_uid(0)
    sandbox.with_apt_get()
    result = sandbox.run(
        shell,
        SYSTEM_PACKAGES_INSTALL="no",
        SYSTEM_PACKAGES_CHROMIUM="/nonexistent/chromium",
        SYSTEM_PACKAGES_PG_BINDIRS="/nonexistent/postgresql/*/bin",
    )
    assert_stops_with(
        result,
        f"make test needs {ALL_SPOKEN}: run apt-get install -y {ALL}",
    )
    assert sandbox.apt_calls() == []


def test_non_root_without_sudo_names_the_sudo_command(sandbox: Sandbox) -> None:
    """Not root and no sudo: the line says what to run with sudo."""
    sandbox.with_apt_get()
    assert_stops_with(
        sandbox.run(),
        f"make test needs {ALL_SPOKEN}: run sudo apt-get install -y {ALL}",
    )
    assert sandbox.apt_calls() == []


def test_sudo_that_asks_for_a_password_is_not_waited_on(sandbox: Sandbox) -> None:
    """sudo is only tried non-interactively (-n); one asking for a password means stop."""
    sandbox.with_apt_get()
    sandbox.with_sudo(passwordless=False)
    assert_stops_with(
        sandbox.run(),
        f"make test needs {ALL_SPOKEN}: run sudo apt-get install -y {ALL}",
    )
    assert sandbox.apt_calls() == []


def test_root_without_apt_get_names_the_command(sandbox: Sandbox) -> None:
    """Root but no apt-get on PATH (not Debian): stop with the Debian command all the same."""
    sandbox.as_uid(0)
    assert_stops_with(
        sandbox.run(),
        f"make test needs {ALL_SPOKEN}: run apt-get install -y {ALL}",
    )


def test_only_the_missing_package_is_named(sandbox: Sandbox) -> None:
    """Chromium there, PostgreSQL server not: only postgresql is asked for."""
    sandbox.present()
    shutil.rmtree(sandbox.pg_bin)
    assert_stops_with(
        sandbox.run(), "make test needs postgresql: run sudo apt-get install -y postgresql"
    )


def test_a_postgresql_directory_without_initdb_does_not_count(sandbox: Sandbox) -> None:
    """Both server binaries are needed: pg_ctl alone (a client-only layout) is not enough."""
    sandbox.present()
    (sandbox.pg_bin / "initdb").unlink()
    assert_stops_with(
        sandbox.run(), "make test needs postgresql: run sudo apt-get install -y postgresql"
    )


@pytest.mark.parametrize(
    ("variable", "package"),
    [
        ("SYSTEM_PACKAGES_PROMETHEUS", "prometheus"),
        ("SYSTEM_PACKAGES_PROMTOOL", "prometheus"),
        ("SYSTEM_PACKAGES_ALERTMANAGER", "prometheus-alertmanager"),
        ("SYSTEM_PACKAGES_AMTOOL", "prometheus-alertmanager"),
    ],
)
def test_each_prometheus_binary_is_checked(sandbox: Sandbox, variable: str, package: str) -> None:
    """The server or its tool alone missing asks for the one Debian package that ships both."""
    sandbox.present()
    sandbox.executables[variable].unlink()
    assert_stops_with(
        sandbox.run(), f"make test needs {package}: run sudo apt-get install -y {package}"
    )


def test_a_binary_that_is_not_executable_does_not_count(sandbox: Sandbox) -> None:
    """promtool present but not executable (a half-extracted package) is still missing."""
    sandbox.present()
    sandbox.executables["SYSTEM_PACKAGES_PROMTOOL"].chmod(0o644)
    assert_stops_with(
        sandbox.run(), "make test needs prometheus: run sudo apt-get install -y prometheus"
    )


def test_a_package_is_named_once_however_many_of_its_checks_fail(sandbox: Sandbox) -> None:
    """Prometheus and promtool both missing, amtool too: each package once, in the needs' order."""
    sandbox.present()
    for variable in (
        "SYSTEM_PACKAGES_PROMETHEUS",
        "SYSTEM_PACKAGES_PROMTOOL",
        "SYSTEM_PACKAGES_AMTOOL",
    ):
        sandbox.executables[variable].unlink()
    assert_stops_with(
        sandbox.run(),
        "make test needs prometheus and prometheus-alertmanager: "
        "run sudo apt-get install -y prometheus prometheus-alertmanager",
    )


def test_paths_are_overridable(sandbox: Sandbox) -> None:
    """SYSTEM_PACKAGES_AMTOOL points the check elsewhere: a file there satisfies it."""
    sandbox.present()
    sandbox.executables["SYSTEM_PACKAGES_AMTOOL"].unlink()
    elsewhere = sandbox.root / "opt" / "amtool"
    elsewhere.parent.mkdir()
    elsewhere.write_text("#!/bin/sh\n")
    elsewhere.chmod(0o755)
    result = sandbox.run(SYSTEM_PACKAGES_AMTOOL=str(elsewhere))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize("shell", SHELLS)
def test_everything_present_prints_nothing_and_never_calls_apt_get(
    sandbox: Sandbox, shell: str
) -> None:
    """The second and every later `make test`: silent, quick, no apt-get."""
    sandbox.as_uid(0)
    sandbox.with_apt_get()
    sandbox.present()
    result = sandbox.run(shell)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert result.seconds < QUICK_SECONDS
    assert sandbox.apt_calls() == []


def test_root_installs_exactly_the_missing_packages_once(sandbox: Sandbox) -> None:
    """As root: one `apt-get update -qq`, one non-interactive install; a rerun does nothing."""
    sandbox.as_uid(0)
    sandbox.with_apt_get()
    first = sandbox.run()
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    assert first.stderr.splitlines() == [f"make test: installing {ALL} with apt-get"]
    assert sandbox.apt_calls() == [
        "DEBIAN_FRONTEND=noninteractive update -qq",
        f"DEBIAN_FRONTEND=noninteractive install -y -qq --no-install-recommends {ALL}",
    ]
    again = sandbox.run()
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert len(sandbox.apt_calls()) == 2


def test_passwordless_sudo_installs_only_what_is_missing(sandbox: Sandbox) -> None:
    """Not root but passwordless sudo: installs through sudo, only the missing packages."""
    sandbox.with_apt_get()
    sandbox.with_sudo(passwordless=True)
    sandbox.present()
    sandbox.chromium.unlink()
    sandbox.executables["SYSTEM_PACKAGES_AMTOOL"].unlink()
    result = sandbox.run()
    assert result.returncode == 0, result.stderr
    assert sandbox.apt_calls() == [
        "DEBIAN_FRONTEND=noninteractive update -qq",
        "DEBIAN_FRONTEND=noninteractive install -y -qq --no-install-recommends "
        "chromium prometheus-alertmanager",
    ]


def test_a_failing_apt_get_ends_with_the_command_to_run(sandbox: Sandbox) -> None:
    """apt-get's own error stays on stderr; the last line says what to run, the status fails."""
    sandbox.as_uid(0)
    sandbox.with_apt_get(fail="install")
    result = sandbox.run()
    assert result.returncode != 0
    assert result.stderr.splitlines()[-1] == (
        f"make test needs {ALL_SPOKEN}: run apt-get install -y {ALL}"
    )


def test_an_install_that_leaves_a_need_unmet_fails(sandbox: Sandbox) -> None:
    """apt-get succeeding is not taken on trust: the needs are checked again afterwards."""
    sandbox.as_uid(0)
    sandbox.with_apt_get(creates=False)
    result = sandbox.run()
    assert result.returncode != 0
    assert "still missing" in result.stderr.splitlines()[-1]
