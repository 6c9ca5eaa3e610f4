"""registry-sync register: add a version with its files to the registry, from a file or folder.

Against the local registry the files go through its upload endpoint in one request; against
Comet itself they go through the comet_ml SDK (`Experiment.log_model` + `register_model`), the
only write path Comet offers for files. Files are stored relative to the folder given, with no
wrapping folder, so a folder `out/` holding `pipeline.skops` registers `pipeline.skops`.
With --model-file and --sample instead of PATH, the model is described first (registry-sync
describe) and registered with its metadata.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import quote

from model_contract import logs

from ... import config, describe
from ...errors import ConfigError
from .client import CometClient

log = logs.get(__name__)

REGISTER_NAMES = [*config.COMET_NAMES, "LOG_LEVEL"]


def files_of(path: Path) -> list[tuple[Path, str]]:
    """The files to register with their names in the registry: (path on disk, relative name)."""
    if path.is_file():
        return [(path, path.name)]
    if not path.is_dir():
        raise ConfigError(f"PATH {str(path)!r} is neither a file nor a folder")
    found = sorted((p, p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file())
    if not found:
        raise ConfigError(f"folder {str(path)!r} holds no files")
    return found


def zip_files(files: list[tuple[Path, str]], target: Path) -> None:
    """Write the files into a plain deflated zip, no wrapping folder."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source, name in files:
            archive.write(source, name)


def register_local(client: CometClient, args: argparse.Namespace) -> str:
    """Register through the local registry's upload endpoint; return the registry item id."""
    with tempfile.TemporaryDirectory(prefix="registry-sync-") as work:
        archive = Path(work) / "model.zip"
        zip_files(files_of(args.path), archive)
        answer = client.upload(args.model, args.version, archive, status=args.status,
                               tags=tuple(args.tag), comment=args.comment,
                               experiment_key=args.experiment_key or "")
    return str(answer.get("registryModelItemId", ""))


def register_with_sdk(settings: config.CometSettings, args: argparse.Namespace) -> str:
    """Register through the comet_ml SDK, as a training run against Comet itself would."""
    files_of(args.path)  # refuse an empty or missing path before starting an experiment
    import comet_ml

    experiment = comet_ml.Experiment(api_key=settings.read_api_key(),
                                     workspace=settings.workspace, project_name=args.project,
                                     auto_output_logging=False,  # type: ignore[arg-type]
                                     log_code=False,
                                     log_env_details=False, log_git_metadata=False)
    try:
        experiment.log_model(args.model, str(args.path), prepend_folder_name=False)
        experiment.register_model(args.model, version=args.version, tags=list(args.tag) or None,
                                  status=args.status if args.status != "None" else None,
                                  comment=args.comment or None, sync=True)
        return experiment.get_key()
    finally:
        experiment.end()


def metadata_of(pairs: list[str]) -> dict[str, str]:
    """--metadata KEY=VALUE pairs as a dict; ConfigError naming a pair without '='."""
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--metadata {pair!r}: expected KEY=VALUE")
        found[key.strip()] = value
    return found


def _describe(client: CometClient, args: argparse.Namespace) -> None:
    """Record the version's metadata and status configuration, where given (REST, any server)."""
    metadata = metadata_of(args.metadata)
    if not metadata and not args.review_status:
        return
    item = client.item_id(args.model, args.version)
    if metadata:
        client.set_metadata(item, metadata)
    if args.review_status:
        client.set_status_configuration(item, args.review_status, review_required=True)


def run(args: argparse.Namespace) -> int:
    """Register PATH (or the model file, described) as a new version and print it."""
    if (args.path is None) == (args.model_file is None):
        raise ConfigError("give PATH, or --model-file with --sample (not both)")
    if args.model_file is None:
        return _register(args)
    if args.sample is None:
        raise ConfigError("--model-file needs --sample, the data to describe it with")
    with tempfile.TemporaryDirectory(prefix="registry-sync-describe-") as work:
        args.path = Path(work) / "model"
        describe.describe_to(args, args.path)
        return _register(args)


def _register(args: argparse.Namespace) -> int:
    values = config.read(args, os.environ, REGISTER_NAMES)
    metadata_of(args.metadata)  # refuse a malformed pair before registering anything
    settings = config.comet_settings(values)
    logs.redact(settings.api_key)
    client = CometClient(settings)
    ours = client.server_info().get("server") == "comet-registry-sync-local"
    item = register_local(client, args) if ours else register_with_sdk(settings, args)
    _describe(client, args)
    log.info("model_registered", model=args.model, version=args.version, status=args.status,
             item=item)
    page = registry_page(settings.url, settings.workspace, args.model, ours)
    print(f"registered {settings.workspace}/{args.model} {args.version} "
          f"(status {args.status}) — see {page}")
    return 0


def registry_page(url: str, workspace: str, model: str, local: bool) -> str:
    """The model's page a browser opens (the REST API would answer it 401)."""
    path = f"ui/models/{quote(workspace)}/{quote(model)}" if local else \
        f"{quote(workspace)}/model-registry/{quote(model)}"
    return f"{url.rstrip('/')}/{path}"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add `register` to the CLI."""
    sub = commands.add_parser("register", help="register a new model version from PATH",
                              description=__doc__.splitlines()[0])
    sub.add_argument("path", type=Path, metavar="PATH", nargs="?", default=None,
                     help="a file or a folder of files")
    sub.add_argument("--model-file", type=Path, default=None, metavar="FILE",
                     help="a fitted estimator (.skops or pickle) to describe and register "
                          "instead of PATH")
    sub.add_argument("--sample", type=Path, default=None, metavar="FILE",
                     help="with --model-file: its data sample (CSV or Parquet)")
    describe.add_describe_flags(sub)
    sub.set_defaults(set=[])
    sub.add_argument("--model", required=True, help="registry model name")
    sub.add_argument("--version", required=True, help="semantic version, e.g. 1.1.0")
    sub.add_argument("--status", default="None", help="status to give it, e.g. Production")
    sub.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    sub.add_argument("--comment", default="", help="a comment on the version")
    sub.add_argument("--experiment-key", default="", help="experiment it came from (local "
                     "registry; models registered together share one)")
    sub.add_argument("--project", default="registry-sync", help="Comet project (SDK path)")
    sub.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                     help="metadata of the version (repeatable)")
    sub.add_argument("--review-status", default="", metavar="STATUS",
                     help="a change of this version to STATUS needs an owner's review "
                          "(its status configuration)")
    config.add_flags(sub, REGISTER_NAMES)
    sub.set_defaults(handler=run, quiet=True)
