"""The sync subcommands: run (the daemon), once (one pass, for init containers), status."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import signal
import sys
import threading

from model_contract import layout, logs
from registry_sync.guard.reports import Reports, encode, push, summed
from registry_sync.guard.watch import PromotionGuard, serving_reader

from . import config
from .errors import CometError, Stopped
from .hooks.notifier import ServingNotifier
from .ops import server as ops_server
from .ops import status
from .ops.metrics import SyncMetrics
from .registries.comet import approvals
from .registries.comet.client import CometClient
from .registries.comet.registry import CometRegistry
from .store import snapshot, state
from .sync.candidate import CandidateFollower
from .sync.daemon import EXIT_FAILED, EXIT_OK, Daemon
from .sync.syncer import Syncer

log = logs.get(__name__)


def interruptible_sleep(stop: threading.Event):
    """A sleep for the client's retries that a stop request cuts short with Stopped."""
    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Stopped("stop requested while waiting to retry")

    return sleep


def reload_token(settings: config.SyncConfig):
    """The reload token as it is now (its file re-read), registered for masking."""
    def current() -> str:
        token = settings.read_reload_token()
        logs.redact(token)
        return token

    return current


def build_daemon(settings: config.SyncConfig) -> Daemon:
    """Wire a daemon from its configuration."""
    logs.redact(settings.comet.api_key)
    logs.redact(settings.reload_token)
    stop = threading.Event()
    notifier = (ServingNotifier(settings.serving_url, reload_token(settings),
                                validate_timeout=settings.validation_deadline, wait=stop.wait)
                if settings.serving_url else None)
    settings.model_root.mkdir(parents=True, exist_ok=True)
    # the loop's own backoff takes over from the client's retries: keep a pass short
    metrics = SyncMetrics(settings.interval)
    client = CometClient(settings.comet, sleep=interruptible_sleep(stop), attempts=3,
                         max_wait=min(30.0, settings.max_backoff),
                         on_request=metrics.count_request)
    registry = CometRegistry(client, (settings.status, settings.candidate_status))
    syncer = Syncer(settings, registry, state.load(settings.model_root), metrics, notifier,
                    should_stop=stop.is_set, reporter=_reporter(settings))
    if settings.candidate_status:
        syncer.candidates = CandidateFollower(syncer, settings.candidate_status)
    if settings.election is None:
        daemon = Daemon(syncer, stop)
        _guard(settings, syncer, daemon)
        return daemon
    # a leader failing for less than a decision's life must not step down: followers would
    # rejoin on their last good decision and the Lease churn while Comet is down for all
    settings = dataclasses.replace(settings, step_down_after=max(
        settings.step_down_after, decision_max_age(settings)))
    syncer.config = settings
    daemon = Daemon(syncer, stop, follower=_follower(settings, syncer))
    daemon.cluster = _cluster(settings, daemon.wake_now)
    _guard(settings, syncer, daemon)
    return daemon


def _guard(settings: config.SyncConfig, syncer: Syncer, daemon: Daemon) -> None:
    """The promotion guard, when on; in a cluster it watches only while this sidecar leads."""
    guard = settings.guard
    if not guard.enabled:
        return
    if guard.prometheus_url:
        from registry_sync.guard.prometheus import reader
        read = reader(guard.prometheus_url)
    elif settings.serving_url:
        read = serving_reader(settings.serving_url + "/metrics")
    else:
        log.warning("guard_off", reason="GUARD_ENABLED needs SERVING_URL or PROMETHEUS_URL")
        return
    reports = None
    if daemon.cluster is not None and not guard.prometheus_url:
        reports = Reports(max_age=3 * guard.sample_interval + 5)
        read = summed(read, reports, daemon.cluster.settings.identity, daemon.cluster.is_leader)
    syncer.guard = PromotionGuard(guard, read, on_trip=daemon.wake_now)
    syncer.guard.reports = reports
    if daemon.cluster is not None:
        syncer.guard.deciding = daemon.cluster.is_leader
        if reports is not None:
            syncer.guard.on_reading = _report_to_leader(daemon.cluster)
    else:  # standalone: a window left open by a restart goes on (a restarted leader has none)
        syncer.guard.journal = settings.model_root
        syncer.guard.resume(layout.current_snapshot_id(settings.model_root))
    syncer.guard.start()


def _report_to_leader(cluster):
    """A follower's readings, sent to the leader it follows (an authentic decision's peer)."""
    import requests

    from .cluster.decision_seal import peer_token
    session = requests.Session()

    def report(figures) -> None:
        decided = cluster.decision()
        url = cluster.peer_for(decided) if decided and not cluster.why_not(decided) else ""
        if url:
            push(url, peer_token(cluster.trust.key()),
                 encode(cluster.settings.identity, figures), session)

    return report


def _follower(settings: config.SyncConfig, syncer: Syncer):
    """How a follower installs a decided set: from a peer (its own credential), else Comet."""
    from .cluster.decision_seal import peer_token
    from .cluster.peer import PeerClient
    from .sync.follower import Follower

    def credential() -> str:
        token = peer_token(settings.read_decision_key())
        logs.redact(token)
        return token

    return Follower(syncer, PeerClient(credential, settings.comet.download_timeout),
                    syncer.candidates)


