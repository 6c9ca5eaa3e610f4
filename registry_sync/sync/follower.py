"""A follower's pass: install exactly the decided version set, from a peer, else the registry.

No details request goes to the registry while a peer has the files. A model is fetched from the
peer the decision names, only when that peer is the pod holding the Lease (Cluster.peer_for),
and kept only if every file's size and SHA-256 equal the decision's; if there is no such peer, or
it does not answer or lies, the model is downloaded from the registry instead (one details
request to find the decided version's assets) and kept only if what the registry gave matches
the decision too. A decision written without its file lists (too many files for the Lease) is
downloaded from the registry, checked as a lone sidecar checks a download. The snapshot is then
validated and published by the syncer's own path (Syncer.bring_to), as the leader's was. The
decided challenger, when this sidecar follows one, is installed the same way (its files from the
leader's candidate snapshot) through the challenger's own path (CandidateFollower.follow_decided)
into `candidate`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from model_contract import logs
from model_contract.manifest import ModelEntry

from ..cluster.decision import DecidedSet, Decision
from ..cluster.peer import PeerClient, PeerRefused, PeerUnavailable
from ..errors import ArchiveError, UnsafeValue, VersionNotFound
from ..registries.values import ModelVersion
from ..store import installer
from .candidate import CandidateFollower
from .context import Outcome, SyncContext
from .syncer import check_chosen, describe

log = logs.get(__name__)


class DecisionMismatch(ArchiveError):
    """What the registry gave for a decided version differs from the decided files."""


def _version_of(entry: ModelEntry) -> ModelVersion:
    """A decided model as the registry version snapshot.build needs (its key is what counts)."""
    return ModelVersion(entry.version, entry.registryModelItemId, entry.status, (), (),
                        entry.experimentKey, 0, "", ())


class Follower:
    """Brings MODEL_ROOT to the decided set through the syncer's build/validate/publish path."""

    def __init__(self, syncer: SyncContext, peers: PeerClient,
                 candidates: CandidateFollower | None = None):
        self.syncer, self.peers, self.candidates = syncer, peers, candidates
        self.root: Path = syncer.root
        self._peer = ""

    def sync_to(self, decided: Decision, peer_url: str = "") -> Outcome:
        """One follower pass; raises what a sync pass raises (registry, disk, serving trouble).

        The champion first, then the challenger, as a leader's pass does. Files come from
        `peer_url` when given (the Lease holder's), else from the registry.
        """
        self._peer = peer_url
        outcome = self._sync_champion(decided)
        if self.candidates is not None:
            self._sync_challenger(self.candidates, decided)
        return outcome

    def _sync_challenger(self, candidates: CandidateFollower, decided: Decision) -> None:
        """The decided challenger into `candidate`; the link goes if the decision has none."""
        challenger = decided.candidate
        if challenger is None:
            candidates.follow_decided(None, self.syncer.install)  # nothing installed: unlinked
            return
        chosen = [(m.name, _version_of(m)) for m in challenger.models]
        candidates.follow_decided(chosen, lambda name, _version, work, target:
                                  self._install(decided, challenger, name, work, target))

    def _sync_champion(self, decided: Decision) -> Outcome:
        syncer = self.syncer
        syncer.confirm_published()
        chosen = [(m.name, _version_of(m)) for m in decided.models]
        try:
            check_chosen(chosen)  # the Lease is input like the registry: checked the same way
        except UnsafeValue as exc:
            return syncer.refuse_unsafe(exc)
        syncer.adopt_refusals(decided.refused)  # known here if this pod leads next
        syncer.state.desired = describe(chosen)  # what the leader decided is what we want
        syncer.state.waiting = None
        syncer.metrics.set_versions(syncer.metrics.desired, decided.versions)
        outcome = syncer.bring_to(chosen, lambda name, _version, work, target:
                                  self._install(decided, decided.champion, name, work, target))
        if outcome.kind == "published":
            log.info("decision_installed", snapshot=outcome.snapshot_id,
                     decided=decided.snapshot_id, leader=decided.leader)
        return outcome

    def _install(self, decided: Decision, wanted: DecidedSet, name: str, work: Path,
                 target: Path) -> ModelEntry:
        """One model of `wanted` (the champion or challenger set) from the leader, else registry."""
        entry = next(m for m in wanted.models if m.name == name)
        if not decided.files_listed:
            return self._from_registry(entry, work, target, check_files=False)
        if not self._peer:
            log.info("peer_not_used", model=name, peer=decided.peer_url,
                     reason="not the address of the pod holding the Lease")
            return self._from_registry(entry, work, target)
        try:
            return self.peers.fetch_model(self._peer, wanted.snapshot_id, entry, target,
                                          self.syncer.metrics.peer_bytes.inc)
        except (PeerUnavailable, PeerRefused) as exc:
            log.warning("peer_fetch_failed", model=name, peer=self._peer,
                        refused=isinstance(exc, PeerRefused), error=str(exc))
            shutil.rmtree(target, ignore_errors=True)
        return self._from_registry(entry, work, target)

    def _from_registry(self, entry: ModelEntry, work: Path, target: Path,
                    check_files: bool = True) -> ModelEntry:
        """Download the decided version from the registry; refused unless its files are decided."""
        syncer = self.syncer
        found = next((v for v in syncer.registry.versions(entry.name)
                      if v.registry_model_item_id == entry.registryModelItemId), None)
        if found is None:
            raise VersionNotFound(entry.workspace, entry.name, entry.version)
        installed = installer.install(syncer.registry, entry.name, found, work, target,
                                      syncer.config.limits, syncer.metrics.bytes.inc,
                                      syncer.still_going)
        if not check_files:
            return installed
        if set(installed.files) != set(entry.files):
            raise DecisionMismatch(f"{entry.name} {entry.version} from the registry differs from "
                                   "the decided manifest")
        return entry
