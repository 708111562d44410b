"""Clusters over several servers, on Mininet's Cluster Edition.

``Cluster(servers=["a", "b"], placement="clients:a,backends:b")`` builds the same
topology with ``mininet.examples.cluster.MininetCluster`` (shipped in Debian's
mininet package): each host's namespace is created on its server through SSH
(``RemoteHost``), and a link between two servers is a tunnel. This module adds
what the cluster needs on top of it:

- **Placement**: which server each host runs on, by role (``clients``,
  ``frontends``, ``backends``) or by name (``be2``). r0 and the two bridges stay
  on this machine (``localhost``): every link of a remote host is a tunnel to
  them, as on a testbed whose switch is one machine.
- **Tunnels**: :class:`VxlanLink`, Mininet's ``RemoteGRELink`` with VXLAN in
  place of GRE (this kernel has no GRE; VXLAN is in every distribution kernel),
  MTU 1450 on every link, rate shaping (TCIntf) kept.
- **Processes on a server** (:class:`RemoteProcess`): Mininet's remote ``popen``
  passes the command to ssh unquoted, drops the environment and, without a tty,
  a signal to the local ssh client never reaches the remote process. Here the
  command is quoted, the variables the caller set are passed with ``env``, and
  signals go to the remote process's own PID (``kill`` over the same SSH).
- **Facts** for the results' manifest: each server's kernel, CPU and core count.

What every server needs: the same checkout at the same path, built
(``ci/bootstrap`` and ``./lab build``), root SSH from this machine without a
password, and the cluster's run directory (``$HANDOFFLAB_CACHE``, default
/tmp/handofflab) shared at the same path (NFS or the like): configurations,
document roots, the engines' counters and logs are files there. ``check_servers``
proves both before anything starts. :class:`NetnsServer` is such a server made
on this machine (a network namespace running Debian's sshd), for the tests and
``--servers netns``: it shares this machine's kernel, CPUs, files and process
table, so it shows that the cluster works across SSH and tunnels, not what
separate machines would measure.
"""
from __future__ import annotations

import logging
import os
import secrets
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

log = logging.getLogger(__name__)

LOCAL = "localhost"
ROLES = ("clients", "frontends", "backends")
TUNNEL_MTU = 1450  # 1500 minus VXLAN's 50 bytes: every link of a multi-server cluster
VXLAN_PORT = 4789
NETNS_SERVER = "netns"  # --servers netns: a NetnsServer on this machine
# The variables a remote command gets when the caller's env sets them (the rest
# of the remote environment is its SSH session's).
_PASSED_PREFIXES = ("PYTHON", "HANDOFFLAB_", "LC_", "LANG")


# --- placement ---------------------------------------------------------------
def parse_placement(text: str) -> dict[str, str]:
    """``"clients:a,frontends:b,be2:c"`` -> {"clients": "a", ...}. ValueError on a
    malformed item."""
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, server = item.partition(":")
        if not sep or not key.strip() or not server.strip():
            raise ValueError(f"placement item {item!r}: expected WHAT:SERVER "
                             f"(WHAT: {', '.join(ROLES)} or a host name)")
        result[key.strip()] = server.strip()
    return result


def default_placement(servers: Sequence[str]) -> dict[str, str]:
    """Clients on this machine, then front-ends and back-ends on the servers in
    turn: with one server both go there, with two the front-ends on the first and
    the back-ends on the second."""
    remote = [s for s in servers if s != LOCAL]
    if not remote:
        return {}
    return {"clients": LOCAL, "frontends": remote[0], "backends": remote[-1]}


def resolve_placement(hosts: Mapping[str, str], servers: Sequence[str],
                      placement: Mapping[str, str]) -> dict[str, str]:
    """{host: server} for `hosts` ({name: role}, role one of ROLES or "router"),
    a name's own entry before its role's; unplaced hosts stay local. ValueError
    for an unknown server, role or host, or for r0 placed elsewhere."""
    known = set(servers) | {LOCAL}
    for key, server in placement.items():
        if server not in known:
            raise ValueError(f"placement {key}:{server}: {server!r} is not one of the servers "
                             f"({', '.join(sorted(known))})")
        if key not in ROLES and key not in hosts:
            raise ValueError(f"placement {key}:{server}: {key!r} is neither a role "
                             f"({', '.join(ROLES)}) nor a host ({', '.join(sorted(hosts))})")
        if hosts.get(key) == "router" and server != LOCAL:
            raise ValueError(f"placement {key}:{server}: the router and the bridges stay on "
                             f"{LOCAL} (every remote host's link is a tunnel to them)")
    return {name: placement.get(name, placement.get(role, LOCAL)) for name, role in hosts.items()}


