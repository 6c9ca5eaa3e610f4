"""The local registry: a Comet-compatible model registry server, on disk, for offline use and tests.

`local-registry --data DIR --port N --api-key KEY [--member-api-key KEY2]
[--presigned-downloads] [--workspace NAME ...]` serves, under /api/rest/v2/, with the shapes of
docs/comet-api.md §3, every endpoint the comet_ml 3.58.8 SDK's model API reaches,
plus `GET /clientlib/isAlive/ver` answering {"version": "4.20.500",
"server": "comet-registry-sync-local"}. The real SDK works against it with
COMET_URL_OVERRIDE=http://127.0.0.1:N/clientlib/.

Endpoints (under /api/rest/v2/ unless they start with /):

    GET  registry-model, registry-model/count, registry-model/details,
         registry-model/compact-details, registry-model/item/details, registry-model/items,
         registry-model/allowed_status_values, registry-model/latest_version,
         registry-model/notes                                                  read_api.py
    GET  registry-model/item/download (zip), registry-model/item/download-instructions
    GET  experiment/asset/get-asset (one asset, Range)                          assets.py
    GET  /presigned/<assetId>?expires&signature (presigned mode, no key)       assets.py
    POST write/registry-model/item/create, write/registry-model/item/status (review),
         write/registry-model/item/update, write/registry-model/notes,
         write/registry-model/item/upload (ours)                              write_api.py
    GET  write/registry-model/item/stage, .../stage/delete, write/registry-model/item/delete,
         write/registry-model/delete
    POST registry-model/history/item                                          model_api.py
    GET  registry-model/item/{id}/metadata, POST write/registry-model/item/{id}/metadata
    GET  registry-model/item/{id}/status-configuration,
    POST write/registry-model/item/{id}/status-configuration
    POST write/registry-model/update
    GET|POST webhooks/config
    GET  /mpm/isAlive/ping, POST /mpm/v2/events/batch, /mpm/v2/labels/batch,
    GET  /mpm/local/counts                                                       mpm.py

Modules: store (on-disk data), web (shared view helpers), shapes (JSON shapes), read_api,
write_api, model_api and assets (the REST endpoints), reviews (status changes under review and
the history), mpm (Comet MPM's ingestion endpoints under /mpm/, in memory), admin and faults
(test-only fault injection and request counts), app (the Flask app), cli (the subcommand).

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

Test-only admin endpoints (the owner's Authorization; never counted, never faulted):
`GET|POST|PUT|DELETE /-/faults` list / append / replace / clear fault rules (see faults.py for
the rule format), `GET|DELETE /-/requests` read / reset request counts per path,
`PUT /-/presigned {"enabled": bool}` turns presigned-link downloads on or off.

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
- Keys: --api-key is a workspace owner's; --member-api-key a member's. A member's status change
  to the status a version's status configuration reviews (`isReviewRequired`) is recorded as a
  pending request, and the owner setting that status approves it (reviews.py). Admin endpoints
  take only the owner's key. A key is compared whole, `*<base64>` suffix included, as Comet
  receives it.
- History (POST registry-model/history/item): events MODEL_VERSION_CREATED,
  ..._STATUS_REQUEST_CHANGE, ..._STATUS_REQUEST_APPROVED, ..._STATUS_CHANGED, grouped by UTC day
  ("November 16, 2023"), newest first, each with `createdAt` besides the SDK's fields;
  MODEL_VERSION_DOWNLOADED is not recorded. Metadata POST merges by key; a status configuration
  answers {} when none is set; webhooks/config GET answers the shape POST takes; webhooks are
  stored and never called. write/registry-model/update renames (409 if the name is taken) and
  sets description / isPublic.
- Remote assets: an upload's `assets` entry with a `link` (s3://, gs://, any URI) is listed with
  `remote: true` and that link, and has no bytes here (get-asset 404); its `metadata` (an object
  or a JSON string: `synced`, `file_size`, `version_id`, `error_message`) is listed as the JSON
  string Comet lists. A version of remote assets only is an upload of an empty zip.
- Ranges and presigned links: see assets.py (single ranges 206, past the end 416; a member
  stored uncompressed goes out with sendfile unless a fault rule alters the body; links signed
  with the owner's key for an hour, 403 when tampered or expired).
"""
