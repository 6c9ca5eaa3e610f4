"""The challenger: the candidate status's version set, built, validated and linked as `candidate`.

Followed after the champion in the same pass, found the same way (finder.py: one
`items?status=` request per model per poll). Built with the champion's builder (same archive
safety, hard links from snapshots on disk, one snapshot per version set), validated by serving
the same two-phase way, refused the same way (remembered, never retried), then
`MODEL_ROOT/candidate` is renamed onto it. The link is removed when some model has no version
with that status, or when the set is the champion's. Registry, disk and serving errors raise, as
for the champion: the loop decides.

A follower in a cluster does not ask the registry: `follow_decided` takes the set the leader's
decision names (fetched from the leader, the registry as fallback, by the follower's installer)
down the same path.
"""

from __future__ import annotations

from dataclasses import replace

from model_contract import layout, logs
from model_contract.manifest import Manifest

from ..errors import ArchiveError, LeadershipLost, SnapshotRejected, UnsafeValue
from ..hooks.notifier import Verdict
from ..registries.values import ModelVersion, check_assets
from ..store import publish, snapshot
from ..store.state import CandidateStatus, RefusedBy, manifest_key
from .context import SyncContext
from .syncer import check_chosen, chosen_key

log = logs.get(__name__)


class CandidateFollower:
    """Keeps MODEL_ROOT/candidate on the candidate status's version set, or absent."""

    def __init__(self, syncer: SyncContext, status: str):
        self.syncer, self.status = syncer, status
        self.root = syncer.root

    def follow(self) -> CandidateStatus:
        """One step after the champion's pass; the result is kept in the sync state."""
        return self._keep(self._follow())

    def follow_decided(self, chosen: list[tuple[str, ModelVersion]] | None,
                       install: snapshot.Installer) -> CandidateStatus:
        """A follower's step: the leader's decided challenger (None: the decision has none)."""
        if chosen is None:
            return self._keep(self._withdraw("none", "the leader's decision has no candidate"))
        return self._keep(self._bring(chosen, install))

    def _keep(self, result: CandidateStatus) -> CandidateStatus:
        self.syncer.state.candidate = result
        return result

    def _follow(self) -> CandidateStatus:
        chosen = []
        for name in self.syncer.config.models:
            version = self.syncer.registry.find(name, self.status).version
            if version is None:
                return self._withdraw("none", f"no version with status {self.status!r}: {name}")
            check_assets(name, version)
            chosen.append((name, version))
        return self._bring(chosen, self.syncer.install)

    def _bring(self, chosen: list[tuple[str, ModelVersion]],
               install: snapshot.Installer) -> CandidateStatus:
        """Link exactly the chosen set as `candidate`, unless it is the champion or refused."""
        try:
            check_chosen(chosen)  # before any value reaches the state, a log or a path
        except UnsafeValue as exc:
            return self._refuse_unsafe(exc)
        key, versions = chosen_key(chosen), {n: v.version for n, v in chosen}
        champion = snapshot.read_current(self.root)
        if champion is not None and manifest_key(champion) == key:
            return self._withdraw("champion", "the candidate set is the champion", versions)
        linked = snapshot.trusted(self.root, layout.candidate_snapshot_id(self.root))
        if linked is not None and manifest_key(linked) == key:
            return CandidateStatus("unchanged", "", linked.snapshotId, versions)
        refusal = self.syncer.state.memory.refusal_of(key)
        if refusal is not None:
            return self._withdraw("rejected", f"already rejected: {refusal.reason}", versions)
        staged = snapshot.find_set(self.root, key)
        if staged is None:
            try:
                staged = snapshot.build(self.root, chosen, install)
            except ArchiveError as exc:
                return self._refuse(key, versions, str(exc), None, RefusedBy.ARCHIVE)
        return self._hand_over(staged)

    def _hand_over(self, built: Manifest) -> CandidateStatus:
        """Have serving validate the snapshot, then link it as `candidate`."""
        notifier = self.syncer.notifier
        verdict = Verdict.NOT_UP
        if notifier is not None:
            self.syncer.progress()
            try:
                verdict = notifier.validate(built.snapshotId)
            except SnapshotRejected as exc:
                snapshot.discard(self.root, built.snapshotId)
                return self._refuse(manifest_key(built), built.versions, exc.reason,
                                    built.snapshotId, RefusedBy.SERVING)
        self._still_leading(built.snapshotId)
        publish.publish(self.root, built.snapshotId, link=layout.CANDIDATE)
        log.info("candidate_published", snapshot=built.snapshotId, versions=built.versions,
                 status=self.status, validated=verdict is Verdict.ACCEPTED)
        return CandidateStatus("linked", "", built.snapshotId, built.versions)

    def _refuse(self, key: str, versions: dict[str, str], reason: str, snapshot_id: str | None,
                by: RefusedBy) -> CandidateStatus:
        self.syncer.refuse(key, versions, f"as {self.status}: {reason}", snapshot_id, by)
        return self._withdraw("rejected", reason, versions)

    def _refuse_unsafe(self, exc: UnsafeValue) -> CandidateStatus:
        if self.syncer.state.memory.refusal_of(exc.key) is None:
            self.syncer.refuse(exc.key, {exc.model: f"(refused {exc.field})"},
                                f"as {self.status}: {exc}", None, RefusedBy.REGISTRY)
        return self._withdraw("rejected", str(exc))

    def _still_leading(self, snapshot_id: str) -> None:
        """A deposed leader changes no link: the next leader decides (followers: always)."""
        if not self.syncer.publishing_allowed():
            raise LeadershipLost(f"candidate {snapshot_id} not changed: this sidecar no longer "
                                 "leads")

    def _withdraw(self, outcome: str, detail: str,
                  versions: dict[str, str] | None = None) -> CandidateStatus:
        """Remove `candidate` (if there) and say why."""
        previous = layout.candidate_snapshot_id(self.root)
        if previous is not None:
            self._still_leading(previous)
            publish.withdraw(self.root, layout.CANDIDATE)
            log.info("candidate_removed", snapshot=previous, reason=detail)
        return replace(CandidateStatus(outcome, detail), versions=versions or {})