# --- processes on a server ---------------------------------------------------
def remote_command(ns_pid: int, args: Sequence[str], pidfile: str,
                   env: Optional[Mapping[str, str]] = None) -> str:
    """The shell line run on a server (through ssh) for `args` in the namespace
    of process `ns_pid`: mnexec attaches, sh writes its PID to `pidfile` and
    becomes the command (``exec``), so that PID is the command's; `env` is
    passed with ``env`` (only what differs from this process's environment, and
    the variables the package sets)."""
    passed = []
    for key, value in sorted((env or {}).items()):
        if os.environ.get(key) != value or key.startswith(_PASSED_PREFIXES):
            passed.append(f"{key}={value}")
    inner = (["env"] + passed if passed else []) + list(args)
    return shlex.join(["sudo", "-E", "mnexec", "-da", str(ns_pid), "sh", "-c",
                       f'echo $$ > {shlex.quote(pidfile)} && exec "$@"', "sh"] + inner)


class RemoteProcess:
    """A process in a remote host: the local ssh client carries its stdio and
    exit status (poll, wait, communicate, returncode as subprocess.Popen);
    ``pid`` and the signals are the remote process's own."""

    def __init__(self, node: Any, args: Sequence[str], pidfile: str,
                 env: Optional[Mapping[str, str]] = None, **popen_kw: Any) -> None:
        self.node = node
        self.args = list(args)
        self.pidfile = pidfile
        ssh = [a for a in node.sshcmd if a != "-tt"]
        self._proc = subprocess.Popen(ssh + [remote_command(node.pid, args, pidfile, env)],
                                      start_new_session=True, **popen_kw)
        self._pid: Optional[int] = None
        self.stdin, self.stdout, self.stderr = self._proc.stdin, self._proc.stdout, self._proc.stderr

    @property
    def pid(self) -> Optional[int]:
        """The remote PID (read from its pidfile on the server; None if the
        process ended before it was known)."""
        deadline = time.monotonic() + 10
        while self._pid is None:
            out = self.node.rcmd(["cat", self.pidfile]).strip()
            if out.isdigit():
                self._pid = int(out)
            elif self._proc.poll() is not None or time.monotonic() > deadline:
                return None
            else:
                time.sleep(0.02)
        return self._pid

    @property
    def returncode(self) -> Optional[int]:
        return self._proc.returncode

    def poll(self) -> Optional[int]:
        return self._proc.poll()

    def wait(self, timeout: Optional[float] = None) -> int:
        return self._proc.wait(timeout)

    def communicate(self, input: Any = None, timeout: Optional[float] = None) -> Any:  # noqa: A002
        return self._proc.communicate(input, timeout)

    def send_signal(self, sig: int) -> None:
        if self._proc.poll() is not None:
            return
        pid = self.pid
        if pid is not None:
            self.node.rcmd(["kill", f"-{int(sig)}", str(pid)])

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
        try:  # the ssh client goes with it; if the server is gone, end the client
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def read_proc(host: Any, path: str) -> Optional[str]:
    """A /proc (or /sys) file as `host` sees it: its own server's (None if absent)."""
    if not getattr(host, "isRemote", False):
        try:
            return Path(path).read_text(errors="replace")
        except OSError:
            return None
    out, _err, rc = host.pexec(["cat", path])
    return out if rc == 0 else None


def kill_pid(host: Any, pid: int, sig: int) -> None:
    """Signal process `pid` on `host`'s server."""
    if getattr(host, "isRemote", False):
        host.rcmd(["kill", f"-{int(sig)}", str(pid)])
    else:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# --- Mininet node and link classes -------------------------------------------
