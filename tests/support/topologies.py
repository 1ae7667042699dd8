"""Redis Cluster and Sentinel topologies for the tests, started from ``redis-server`` on loopback.

Every process is ours: started on free ports in a temporary directory, SIGKILLed by the tests
that need a failover, started again on the same port and directory by ``heal()``, and killed
by ``close()`` whatever happened. Every wait has a deadline.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis
import redis.cluster
from redis.crc import key_slot

from sidecar.storage.keys import WorkspaceKeys

LOOPBACK = "127.0.0.1"
# Cluster ports and their bus ports (port + 10000) both stay below Linux's ephemeral range
# (32768-60999), where outgoing connections and other tests' free ports would take them.
CLUSTER_PORTS = range(20000, 22700)
START_TIMEOUT = 20.0
FAILOVER_TIMEOUT = 30.0
SLOTS = 16384

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Call ``check`` until it answers something other than None or False; fail after ``timeout``.

    Connection errors and LookupError count as "not yet": the processes waited for are often
    just starting, or still disagreeing on who is master.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = check()
            if result is not None and result is not False:
                return result
        except (redis.RedisError, OSError, LookupError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s (last error: {last!r})")
        time.sleep(0.05)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def cluster_port(taken: set[int]) -> int:
    """A port that is free, whose bus port (+10000) is free too, and that ``taken`` lacks."""
    for _ in range(1000):
        port = random.choice(CLUSTER_PORTS)
        if port in taken or port + 10000 in taken:
            continue
        if _bindable(port) and _bindable(port + 10000):
            taken.update((port, port + 10000))
            return port
    raise RuntimeError("no free pair of cluster ports")


class RedisNode:
    """One ``redis-server`` process (a data node or a sentinel) with a directory of its own."""

    def __init__(self, port: int, directory: Path, args: list[str]) -> None:
        self.port = port
        self.dir = directory
        self.args = args
        self.dir.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"RedisNode({self.port}{'' if self.alive else ', dead'})"

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}"

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *extra: str) -> None:
        """Start the process (``extra`` arguments this time only); return once it answers PING."""
        self._proc = subprocess.Popen(
            ["redis-server", *self.args, *extra],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            if not self.alive:
                raise RuntimeError(f"redis-server on {self.port} exited:\n{self.log_tail()}")
            with self.client(timeout=0.5) as client:
                return bool(client.ping())

        wait_for(answers, START_TIMEOUT, f"redis-server on {self.port}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing saved, connections cut."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(10)
            self._proc = None

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A direct connection to this node (no redirections followed)."""
        return redis.Redis(
            host=LOOPBACK, port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def info(self, section: str) -> dict[str, object]:
        with self.client() as client:
            reply: dict[str, object] = client.info(section)
            return reply

    def log_tail(self, lines: int = 30) -> str:
        log = self.dir / "redis.log"
        if not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _data_node_args(port: int, directory: Path) -> list[str]:
    return [
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--dir",
        str(directory),
        "--logfile",
        str(directory / "redis.log"),
        "--save",
        "",
        "--appendonly",
        "no",
        # a failover must not wait for a replica's disk
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]


class ClusterNode(RedisNode):
    """A Redis Cluster node; its view of the cluster is read from ``CLUSTER NODES``."""

    def cluster_nodes(self) -> list[dict[str, str]]:
        """One dict per node this node knows: id, port, flags, master (id or ``-``), slots."""
        with self.client() as client:
            parsed: dict[str, dict[str, object]] = client.execute_command("CLUSTER NODES")
        nodes = []
        for address, entry in parsed.items():
            slots = entry.get("slots") or []
            assert isinstance(slots, list)
            nodes.append(
                {
                    "id": str(entry["node_id"]),
                    "port": address.split("@", 1)[0].rsplit(":", 1)[1],
                    "flags": str(entry["flags"]),
                    "master": str(entry["master_id"]),
                    "slots": " ".join("-".join(pair) for pair in slots),
                }
            )
        return nodes

    def cluster_info(self) -> dict[str, str]:
        with self.client() as client:
            parsed: dict[str, object] = client.execute_command("CLUSTER INFO")
        return {key: str(value) for key, value in parsed.items()}


def _slot_ranges(text: str) -> list[tuple[int, int]]:
    ranges = []
    for part in text.split():
        if part.startswith("["):  # a slot being migrated
            continue
        first, _, last = part.partition("-")
        ranges.append((int(first), int(last or first)))
    return ranges


class RedisCluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each.

    ``cluster-node-timeout`` is short so that a master's death is a failover of seconds, and
    ``cluster-replica-validity-factor 0`` lets any replica take over, however stale.
    """

    def __init__(self, masters: int = 3, replicas: int = 2, node_timeout_ms: int = 1000) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server and redis-cli are needed (make test installs them)")
        self.masters_wanted = masters
        self.replicas_wanted = replicas
        self.node_timeout_ms = node_timeout_ms
        self.root = Path(tempfile.mkdtemp(prefix="mac-cluster-"))
        self.nodes: list[ClusterNode] = []
        self.started_in = 0.0

    @property
    def seeds(self) -> str:
        """The masters' URLs, comma separated: ``MAC_REDIS_URL`` for ``MAC_REDIS_TYPE=cluster``."""
        return ",".join(node.url for node in self.masters())

    def start(self) -> None:
        began = time.monotonic()
        taken: set[int] = set()
        try:
            for n in range(self.masters_wanted * (1 + self.replicas_wanted)):
                port = cluster_port(taken)
                directory = self.root / f"node-{n}"
                directory.mkdir()
                args = [
                    *_data_node_args(port, directory),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(directory / "nodes.conf"),
                    "--cluster-node-timeout",
                    str(self.node_timeout_ms),
                    "--cluster-replica-validity-factor",
                    "0",
                ]
                node = ClusterNode(port, directory, args)
                self.nodes.append(node)
                node.start()
            subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(f"{LOOPBACK}:{node.port}" for node in self.nodes),
                    "--cluster-replicas",
                    str(self.replicas_wanted),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=START_TIMEOUT,
            )
            self.wait_healthy()
        except BaseException:
            self.close()
            raise
        self.started_in = time.monotonic() - began

    def _healthy(self) -> bool:
        """Every node up and agreeing: all slots served, no failure flag, every replica linked."""
        if not all(node.alive for node in self.nodes):
            return False
        views = []
        for node in self.nodes:
            info = node.cluster_info()
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS):
                return False
            if info.get("cluster_known_nodes") != str(len(self.nodes)):
                return False
            known = node.cluster_nodes()
            if any("fail" in entry["flags"] or "handshake" in entry["flags"] for entry in known):
                return False
            views.append(sorted((e["id"], e["master"], e["slots"]) for e in known))
        if any(view != views[0] for view in views):
            return False
        masters = self.masters()
        if len(masters) != self.masters_wanted:
            return False
        for master in masters:
            replication = master.info("replication")
            online = [
                value
                for key, value in replication.items()
                if key.startswith("slave") and isinstance(value, dict)
            ]
            if len(online) != self.replicas_wanted:
                return False
            if any(entry.get("state") != "online" for entry in online):
                return False
        return True

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        wait_for(self._healthy, timeout, "the cluster healthy, every replica linked")

    def _by_port(self, port: str | int) -> ClusterNode:
        return next(node for node in self.nodes if node.port == int(port))

    def _any_live(self) -> ClusterNode:
        return next(node for node in self.nodes if node.alive)

    def masters(self) -> list[ClusterNode]:
        """The live masters that serve slots, as the first live node sees them."""
        entries = self._any_live().cluster_nodes()
        return [
            self._by_port(e["port"])
            for e in entries
            if "master" in e["flags"] and "fail" not in e["flags"] and e["slots"]
        ]

    def slots_of(self, node: ClusterNode) -> list[tuple[int, int]]:
        """The slot ranges ``node`` serves, as the node itself sees them."""
        mine = next(e for e in node.cluster_nodes() if "myself" in e["flags"])
        return _slot_ranges(mine["slots"])

    def master_of(self, key: str) -> ClusterNode:
        """The live master serving the slot of ``key`` (``mac:{ws}:...`` for a workspace)."""
        slot = key_slot(key.encode())
        for node in self.masters():
            if any(first <= slot <= last for first, last in self.slots_of(node)):
                return node
        raise LookupError(f"no live master serves slot {slot}")

    def workspaces_on_each_master(self, prefix: str, per_master: int = 1) -> list[str]:
        """Workspace ids ``<prefix>-<n>``, ``per_master`` of them on each master, in order."""
        ranges = {node.port: self.slots_of(node) for node in self.masters()}
        found: dict[int, list[str]] = {port: [] for port in ranges}
        for n in range(10_000):
            workspace = f"{prefix}-{n}"
            slot = key_slot(WorkspaceKeys(workspace).counts.encode())
            port = next(p for p, rs in ranges.items() if any(a <= slot <= b for a, b in rs))
            if len(found[port]) < per_master:
                found[port].append(workspace)
            if all(len(names) == per_master for names in found.values()):
                return [name for names in zip(*found.values(), strict=True) for name in names]
        raise LookupError("no workspace ids spread over every master")

    def replicas_of(self, master: ClusterNode) -> list[ClusterNode]:
        mine = next(e for e in master.cluster_nodes() if "myself" in e["flags"])
        entries = master.cluster_nodes()
        return [self._by_port(e["port"]) for e in entries if e["master"] == mine["id"]]

    def kill_master_of(
        self, key: str, timeout: float = FAILOVER_TIMEOUT
    ) -> tuple[ClusterNode, float]:
        """SIGKILL the master of ``key``'s slot; wait until a replica serves the slot.

        :return: the new master and the seconds from the kill until every live node says the
            cluster is ``ok`` with the new master serving the slot.
        """
        old = self.master_of(key)
        slot = key_slot(key.encode())
        killed_at = time.monotonic()
        old.kill()

        def promoted() -> ClusterNode | None:
            live = [node for node in self.nodes if node.alive]
            if any(node.cluster_info().get("cluster_state") != "ok" for node in live):
                return None
            new = self.master_of(key)
            if new is old or not any(a <= slot <= b for a, b in self.slots_of(new)):
                return None
            return new

        new = wait_for(promoted, timeout, f"a replica of {old.port} promoted")
        return new, time.monotonic() - killed_at

    def restart(self, node: ClusterNode) -> None:
        """Start a killed node again, same port and ``nodes.conf``: it rejoins as a replica."""
        node.kill()
        node.start()

    def heal(self, timeout: float = FAILOVER_TIMEOUT) -> None:
        """Start every killed node again and wait until the cluster is whole."""
        for node in self.nodes:
            if not node.alive:
                node.start()
        self.wait_healthy(timeout)

    def flush(self) -> None:
        """FLUSHALL every master, and wait until each one's replicas have it."""
        for master in self.masters():
            with master.client(timeout=10) as client:
                client.flushall()
                client.execute_command("WAIT", self.replicas_wanted, 5000)

    def client(self) -> redis.cluster.RedisCluster:
        """A cluster client following redirections, for the tests' own reads."""
        seed = self._any_live()
        return redis.cluster.RedisCluster(host=LOOPBACK, port=seed.port, socket_timeout=5)

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisSentinel:
    """One master, ``replicas`` replicas and ``sentinels`` sentinels watching them.

    ``down-after-milliseconds`` is short so that a master's death is a failover of seconds.
    """

    master_name = "mymaster"

    def __init__(
        self,
        replicas: int = 2,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
    ) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is needed (make test installs it)")
        self.replicas_wanted = replicas
        self.sentinels_wanted = sentinels
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.root = Path(tempfile.mkdtemp(prefix="mac-sentinel-"))
        self.data_nodes: list[RedisNode] = []
        self.sentinels: list[RedisNode] = []
        self.started_in = 0.0

    @property
    def sentinel_urls(self) -> str:
        """The sentinels' URLs, comma separated: ``MAC_REDIS_URL`` for sentinel."""
        return ",".join(node.url for node in self.sentinels)

    def start(self) -> None:
        began = time.monotonic()
        taken: set[int] = set()
        try:
            for n in range(1 + self.replicas_wanted):
                port = cluster_port(taken)
                directory = self.root / f"data-{n}"
                args = _data_node_args(port, directory)
                if n > 0:
                    args += ["--replicaof", LOOPBACK, str(self.data_nodes[0].port)]
                node = RedisNode(port, directory, args)
                self.data_nodes.append(node)
                node.start()
            master = self.data_nodes[0]
            for n in range(self.sentinels_wanted):
                port = cluster_port(taken)
                directory = self.root / f"sentinel-{n}"
                directory.mkdir()
                config = directory / "sentinel.conf"
                config.write_text(
                    "\n".join(
                        [
                            f"port {port}",
                            f"bind {LOOPBACK}",
                            f"dir {directory}",
                            f"logfile {directory / 'redis.log'}",
                            f"sentinel monitor {self.master_name} {LOOPBACK} {master.port} 2",
                            f"sentinel down-after-milliseconds {self.master_name} "
                            f"{self.down_after_ms}",
                            f"sentinel failover-timeout {self.master_name} "
                            f"{self.failover_timeout_ms}",
                            f"sentinel parallel-syncs {self.master_name} {self.replicas_wanted}",
                            "",
                        ]
                    )
                )
                node = RedisNode(port, directory, [str(config), "--sentinel"])
                self.sentinels.append(node)
                node.start()
            self.wait_healthy()
        except BaseException:
            self.close()
            raise
        self.started_in = time.monotonic() - began

    def _ask(self, sentinel: RedisNode) -> dict[str, object]:
        with sentinel.client(timeout=1) as client:
            reply: dict[str, object] = client.execute_command("SENTINEL MASTER", self.master_name)
            return reply

    def master_port(self) -> int:
        """The master's port as the sentinels agree on it (fails when they do not agree)."""
        ports = set()
        for sentinel in self.sentinels:
            with sentinel.client(timeout=1) as client:
                _, port = client.sentinel_get_master_addr_by_name(self.master_name)
            ports.add(int(port))
        if len(ports) != 1:
            raise LookupError(f"the sentinels disagree on the master: {sorted(ports)}")
        return ports.pop()

    def master(self) -> RedisNode:
        port = self.master_port()
        return next(node for node in self.data_nodes if node.port == port)

    def _healthy(self) -> bool:
        """Every process up, the sentinels agreeing, every replica linked to the master."""
        if not all(node.alive for node in (*self.data_nodes, *self.sentinels)):
            return False
        master = self.master()
        replication = master.info("replication")
        if replication.get("role") != "master":
            return False
        linked = [
            value
            for key, value in replication.items()
            if key.startswith("slave") and isinstance(value, dict)
        ]
        if len(linked) != self.replicas_wanted or any(e.get("state") != "online" for e in linked):
            return False
        for sentinel in self.sentinels:
            state = self._ask(sentinel)
            flags = str(state.get("flags", ""))
            if flags != "master":
                return False
            if int(str(state.get("num-other-sentinels"))) != self.sentinels_wanted - 1:
                return False
            # the sentinels must know every replica as one (a restarted old master included)
            with sentinel.client(timeout=1) as client:
                known: list[dict[str, object]] = client.sentinel_slaves(self.master_name)
            usable = [r for r in known if r.get("flags") == "slave"]
            if len(usable) != self.replicas_wanted:
                return False
        return True

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        wait_for(self._healthy, timeout, "sentinel healthy: master, replicas linked, quorum")

    def kill_master(self, timeout: float = FAILOVER_TIMEOUT) -> tuple[RedisNode, float]:
        """SIGKILL the master; wait until every sentinel names a new one that acts as master.

        :return: the new master and the seconds from the kill until then.
        """
        old = self.master()
        killed_at = time.monotonic()
        old.kill()

        def switched() -> RedisNode | None:
            new = self.master()
            if new is old or new.info("replication").get("role") != "master":
                return None
            return new

        new = wait_for(switched, timeout, f"the sentinels switching from {old.port}")
        return new, time.monotonic() - killed_at

    def restart(self, node: RedisNode) -> None:
        """Start a killed data node again, as a replica of the current master.

        The sentinels would turn an old master into a replica by themselves, but only at their
        next INFO refresh, up to 10 s later; an operator starting it does as this does.
        """
        node.kill()
        master = self.master()
        if node is master:
            node.start()
        else:
            node.start("--replicaof", LOOPBACK, str(master.port))

    def heal(self, timeout: float = FAILOVER_TIMEOUT) -> None:
        """Start every killed process again and wait until the topology is whole."""
        for sentinel in self.sentinels:
            if not sentinel.alive:
                sentinel.start()
        for node in self.data_nodes:
            if not node.alive:
                self.restart(node)
        self.wait_healthy(timeout)

    def master_client(self, timeout: float = 5.0) -> redis.Redis:
        """A direct connection to the current master, for the tests' own reads."""
        return self.master().client(timeout)

    def flush(self) -> None:
        """FLUSHALL the master, and wait until its replicas have it."""
        with self.master_client(timeout=10) as client:
            client.flushall()
            client.execute_command("WAIT", self.replicas_wanted, 5000)

    def close(self) -> None:
        for node in (*self.sentinels, *self.data_nodes):
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def refuse_writes(client: redis.Redis, headroom: int = 1 << 20) -> int:
    """Make a Redis refuse writes as a full one does (``OOM``, with ``noeviction``).

    ``maxmemory`` is set a little above what it uses now and values are written until it
    answers ``OOM``; then ``maxmemory`` is pinned well below the memory used (by ``headroom``
    / 4): right at the line a small write still passes once the big one's query buffer is
    freed, and memory a failed script's Lua state or a client's buffers give back must not
    bring Redis under the line again.

    :return: the keys written to fill it (``mac-test:fill:<n>``).
    """
    used = int(str(client.info("memory")["used_memory"]))
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(used + headroom))
    value = b"x" * 4096
    for n in range(4 * headroom // len(value)):
        try:
            client.set(f"mac-test:fill:{n}", value)
        except redis.exceptions.OutOfMemoryError:
            used = int(str(client.info("memory")["used_memory"]))
            client.config_set("maxmemory", str(used - headroom // 4))
            return n
    raise RuntimeError("Redis never refused a write")


def accept_writes(client: redis.Redis) -> None:
    """Undo ``refuse_writes``: no memory limit, the filler keys deleted."""
    client.config_set("maxmemory", "0")
    for key in client.scan_iter(match="mac-test:fill:*", count=1000):
        client.delete(key)
