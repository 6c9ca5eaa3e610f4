"""The local registry: a Comet-compatible model registry server, on disk, for offline use and tests.

`registry-sync local-registry --data DIR --port N --api-key KEY [--workspace NAME ...]` serves
every endpoint of docs/comet-api.md §2 under /api/rest/v2/ with the shapes of
§3, plus `GET /clientlib/isAlive/ver` answering {"version": "4.20.500",
"server": "comet-registry-sync-local"}. The real comet_ml 3.58.8 SDK works against it with
COMET_URL_OVERRIDE=http://127.0.0.1:N/clientlib/.

Modules: store (on-disk data), web (shared view helpers), shapes (JSON shapes), read_api and
write_api (the REST endpoints), mpm (Comet MPM's ingestion endpoints under /mpm/, in memory,
and GET /mpm/local/counts), admin and faults (test-only fault injection and request counts),
app (the Flask app), cli (the subcommand).

Our own upload endpoint (not Comet's):

    POST /api/rest/v2/write/registry-model/item/upload
         ?workspaceName=W&registryModelName=M&version=1.0.0        required
         &status=Production&tags=a,b&comment=...&experimentKey=HEX  optional
         &experimentModelName=...&description=...&userName=...      optional
         &createdAt=<epoch ms>&assets=<JSON list>                   optional
    Authorization: <api key>
    body: the raw zip (any Content-Type), streamed to disk

  answers {"registryModelId", "registryModelItemId"}. The body is stored byte for byte and
  never extracted or checked, so hostile zips ('..', absolute paths, symlinks, bombs) and
  bodies that are not zips at all are kept and served as given. Assets are the zip's file
  entries (fileName = entry name, fileSize = uncompressed size); none if the body is not a
  readable zip, unless `assets` gives [{"fileName", "fileSize", "member"?}] explicitly
  (`member` = index in the zip's entries, for get-asset). Missing experimentKey: a random
  32-hex one. An existing version: 409 in Comet's error body, checked before the body is read.

Test-only admin endpoints (same Authorization; never counted, never faulted):
`GET|POST|PUT|DELETE /-/faults` list / append / replace / clear fault rules (see faults.py for
the rule format), `GET|DELETE /-/requests` read / reset request counts per path.

INFERRED choices, where Comet's real behaviour is not documented:

- Unknown model or version: 404. Unknown workspace: 400 "Bad Request (Constraint-Violation)"
  only when --workspace restricts them; otherwise any workspace exists and may be empty.
- Auth: `Authorization: <key>` or the Java SDK's `Comet-Sdk-Api: <key>`; anything else 401.
  isAlive needs no key.
- Versions must be semver (MAJOR.MINOR.PATCH[-pre][+build]), else 400. Ordered newest first
  by createdAt, ties by higher semver; "latest" means the first in that order.
- item/download: `version` and `stage` together → 400; neither → the latest version. `stage`
  (here and in latest_version, download-instructions, items' `tag`) matches tags
  case-insensitively; status is never matched by `stage`. Nothing matching → 404.
- latest_version with nothing matching answers the model with `versions: []`; it also takes
  the SDK's versionMajor / versionMinor filters.
- items' `status` matches exactly (case-sensitive); `versionPrefix` matches whole
  dot-separated parts ("2.1" finds 2.1.0 and 2.1.1, not 2.10.0).
- download-instructions with neither version nor stage describes the latest version.
- get-asset: 404 when experimentKey is given and is not the asset's version's.
- A version registered without files (item/create) downloads as an empty zip.
- item/create names no workspace: taken from `workspaceName` in the body or query, else the
  workspace of an earlier version with the same experimentKey, else the only --workspace;
  otherwise 400. experimentModelName defaults the registry model name and vice versa.
- Write answers: status / stage / update answer the version object (without assets);
  deletes and notes answer {}. Adding a tag already present is a no-op; removing one matches
  case-insensitively. Unknown status → 400 naming the allowed values.
- userName is "local" unless the upload names one; model description and isPublic come from
  the version that created the model.
- Request bodies with `Content-Encoding: gzip` (the SDK's compressed JSON) are accepted.
"""