def node_classes(ssh_options: Sequence[str], pid_dir: str) -> tuple[type, type, type]:
    """(host, switch, MininetCluster) classes whose ssh carries `ssh_options`
    (e.g. ``-i KEY``); remote processes keep their pidfiles in `pid_dir` on
    their server."""
    from mininet.examples.cluster import MininetCluster, RemoteHost, RemoteMixin
    from mininet.node import Node

    from .topo import IpBridge

    # A server that stops answering ends its commands within ~15 s instead of never.
    options = ["-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
               "-o", "ServerAliveCountMax=2", *ssh_options]

    class ServerHost(RemoteHost):
        """RemoteHost whose popen is a RemoteProcess (quoted, env, signals)."""
        sshbase = RemoteMixin.sshbase[:-1] + options + ["-tt"]

        def _popen(self, cmd: Any, sudo: bool = True, tt: bool = True, **params: Any) -> Any:
            if self.isRemote:
                return super()._popen(cmd, sudo=sudo, tt=tt, **params)
            # A host here is a plain Mininet host: RemoteMixin's setpgrp would make
            # mnexec -d fork, and its Popen end at once.
            return Node._popen(self, cmd, **params)

        def popen(self, *args: Any, **kwargs: Any) -> Any:
            if not self.isRemote:
                return Node.popen(self, *args, **kwargs)
            if kwargs.pop("shell", False):
                raise ValueError("RemoteProcess: pass the command as a list (no shell=True)")
            cmd = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else (
                args[0].split() if len(args) == 1 else list(args))
            kwargs.pop("mncmd", None)
            env = kwargs.pop("env", None)
            kwargs.setdefault("stdout", subprocess.PIPE)
            kwargs.setdefault("stderr", subprocess.PIPE)
            pidfile = f"{pid_dir}/{self.name}.{secrets.token_hex(4)}"
            return RemoteProcess(self, [str(a) for a in cmd], pidfile, env=env, **kwargs)

        def rcmd(self, *cmd: Any, **opts: Any) -> str:
            """On this node's server, outside its namespace (a list is quoted)."""
            if len(cmd) == 1 and isinstance(cmd[0], (list, tuple)):
                cmd = (shlex.join(str(a) for a in cmd[0]),) if self.isRemote else (list(cmd[0]),)
            return super().rcmd(*cmd, **opts)

    class ServerBridge(IpBridge):
        """The bridges stay on this machine; tunnels ask for its server and rcmd."""

        def __init__(self, name: str, server: str = LOCAL, serverIP: Optional[str] = None,
                     **params: Any) -> None:
            if server != LOCAL:
                raise ValueError(f"bridge {name}: bridges stay on {LOCAL}, not {server}")
            self.server, self.serverIP = LOCAL, serverIP or "127.0.0.1"
            super().__init__(name, **params)

        def rcmd(self, *cmd: Any, **_opts: Any) -> str:
            args = cmd[0] if len(cmd) == 1 else " ".join(cmd)
            run = subprocess.run(args, shell=isinstance(args, str), capture_output=True, text=True)
            return run.stdout + run.stderr

    class ServerCluster(MininetCluster):
        sshcmd = MininetCluster.sshcmd + options

    return ServerHost, ServerBridge, ServerCluster


def vxlan_link_class() -> type:
    """Mininet's RemoteGRELink over VXLAN, with TCIntf (rate shaping) on both ends."""
    from mininet.examples.cluster import RemoteGRELink
    from mininet.link import TCIntf
    from mininet.util import quietRun

    class VxlanLink(RemoteGRELink):
        # A random start: another cluster's tunnels (or a crashed run's) between
        # the same two addresses must not have the same VNI.
        vni = secrets.randbelow(1 << 23)

        def __init__(self, node1: Any, node2: Any, **kwargs: Any) -> None:
            kwargs.setdefault("cls1", TCIntf)  # as TCLink does
            kwargs.setdefault("cls2", TCIntf)
            RemoteGRELink.__init__(self, node1, node2, **kwargs)

        def makeTunnel(self, node1: Any, node2: Any, intfname1: str, intfname2: str,
                       addr1: Any = None, addr2: Any = None) -> None:
            if node2.server == LOCAL:  # the local end first: its address is the route's
                return self.makeTunnel(node2, node1, intfname2, intfname1, addr2, addr1)
            ip1, ip2 = node1.serverIP, node2.serverIP
            if node1.server == LOCAL:
                ip1 = quietRun(f"ip route get {ip2}").split(" src ")[1].split()[0]
            VxlanLink.vni += 1
            for node, name, addr, local, remote in ((node1, intfname1, addr1, ip1, ip2),
                                                    (node2, intfname2, addr2, ip2, ip1)):
                node.rcmd(f"ip link delete {name}")
                err = node.rcmd(f"ip link add name {name} type vxlan id {VxlanLink.vni} "
                                f"local {local} remote {remote} dstport {VXLAN_PORT}")
                if err.strip():
                    raise RuntimeError(f"vxlan {name} on {node} ({node.server}): {err.strip()}")
                if addr:
                    node.rcmd(f"ip link set {name} address {addr}")
                node.rcmd(f"ip link set dev {name} mtu {TUNNEL_MTU} up")
                if not self.moveIntf(name, node):
                    raise RuntimeError(f"vxlan {name}: could not move it into {node}")
            return None

    return VxlanLink