def config_id(settings: config.SyncConfig) -> str:
    """A fingerprint of what decides the version set: followers of another one poll Comet."""
    chosen = [settings.comet.workspace, list(settings.models), settings.status, settings.tag,
              settings.grouping, settings.candidate_status]
    return hashlib.sha256(json.dumps(chosen).encode()).hexdigest()[:16]


def decision_max_age(settings: config.SyncConfig) -> float:
    """How long a decision stays good unconfirmed: three polls and two lease durations."""
    assert settings.election is not None  # decisions exist only with an election
    return 3 * settings.interval + 2 * settings.election.lease_duration


def _cluster(settings: config.SyncConfig, wake):
    """The election and the decision watch on the Lease (two connections: one blocks)."""
    from .cluster.lease_api import KubeLease, KubePods
    from .cluster.member import Cluster, Trust
    from .hooks import kube

    election = settings.election
    assert election is not None  # a cluster only with an election
    ca_file = settings.kube_token_file.with_name("ca.crt")
    ca = ca_file if ca_file.is_file() else None

    def client():
        return kube.api_client(settings.kube_api_url, settings.kube_token_file, ca)

    def lease() -> KubeLease:
        return KubeLease(client(), election.namespace, election.lease_name)

    trust = Trust(settings.read_decision_key, config_id(settings), decision_max_age(settings))
    return Cluster(election, lease(), lease(), settings.peer_url, trust, wake,
                   pods=KubePods(client(), election.namespace))


def _reporter(settings: config.SyncConfig):
    """The Kubernetes Events/annotations reporter when in a cluster, else None."""
    if settings.kube is None:
        return None
    from .hooks import kube  # the kubernetes client is slow to import: only inside a cluster

    options = dict(settings.kube)
    return kube.PodReporter.in_cluster(options.pop("pod_name"), options.pop("namespace"),
                                       token_file=settings.kube_token_file, **options)


def run(args: argparse.Namespace) -> int:
    """registry-sync run: the daemon."""
    settings = config.sync_config(args)
    logs.setup(settings.log_level)
    ops_server.spare_descriptors()
    daemon = build_daemon(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: daemon.request_stop())
    host, port = settings.listen
    server = ops_server.start(daemon, host, port) if port else None
    try:
        return daemon.run()
    finally:
        if server:
            server.shutdown()


def once(args: argparse.Namespace) -> int:
    """registry-sync once: one pass; exit 0 when MODEL_ROOT holds a good snapshot."""
    # one pass has no time to elect or watch: it polls Comet itself, as outside a cluster
    settings = dataclasses.replace(config.sync_config(args), election=None)
    logs.setup(settings.log_level)
    daemon = build_daemon(settings)
    snapshot.clean_staging(settings.model_root)
    outcome = daemon.run_once()
    snapshot.clean_staging(settings.model_root)
    report = status.report(settings.model_root, daemon.state)
    print(status.render(report))
    if daemon.has_good_snapshot():
        return EXIT_OK
    why = (daemon.state.last_error or {}).get("message") or (outcome.detail if outcome else "")
    print(f"registry-sync: no good snapshot in MODEL_ROOT: {why}", file=sys.stderr)
    return EXIT_FAILED


def show_status(args: argparse.Namespace) -> int:
    """registry-sync status: what is desired, installed, published, and the last error."""
    values = config.read(args, os.environ, ["MODEL_ROOT"])
    config.require(values, "MODEL_ROOT")
    root = values["MODEL_ROOT"]
    report = status.report(root, state.load(root))
    if args.registry:
        report["pendingRequests"] = _pending_requests(args)
    print(json.dumps(report, indent=2, default=str) if args.json else status.render(report))
    return EXIT_OK if report["ready"] else EXIT_FAILED


def _pending_requests(args: argparse.Namespace) -> list[dict] | str:
    """Status requests awaiting approval for the followed models, or why they are unknown."""
    values = config.read(args, os.environ, [*config.COMET_NAMES, "REGISTRY_MODELS"])
    config.require(values, "REGISTRY_MODELS")
    settings = config.comet_settings(values)
    logs.redact(settings.api_key)
    try:
        found = approvals.pending_requests(CometClient(settings, attempts=1),
                                           values["REGISTRY_MODELS"])
    except CometError as exc:
        return f"unknown: {logs.mask(str(exc))}"
    return [dataclasses.asdict(p) for p in found]


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Add run, once and status to the CLI."""
    for name, handler, text in (("run", run, "keep MODEL_ROOT on the production versions"),
                                ("once", once, "sync once and exit (0 if a good snapshot)")):
        sub = commands.add_parser(name, help=text, description=text)
        config.add_flags(sub, config.SYNC_NAMES)
        sub.set_defaults(handler=handler)
    sub = commands.add_parser("status", help="show what is desired, installed and published")
    config.add_flags(sub, ["MODEL_ROOT"])
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_argument("--registry", action="store_true",
                     help="also ask the registry for status requests pending approval "
                          "(needs the COMET_* settings and REGISTRY_MODELS)")
    sub.set_defaults(handler=show_status)