# --- servers -----------------------------------------------------------------
@dataclass
class ServerFacts:
    """What the manifest records of one server."""
    kernel: str
    cpu: str
    cpus: int
    hostname: str

    @classmethod
    def parse(cls, text: str) -> "ServerFacts":
        """From FACTS_COMMAND's output."""
        lines = (text.strip().splitlines() + ["", "", "", ""])[:4]
        return cls(kernel=lines[0].strip(), hostname=lines[1].strip(),
                   cpus=int(lines[2]) if lines[2].strip().isdigit() else 0,
                   cpu=lines[3].partition(":")[2].strip())


FACTS_COMMAND = "uname -r; hostname; nproc; grep -m1 '^model name' /proc/cpuinfo"


def ssh_base(ssh_options: Sequence[str], server: str) -> list[str]:
    return ["ssh", "-q", "-o", "BatchMode=yes", *ssh_options, f"root@{server}"]


def server_run(server: str, command: str, ssh_options: Sequence[str] = (),
               timeout: float = 30) -> subprocess.CompletedProcess:
    """A shell command on `server` (locally for localhost)."""
    args = (["sh", "-c", command] if server == LOCAL
            else ssh_base(ssh_options, server) + [command])
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def server_facts(servers: Sequence[str], ssh_options: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """{server: {kernel, cpu, cpus, hostname}} for this machine and every server."""
    result = {}
    for server in dict.fromkeys([LOCAL, *servers]):
        run = server_run(server, FACTS_COMMAND, ssh_options)
        result[server] = vars(ServerFacts.parse(run.stdout))
    return result


def check_servers(servers: Sequence[str], run_dir: Path, checkout: Path,
                  ssh_options: Sequence[str] = ()) -> None:
    """Every server answers root SSH without a password, sees this cluster's
    run directory (a token written here) and has the checkout at the same
    path; RuntimeError saying which does not."""
    token = secrets.token_hex(8)
    token_file = run_dir / f".server-check-{token}"
    token_file.write_text(token)
    try:
        for server in servers:
            if server == LOCAL:
                continue
            run = server_run(server, f"cat {shlex.quote(str(token_file))}; echo; "
                             f"test -d {shlex.quote(str(checkout))} && echo checkout; "
                             "command -v mnexec sudo", ssh_options)
            if run.returncode == 255:
                raise RuntimeError(f"server {server}: ssh root@{server} failed "
                                   f"({run.stderr.strip() or 'no answer'}); it needs root SSH "
                                   f"with a key (BatchMode)")
            out = run.stdout.split()
            if token not in out:
                raise RuntimeError(f"server {server} does not see {run_dir}: the run directory "
                                   f"($HANDOFFLAB_CACHE) must be shared at the same path (NFS)")
            if "checkout" not in out:
                raise RuntimeError(f"server {server} has no {checkout}: clone and build the "
                                   f"same checkout at the same path (ci/bootstrap, ./lab build)")
            if not any(w.endswith("/mnexec") for w in out) or not any(w.endswith("/sudo") for w in out):
                raise RuntimeError(f"server {server} lacks mnexec or sudo: run ci/bootstrap there")
    finally:
        token_file.unlink(missing_ok=True)


class NetnsServer:
    """A second "server" on this machine: network namespace ``hlsrvXXXX`` behind
    a veth pair (10.250.X.1 here, 10.250.X.2 there) running Debian's sshd on
    that address, root login by a key of its own (``ssh_options`` carry it).
    Shares this machine's kernel, CPUs, files and processes (see the module
    docstring for what that cannot show)."""

    def __init__(self, workdir: Path) -> None:
        # The subnet is the tag's last byte: one no interface here has (another
        # cluster's server, or one being removed, would take the replies).
        in_use = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                                text=True).stdout
        while True:
            self.tag = "hlsrv" + secrets.token_hex(2)
            subnet = int(self.tag[-2:], 16)
            if f" 10.250.{subnet}." not in in_use:
                break
        self.workdir = Path(workdir) / self.tag
        self.local_ip, self.ip = f"10.250.{subnet}.1", f"10.250.{subnet}.2"
        self.sshd: Optional[subprocess.Popen] = None

    @property
    def ssh_options(self) -> list[str]:
        return ["-i", str(self.workdir / "client_key"), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]

    def __enter__(self) -> "NetnsServer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)

        def sh(*args: str) -> None:
            subprocess.run(args, check=True, capture_output=True, text=True)

        sh("ip", "netns", "add", self.tag)
        sh("ip", "link", "add", f"{self.tag}a", "type", "veth", "peer", "name", f"{self.tag}b")
        sh("ip", "link", "set", f"{self.tag}b", "netns", self.tag)
        sh("ip", "addr", "add", f"{self.local_ip}/30", "dev", f"{self.tag}a")
        sh("ip", "link", "set", f"{self.tag}a", "up")
        sh("ip", "-n", self.tag, "addr", "add", f"{self.ip}/30", "dev", f"{self.tag}b")
        sh("ip", "-n", self.tag, "link", "set", f"{self.tag}b", "up")
        sh("ip", "-n", self.tag, "link", "set", "lo", "up")
        for key in ("host_key", "client_key"):
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(w / key))
        (w / "authorized_keys").write_text((w / "client_key.pub").read_text())
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        # nsenter --net: the server's root namespace is a network namespace only (the
        # same files and mounts as here, as Mininet's own hosts have).
        self.sshd = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.tag}", "/usr/sbin/sshd", "-D", "-f", "/dev/null",
             "-h", str(w / "host_key"), "-E", str(w / "sshd.log"),
             "-o", f"ListenAddress={self.ip}", "-o", f"AuthorizedKeysFile={w}/authorized_keys",
             "-o", "PermitRootLogin=prohibit-password", "-o", "StrictModes=no",
             "-o", "UseDNS=no", "-o", "MaxSessions=500", "-o", "MaxStartups=500",
             "-o", f"PidFile={w}/sshd.pid"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                run = server_run(self.ip, "true", self.ssh_options + ["-o", "ConnectTimeout=5"],
                                 timeout=timeout)
                if run.returncode == 0:
                    break
                answer = f"ssh exit {run.returncode}: {run.stderr.strip()[-300:]}"
            except subprocess.TimeoutExpired:
                answer = f"ssh took over {timeout:g} s"
            if self.sshd.poll() is not None or time.monotonic() > deadline:
                routes = subprocess.run(["ip", "-4", "-o", "addr", "show", "to", f"{self.local_ip}/30"],
                                        capture_output=True, text=True).stdout
                raise RuntimeError(f"sshd in {self.tag} did not answer ({answer}); "
                                   f"addresses in {self.local_ip}/30 here: {routes.strip()!r}; "
                                   f"sshd log: {(w / 'sshd.log').read_text(errors='replace')[-500:]}")
            time.sleep(0.1)
        log.info("server %s: netns %s, sshd pid %d", self.ip, self.tag, self.sshd.pid)

    def stop(self) -> None:
        """Stops sshd and every process left in the namespace, removes it."""
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            try:
                self.sshd.wait(5)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
        remove_netns(self.tag)


def remove_netns(name: str) -> None:
    """Ends every process left in network namespace `name` (SSH sessions whose
    client is gone wait forever), removes it and its veth."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
        for pid in map(int, pids.split()):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if pids.strip() and sig == signal.SIGTERM:
            time.sleep(0.5)
    subprocess.run(["ip", "link", "del", f"{name}a"], capture_output=True)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _owner_alive(name: str) -> bool:
    """Whether the process that started NetnsServer `name` (its sshd's parent) lives."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
    for pid in pids.split():
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith((b"/usr/sbin/sshd", b"sshd: /usr/sbin/sshd")):
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        return ppid > 1 and Path(f"/proc/{ppid}").exists()
    return False


def remove_leftover_servers() -> list[str]:
    """Removes the NetnsServers of crashed runs (namespaces hlsrv* whose owner is
    gone; another live cluster's stays); their names."""
    names = [line.split()[0] for line in subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
        if line.startswith("hlsrv")]
    names = [name for name in names if not _owner_alive(name)]
    for name in names:
        remove_netns(name)
    return names
